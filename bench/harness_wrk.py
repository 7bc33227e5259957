"""Run wrk against one URL and parse its ``--latency`` report into numbers."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

_UNIT_TO_US = {"us": 1.0, "ms": 1_000.0, "s": 1_000_000.0, "m": 60_000_000.0, "h": 3_600_000_000.0}
_LATENCY_LINE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_REQUESTS_LINE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.M)
_RPS_LINE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON_2XX_LINE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS_LINE = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
)


class WrkError(RuntimeError):
    """wrk failed or printed something this parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_us: float
    p75_us: float
    p90_us: float
    p99_us: float
    non_2xx: int
    socket_errors: int


def parse_wrk_output(text: str) -> WrkResult:
    percentiles = {
        int(match.group(1)): float(match.group(2)) * _UNIT_TO_US[match.group(3)]
        for match in _LATENCY_LINE.finditer(text)
    }
    requests_match = _REQUESTS_LINE.search(text)
    rps_match = _RPS_LINE.search(text)
    if requests_match is None or rps_match is None or set(percentiles) != {50, 75, 90, 99}:
        raise WrkError(f"cannot parse wrk output (was --latency given?):\n{text}")
    non_2xx_match = _NON_2XX_LINE.search(text)
    socket_match = _SOCKET_ERRORS_LINE.search(text)
    socket_errors = sum(int(count) for count in socket_match.groups()) if socket_match else 0
    duration_s = float(requests_match.group(2)) * _UNIT_TO_US[requests_match.group(3)] / 1e6
    return WrkResult(
        requests=int(requests_match.group(1)),
        duration_s=duration_s,
        rps=float(rps_match.group(1)),
        p50_us=percentiles[50],
        p75_us=percentiles[75],
        p90_us=percentiles[90],
        p99_us=percentiles[99],
        non_2xx=int(non_2xx_match.group(1)) if non_2xx_match else 0,
        socket_errors=socket_errors,
    )


def wrk_command(
    wrk_bin: str,
    url: str,
    connections: int,
    duration_s: int,
    pin_prefix: list[str],
    headers: Mapping[str, str] | None = None,
) -> list[str]:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the bench only targets 127.0.0.1, not {url}")
    if duration_s < 1:
        raise ValueError("wrk takes whole seconds: duration must be at least 1 s")
    return [
        *pin_prefix,
        wrk_bin,
        "-t1",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        *[part for name, value in (headers or {}).items() for part in ("-H", f"{name}: {value}")],
        url,
    ]


def run_wrk(
    wrk_bin: str,
    url: str,
    connections: int,
    duration_s: int,
    pin_prefix: list[str],
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    argv = wrk_command(wrk_bin, url, connections, duration_s, pin_prefix, headers)
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if completed.returncode != 0:
        raise WrkError(f"{' '.join(argv)} exited {completed.returncode}: {completed.stderr}")
    return parse_wrk_output(completed.stdout)
