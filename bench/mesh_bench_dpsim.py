"""Simulated dataplanes for the mesh bench: N ``mgdp/1`` sessions in one asyncio process.

Run by ``mesh_bench.py`` as a child process::

    python bench/mesh_bench_dpsim.py --port P --token-file F --first 0 --count 500

Each session speaks the real protocol (``meshgate.agent.dataplane.protocol``): hello with the
token, a Dataplane with one inbound and a CSR (one key for all sessions: the CP only signs
its public key), ACKs every snapshot at once (no validation: the CP is what is measured),
answers pings.  Stdout carries JSON lines:

* ``{"event": "ready", ...}`` once every session is admitted and has ACKed a first snapshot;
* for each line the parent writes to stdin: ``{"event": "armed"}``, then
  ``{"event": "updates", "times": [[received, acked], ...]}`` once every session got a newer
  snapshot after ``armed`` (or ``--update-timeout`` passed), with ``time.monotonic()``
  stamps (CLOCK_MONOTONIC: comparable with the parent's).

It holds the sessions until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshgate.agent.dataplane.protocol import PROTOCOL_VERSION, MessageDecoder, message
from meshgate.tasks import spawn


@dataclass
class SimSession:
    name: str
    versions: list[tuple[str, float, float]] = field(default_factory=list)  # version, rx, ack
    admitted: asyncio.Event = field(default_factory=asyncio.Event)
    first_acked: asyncio.Event = field(default_factory=asyncio.Event)
    updated: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    arm_index: int = 0


def make_csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sim")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def dataplane_doc(index: int, mesh: str, services: int) -> dict[str, Any]:
    service = f"sim-svc-{index % services}"
    return {
        "type": "Dataplane",
        "name": f"sim-{index:05d}",
        "mesh": mesh,
        "networking": {
            "address": f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
            "inbound": [
                {"port": 8080, "tags": {"kuma.io/service": service, "kuma.io/protocol": "http"}}
            ],
        },
    }


async def run_session(
    session: SimSession, args: argparse.Namespace, doc: dict[str, Any], csr: str
) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port, ssl=context)
    hello = message("hello", protocol=PROTOCOL_VERSION, token=args.token, dataplane=doc,
                    csr=csr, running=None)  # fmt: skip
    writer.write(hello)
    decoder = MessageDecoder()
    while True:
        data = await reader.read(1 << 16)
        if not data:
            session.error = session.error or "closed by the CP"
            session.admitted.set()
            return
        received = time.monotonic()
        for item in decoder.feed(data):
            kind = item["type"]
            if kind == "welcome":
                session.admitted.set()
            elif kind == "refused":
                session.error = str(item["error"])
                session.admitted.set()
            elif kind == "ping":
                writer.write(message("pong"))
            elif kind == "snapshot":
                version = str(item["version"])
                writer.write(message("ack", version=version))
                session.versions.append((version, received, time.monotonic()))
                if len(session.versions) == 1:
                    session.first_acked.set()
                elif ready_flag.is_set():
                    session.updated.set()


ready_flag = asyncio.Event()


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    csr = make_csr()
    sessions = [SimSession(f"sim-{i:05d}") for i in range(args.first, args.first + args.count)]
    gate = asyncio.Semaphore(args.concurrency)
    tasks = []
    started = time.monotonic()

    async def admit(index: int, session: SimSession) -> None:
        async with gate:
            doc = dataplane_doc(index, args.mesh, args.services)
            task = spawn(run_session(session, args, doc, csr), name=f"sim-{index}")
            tasks.append(task)
            await asyncio.wait(
                [spawn(session.first_acked.wait(), name="first"), task],
                timeout=args.update_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )

    await asyncio.gather(*(admit(i, s) for i, s in enumerate(sessions, args.first)))
    failed = [s for s in sessions if not s.first_acked.is_set()]
    emit({"event": "ready", "sessions": len(sessions), "failed": len(failed),
          "errors": sorted({str(s.error) for s in failed})[:5],
          "connect_s": time.monotonic() - started,
          "snapshots_before_arm": sum(len(s.versions) for s in sessions)})  # fmt: skip
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):  # the parent says "arm"
        for session in sessions:
            session.updated.clear()
            session.arm_index = len(session.versions)
        ready_flag.set()
        emit({"event": "armed"})
        waiting = [spawn(s.updated.wait(), name="upd") for s in sessions if s.first_acked.is_set()]
        if waiting:
            await asyncio.wait(waiting, timeout=args.update_timeout)
        ready_flag.clear()
        times = [list(s.versions[s.arm_index][1:]) if s.updated.is_set() else None
                 for s in sessions]  # fmt: skip
        emit({"event": "updates", "times": times})
    for task in tasks:
        task.cancel()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--mesh", default="default")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--update-timeout", type=float, default=120.0)
    args = parser.parse_args()
    with open(args.token_file) as file:
        args.token = file.read().strip()
    return args


if __name__ == "__main__":
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(main(parse()))
