"""Side-by-side markdown table of benchmark results: `python -m bench.compare A.json B.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


ROWS: list[tuple[str, Any]] = [
    ("events / customers", lambda r: f"{r['events']:,} / {r['customers']:,}"),
    ("customers in state at the end", lambda r: _rate(r.get("customers_in_state"))),
    (
        "baseline: bare aiokafka + orjson + dict (ev/s)",
        lambda r: _rate(r["baseline_events_per_second"]),
    ),
    ("engine alone, no I/O (ev/s)", lambda r: _rate(r.get("engine_events_per_second"))),
    (
        "`touchstream replay` to files (ev/s)",
        lambda r: _rate(r["replay"]["events_per_second"]) if "replay" in r else "–",
    ),
    (
        "pipeline, 1 worker, steady (ev/s)",
        lambda r: _rate(r["one_worker"]["steady_events_per_second"]),
    ),
    ("pipeline / baseline", lambda r: f"{r['pipeline_vs_baseline']:.4f}"),
    (
        "event→signal latency p50 / p99 (ms)",
        lambda r: (
            f"{r['latency']['p50_ms']:.0f} / {r['latency']['p99_ms']:.0f} "
            f"at {r['latency']['offered_per_second']:,.0f} ev/s"
            if r["latency"]["signals"]
            else f"no signal at {r['latency']['offered_per_second']:,.0f} ev/s"
        ),
    ),
    ("peak RSS, 1 worker (MiB)", lambda r: f"{r['one_worker']['peak_rss_mib'][0]:,.0f}"),
    ("state per customer, changelog (bytes)", lambda r: f"{r['state_bytes_per_customer']:,.0f}"),
    (
        "pipeline, 2 workers, steady (ev/s)",
        lambda r: _rate(r.get("two_workers", {}).get("steady_events_per_second")),
    ),
    (
        "scaling, 2 workers vs 1",
        lambda r: f"{r['scaling_factor']:.2f}×" if "scaling_factor" in r else "–",
    ),
    ("worker CPU an event, 1 / 2 workers (µs)", lambda r: _cpu(r)),
    ("machine busy, 1 / 2 workers", lambda r: _busy(r)),
]


def _per_run(r: dict[str, Any], value: Any) -> str:
    cells = [value(r[k]) if k in r else None for k in ("one_worker", "two_workers")]
    return " / ".join("–" if c is None else c for c in cells)


def cpu_us_per_event(run: dict[str, Any]) -> float | None:
    """The workers' CPU (every thread) an event of a run, in µs; None before it was measured."""
    used = run.get("cpu_seconds")
    return sum(used) / run["events"] * 1e6 if used else None


def machine_busy(run: dict[str, Any]) -> float | None:
    """The share of the machine's cores in use during a run; None when not measured."""
    busy = run.get("machine_busy")
    return None if busy is None or busy != busy else float(busy)  # NaN: not measured


def _cpu(r: dict[str, Any]) -> str:
    def each(run: dict[str, Any]) -> str | None:
        used = cpu_us_per_event(run)
        return None if used is None else f"{used:,.0f}"

    return _per_run(r, each)


def _busy(r: dict[str, Any]) -> str:
    def each(run: dict[str, Any]) -> str | None:
        busy = machine_busy(run)
        return None if busy is None else f"{busy:.0%}"

    return _per_run(r, each)


def main(files: list[Path]) -> None:
    """Print the results of several runs as one markdown table, a column per run."""
    runs = [orjson.loads(path.read_bytes()) for path in files]
    header = "| measure | " + " | ".join(f"{r['label']} ({r['at'][:10]})" for r in runs) + " |"
    lines = [header, "| --- |" + " --- |" * len(runs)]
    for name, cell in ROWS:
        lines.append(f"| {name} | " + " | ".join(cell(r) for r in runs) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    typer.run(main)
