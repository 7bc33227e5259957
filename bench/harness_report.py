"""Medians, ratios, the printed tables and the JSON file of a bench run.

Ratios are medians of per-round ratios: both sides of a ratio were measured back to back in
the same round, which cancels most of this machine's drift.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Measurement:
    case: str
    system: str
    round: int
    requests: int
    rps: float
    p50_us: float
    p99_us: float
    cpu_user_us_per_req: float | None
    cpu_sys_us_per_req: float | None
    upstream_cpu_us_per_req: float | None
    # Cores kept busy by anything else on the machine meanwhile: > ~0.2 makes figures shaky.
    other_load_cores: float | None
    non_2xx: int
    socket_errors: int

    @property
    def cpu_us_per_req(self) -> float | None:
        if self.cpu_user_us_per_req is None or self.cpu_sys_us_per_req is None:
            return None
        return self.cpu_user_us_per_req + self.cpu_sys_us_per_req


METRICS = (
    "rps",
    "p50_us",
    "p99_us",
    "cpu_us_per_req",
    "cpu_user_us_per_req",
    "cpu_sys_us_per_req",
    "other_load_cores",
)

SHAKY_OTHER_LOAD_CORES = 0.3

# (numerator, denominator) pairs reported for a case when both systems were measured.
RATIO_PAIRS = (
    ("meshgate", "nginx"),
    ("meshgate", "envoy"),
    ("meshgate", "pyfloor"),
    ("pyfloor", "nginx"),
    ("envoy", "nginx"),
    ("direct", "nginx"),
    ("meshgate-10k", "meshgate-1route"),
    ("meshgate-plugins", "nginx"),
    ("meshgate-plugins", "envoy"),
    ("meshgate-plugins", "meshgate"),
    ("meshgate-plugins", "pyfloor"),
)


def _metric(measurement: Measurement, metric: str) -> float | None:
    value: float | None = getattr(measurement, metric)
    return value


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarize(measurements: list[Measurement], case: str, system: str) -> dict[str, float | None]:
    mine = [m for m in measurements if m.case == case and m.system == system]
    summary = {metric: _median([_metric(m, metric) for m in mine]) for metric in METRICS}
    summary["rounds"] = len(mine)
    summary["errors"] = sum(m.non_2xx + m.socket_errors for m in mine)
    return summary


def ratio(
    measurements: list[Measurement], case: str, top: str, bottom: str, metric: str
) -> float | None:
    """Median over rounds of ``top``'s metric divided by ``bottom``'s in the same round."""
    by_round: dict[int, dict[str, Measurement]] = {}
    for m in measurements:
        if m.case == case:
            by_round.setdefault(m.round, {})[m.system] = m
    per_round: list[float | None] = []
    for systems in by_round.values():
        if top in systems and bottom in systems:
            numerator = _metric(systems[top], metric)
            denominator = _metric(systems[bottom], metric)
            if numerator is not None and denominator:
                per_round.append(numerator / denominator)
    return _median(per_round)


def case_ratios(measurements: list[Measurement], case: str) -> dict[str, float]:
    ratios: dict[str, float] = {}
    for top, bottom in RATIO_PAIRS:
        for metric, label in (("rps", "rps"), ("p99_us", "p99"), ("cpu_us_per_req", "cpu")):
            value = ratio(measurements, case, top, bottom, metric)
            if value is not None:
                ratios[f"{top}/{bottom} {label}"] = value
    return ratios


def plugins_delta(
    measurements: list[Measurement], case: str, with_plugins: str, without: str
) -> dict[str, float] | None:
    """What the plugins add per request, medians over rounds of same-round differences:
    ``cpu_us`` (proxy CPU µs/request) and ``wall_us`` (1e6/rps: with one proxy core busy at
    c=50 this is the time the core spends per request)."""
    by_round: dict[int, dict[str, Measurement]] = {}
    for m in measurements:
        if m.case == case:
            by_round.setdefault(m.round, {})[m.system] = m
    cpu: list[float | None] = []
    wall: list[float | None] = []
    for systems in by_round.values():
        top, bottom = systems.get(with_plugins), systems.get(without)
        if top is None or bottom is None or not top.rps or not bottom.rps:
            continue
        wall.append(1e6 / top.rps - 1e6 / bottom.rps)
        if top.cpu_us_per_req is not None and bottom.cpu_us_per_req is not None:
            cpu.append(top.cpu_us_per_req - bottom.cpu_us_per_req)
    wall_us, cpu_us = _median(wall), _median(cpu)
    if wall_us is None or cpu_us is None:
        return None
    return {"cpu_us": cpu_us, "wall_us": wall_us}


def _format_latency(value_us: float | None) -> str:
    if value_us is None:
        return "—"
    return f"{value_us:.0f} µs" if value_us < 1000 else f"{value_us / 1000:.2f} ms"


def _format_cpu(summary: dict[str, float | None]) -> str:
    total, user, system = (
        summary["cpu_us_per_req"],
        summary["cpu_user_us_per_req"],
        summary["cpu_sys_us_per_req"],
    )
    if total is None or user is None or system is None:
        return "—"
    return f"{total:.1f} ({user:.1f}+{system:.1f})"


def _format_cores(cores: float | None) -> str:
    return "—" if cores is None else f"{cores:.2f} cores"


def format_case_table(
    measurements: list[Measurement], case: str, title: str, systems: list[str]
) -> str:
    header = (
        f"{'system':<16}{'rps':>10}{'p50':>11}{'p99':>11}   {'CPU µs/req (user+sys)':<24}"
        f"{'rounds':>6}{'other load':>12}"
    )
    lines = [f"== {title}", header, "-" * len(header)]
    for system in systems:
        summary = summarize(measurements, case, system)
        if not summary["rounds"]:
            continue
        rps = summary["rps"]
        errors = summary["errors"]
        lines.append(
            f"{system:<16}{rps if rps is None else f'{rps:,.0f}':>10}"
            f"{_format_latency(summary['p50_us']):>11}{_format_latency(summary['p99_us']):>11}"
            f"   {_format_cpu(summary):<24}{summary['rounds']:>6.0f}"
            f"{_format_cores(summary['other_load_cores']):>12}"
            + (f"   !! {errors:.0f} non-2xx/socket errors" if errors else "")
        )
    loads = [m.other_load_cores for m in measurements if m.case == case and m.other_load_cores]
    if loads and max(loads) > SHAKY_OTHER_LOAD_CORES:
        lines.append(
            f"!! other work used up to {max(loads):.2f} cores meanwhile: figures are shaky, "
            "ratios less so"
        )
    ratios = case_ratios(measurements, case)
    if ratios:
        lines.append(
            "ratios: " + "  ".join(f"{label} {value:.2f}" for label, value in ratios.items())
        )
    return "\n".join(lines)


def results_document(
    measurements: list[Measurement],
    cases: dict[str, list[str]],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    return {
        "metadata": metadata,
        "cases": {
            case: {
                "systems": {system: summarize(measurements, case, system) for system in systems},
                "ratios": case_ratios(measurements, case),
            }
            for case, systems in cases.items()
        },
        "measurements": [{**asdict(m), "cpu_us_per_req": m.cpu_us_per_req} for m in measurements],
    }


def write_results(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
