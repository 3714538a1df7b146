"""The benchmark's report: a missing peer is said, not a crash or a made-up ratio."""

from __future__ import annotations

from pathlib import Path

from bench import harness


def _results(**extra: object) -> dict:
    run = {"steady_events_per_second": 10_000.0, "events_per_second": 9_000.0, "seconds": 100.0}
    run |= {"sinks_drained_seconds": 100.0, "peak_rss_mib": [1000.0]}
    latency = {"offered_per_second": 5000.0, "p50_ms": 100.0, "p99_ms": 400.0, "signals": 10}
    return {
        "events": 1000,
        "customers": 100,
        "baseline_events_per_second": 300_000.0,
        "pipeline_vs_baseline": 0.033,
        "one_worker": run,
        "latency": latency,
        "state_bytes_per_customer": 500.0,
        **extra,
    }


def test_a_missing_peer_is_reported_as_skipped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(harness, "PEER_PYTHON", tmp_path / "nowhere" / "python")
    outcome = harness.peer("127.0.0.1:1", "t", 10, tmp_path)
    assert outcome == {"skipped": f"no {tmp_path / 'nowhere' / 'python'}: `make bench` makes it"}
    table = harness.markdown(_results(peer=outcome))
    assert "skipped: no " in table and "pipeline / peer" not in table


def test_the_peer_ratio_is_the_pipeline_over_the_peer() -> None:
    peer = {"name": "quixstreams", "steady_events_per_second": 40_000.0}
    table = harness.markdown(_results(peer=peer, pipeline_vs_peer=0.25))
    assert "40,000 ev/s; pipeline / peer 0.250" in table
    assert "not run (--no-peer)" in harness.markdown(_results())
