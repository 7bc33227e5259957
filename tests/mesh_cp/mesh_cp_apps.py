"""The applications behind the sidecars of the multi-process mesh tests, in one process.

``python mesh_cp_apps.py SPEC...`` where each SPEC is one of

* ``echo:NAME:PORT`` — ``meshgate.demo.upstreams`` echo (JSON answer naming NAME; the
  request header ``x-echo-delay: SECONDS`` delays it);
* ``flaky:NAME:PORT`` — an HTTP app whose requests cycle through: 503, a reset connection
  (closed without an answer), 200 — so one request in three succeeds on its own;
* ``tcp:PORT`` — a TCP echo (every byte is sent back).
"""

from __future__ import annotations

import asyncio
import json
import sys

from meshgate.demo.upstreams import start_echo_upstream


async def _flaky(name: str, port: int) -> asyncio.Server:
    served = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                turn = served[0] % 3
                served[0] += 1
                if turn == 1:  # reset: drop the connection without an answer
                    writer.transport.abort()
                    return
                status = "503 Service Unavailable" if turn == 0 else "200 OK"
                body = json.dumps({"upstream": name, "attempt": served[0]}).encode()
                writer.write(
                    f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def _tcp_echo(port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        kind, *args = spec.split(":")
        if kind == "echo":
            servers.append((await start_echo_upstream(args[0], port=int(args[1])))[0])
        elif kind == "flaky":
            servers.append(await _flaky(args[0], int(args[1])))
        elif kind == "tcp":
            servers.append(await _tcp_echo(int(args[0])))
        else:
            raise SystemExit(f"unknown app {spec!r}")
    print("apps ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
