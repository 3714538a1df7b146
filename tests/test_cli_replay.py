"""`touchstream replay --clickhouse` and `fit` as a user runs them (no broker)."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from touchstream.cli import app
from touchstream.generator import generate
from touchstream.sinks.clickhouse import ClickHouse


def test_replay_backfill_twice_changes_nothing_and_fit_reads_it(tmp_path: Path) -> None:
    _, events = generate(customers=60, months=3, seed=4)
    file = tmp_path / "history.jsonl"
    file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b"not json\n")
    env = {"TOUCHSTREAM_DATA_DIR": str(tmp_path / "data"), "TOUCHSTREAM_WEB_PORT": "0"}
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(
            app,
            [
                "replay",
                str(file),
                "--out",
                str(tmp_path / "out"),
                "--clickhouse",
                "--as-of",
                "2026-05-01T00:00:00Z",
            ],
            env=env,
        )
        assert result.exit_code == 0, result.output
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'data' / 'chdb'}")
    counts = {
        table: clickhouse.query(f"SELECT count() FROM {table} FINAL")[1][0][0]
        for table in ("touchpoints", "customer_metrics", "dead_letters")
    }
    clickhouse.close()
    # the second backfill's rows collapse with the first's under FINAL
    assert counts == {"touchpoints": len(events), "customer_metrics": 60, "dead_letters": 1}
    dead = (tmp_path / "out" / "dead_letters.jsonl").read_bytes().splitlines()
    assert orjson.loads(dead[0])["line"] == len(events) + 1

    fitted = runner.invoke(
        app,
        [
            "fit",
            "--clickhouse",
            "--as-of",
            "2026-05-01T00:00:00Z",
            "--output",
            str(tmp_path / "bgnbd.json"),
        ],
        env=env,
    )
    assert fitted.exit_code == 0, fitted.output
    params = orjson.loads((tmp_path / "bgnbd.json").read_bytes())
    assert params["customers"] == 60 and params["log_likelihood"] < 0
