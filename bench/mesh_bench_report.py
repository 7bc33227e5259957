"""Mesh bench output: the tables printed from a result document."""

from __future__ import annotations

from typing import Any


def print_table(result: dict[str, Any]) -> None:
    pair = result.get("pair")
    if pair:
        print(f"\nSidecar pair, {pair['rate_rps']} rps open loop, {pair['seconds_per_target']} s "
              f"per target, upstream {pair['upstream']}, generator {pair.get('generator', '?')}"
              f"{', pinned' if pair.get('pinned') else ''} (ms, from intended send time)")  # fmt: skip
        print(
            f"{'target':<8}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>9}{'n':>8}{'err':>6}{'drop':>6}"
        )
        for name, row in pair["latency_ms"].items():
            cells = "".join(f"{_fmt(row[q]):>8}" for q in ("p50", "p90", "p99", "p999"))
            print(f"{name:<8}{cells}{_fmt(row['max']):>9}{row['requests']:>8}"
                  f"{row['errors'] + row['non_2xx']:>6}{row['dropped']:>6}")  # fmt: skip
        for mode, added in pair["added_ms"].items():
            print(f"added by {mode} pair: p50 {_fmt(added['p50'])}  p90 {_fmt(added['p90'])}  "
                  f"p99 {_fmt(added['p99'])}")  # fmt: skip
        late = {name: row["lateness_ms"] for name, row in pair["latency_ms"].items()}
        print("generator lateness (write - intended), p50/p99/max: "
              + ", ".join(f"{name} {_fmt(x['p50'])}/{_fmt(x['p99'])}/{_fmt(x['max'])}"
                          for name, x in late.items()))  # fmt: skip
        share = pair.get("machine_cpu_share_during_load")
        if share:
            print(f"machine CPU during the load: {share['busy'] * 100:.0f}% busy, of it "
                  f"{share['steal'] * 100:.1f}% stolen by the hypervisor (of all cores' time)")  # fmt: skip
        print(f"sidecar→sidecar connections seen (sampled): "
              f"{pair['sidecar_to_sidecar_connections_seen']}")  # fmt: skip
        loaded_label = "loaded max" if pair.get("memory_sampled_every_s", 0.1) else "after load"
        print(f"{'process':<22}{'idle MB: RSS':>13}{'PSS':>6}{'USS':>6}"
              f"{loaded_label + ': RSS':>17}{'PSS':>6}{'USS':>6}{'CPU s':>8}")  # fmt: skip
        for name, idle in pair["memory_idle_mb"].items():
            loaded = pair["memory_loaded_max_mb"][name]
            print(f"{name:<22}{idle['rss']:>13.1f}{idle['pss']:>6.1f}{idle['uss']:>6.1f}"
                  f"{loaded['rss']:>17.1f}{loaded['pss']:>6.1f}{loaded['uss']:>6.1f}"
                  f"{pair['cpu_s_during_load'][name]:>8.2f}")  # fmt: skip
    scale = result.get("scale")
    if scale:
        print(f"\nControl plane, {scale['dataplanes_admitted']}/{scale['dataplanes_requested']} "
              f"simulated dataplanes in {scale['sim_processes']} processes")  # fmt: skip
        print(f"admission: {scale['admission_wall_s']:.1f} s wall, CP CPU "
              f"{scale['cp_cpu_s_admission']:.1f} s, snapshots pushed "
              f"{scale['snapshots_pushed_during_admission']}; CP RSS start "
              f"{scale['cp_rss_mb_start']:.1f} MB, connected {scale['cp_rss_mb_connected']:.1f} "
              f"MB, end {scale['cp_rss_mb_end']:.1f} MB")  # fmt: skip
        print(f"{'change':<8}{'ack p50':>9}{'ack p99':>9}{'ack max':>9}{'rx p50':>9}"
              f"{'api ms':>8}{'CP CPU s':>10}{'missing':>9}")  # fmt: skip
        for index, change in enumerate(scale["changes"]):
            acked, rx = change["acked_ms"], change["received_ms"]
            print(f"{index:<8}{_fmt(acked['p50']):>9}{_fmt(acked['p99']):>9}"
                  f"{_fmt(acked['max']):>9}{_fmt(rx['p50']):>9}{change['api_call_ms']:>8.1f}"
                  f"{change['cp_cpu_s']:>10.2f}{change['missing']:>9}")  # fmt: skip
        every = scale["change_to_ack_ms_all"]
        print(f"all changes: policy PUT → ACK p50 {_fmt(every['p50'])} ms, p99 "
              f"{_fmt(every['p99'])} ms, max {_fmt(every['max'])} ms")  # fmt: skip
        for phase, report in scale["profiles"].items():
            print(f"\npy-spy, CP during {phase} ({report.get('samples', 0)} samples):")
            ours = [r for r in report.get("top_inclusive", [])
                    if "meshgate/" in r["frame"] and "cli/" not in r["frame"]]  # fmt: skip
            for row in ours[:14]:
                print(f"  {row['share'] * 100:5.1f}% incl  {row['frame']}")
            for row in report.get("top_self", [])[:8]:
                print(f"  {row['share'] * 100:5.1f}% self  {row['frame']}")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
