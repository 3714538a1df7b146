"""`touchstream replay --clickhouse` and `fit` as a user runs them (no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.histories import IDENTITY_SECRET, one_person_on_three_channels
from touchstream.cli import app
from touchstream.generator import generate
from touchstream.settings import Settings
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

    learned = runner.invoke(
        app,
        ["learn", "--as-of", "2026-05-01T00:00:00Z", "--output", str(tmp_path / "model.json")],
        env=env,
    )
    assert learned.exit_code == 0, learned.output
    model = orjson.loads((tmp_path / "model.json").read_bytes())
    # 60 customers: too few to learn a business's rhythm from, and it says so
    assert (
        model["never"] == [] and "too little history: 60 customers" in model["quality"]["fallback"]
    )
    assert "the default model stays" in learned.output


def test_history_from_1997_is_kept_as_given(tmp_path: Path) -> None:
    """Real purchase history is neither refused as a 'zeroed clock' nor deleted by a TTL."""
    start = datetime(1997, 1, 1, tzinfo=UTC)
    _, events = generate(customers=40, months=6, seed=5, start=start)
    file = tmp_path / "cdnow-like.jsonl"
    file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    env = {"TOUCHSTREAM_DATA_DIR": str(tmp_path / "data"), "TOUCHSTREAM_WEB_PORT": "0"}
    result = CliRunner().invoke(
        app, ["replay", str(file), "--out", str(tmp_path / "out"), "--clickhouse"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "TTL" not in result.output  # the default keeps rows forever: nothing to warn about
    assert (tmp_path / "out" / "dead_letters.jsonl").read_bytes() == b""
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'data' / 'chdb'}")
    try:
        clickhouse.command("OPTIMIZE TABLE touchpoints FINAL")  # a merge: when a TTL would act
        _, rows = clickhouse.query("SELECT count(), min(occurred_at) FROM touchpoints")
    finally:
        clickhouse.close()
    assert rows[0][0] == len(events)
    assert rows[0][1].year == 1997


def test_a_backfill_older_than_the_ttl_is_announced_and_an_overflowing_ttl_refused(
    tmp_path: Path,
) -> None:
    _, events = generate(customers=10, months=2, seed=5, start=datetime(2001, 1, 1, tzinfo=UTC))
    file = tmp_path / "old.jsonl"
    file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    env = {
        "TOUCHSTREAM_DATA_DIR": str(tmp_path / "data"),
        "TOUCHSTREAM_WEB_PORT": "0",
        "TOUCHSTREAM_TOUCHPOINTS_TTL_DAYS": "730",
    }
    result = CliRunner().invoke(
        app, ["replay", str(file), "--out", str(tmp_path / "out"), "--clickhouse"], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"{len(events):,} of {len(events):,} touchpoints" in " ".join(result.output.split())
    with pytest.raises(ValueError, match="2106"):
        Settings(touchpoints_ttl_days=36_500)
    assert Settings(touchpoints_ttl_days=0).clickhouse.touchpoints_ttl_days == 0


def test_changing_the_ttl_setting_changes_the_table(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'ch'}"

    def table_ttl(days: int) -> str:
        clickhouse = ClickHouse(url, ttl_days=days)
        try:
            _, rows = clickhouse.query(
                "SELECT engine_full FROM system.tables WHERE name = 'touchpoints'"
            )
        finally:
            clickhouse.close()
        return str(rows[0][0])

    assert "TTL" not in table_ttl(0)
    assert "toIntervalDay(30)" in table_ttl(30)
    assert "toIntervalDay(90)" in table_ttl(90)
    assert "TTL" not in table_ttl(0)


def jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_replay_resolves_identifiers_as_the_live_resolver(tmp_path: Path) -> None:
    story = one_person_on_three_channels()
    file = tmp_path / "story.jsonl"
    file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in story))
    env = {"TOUCHSTREAM_DATA_DIR": str(tmp_path / "data"), "TOUCHSTREAM_WEB_PORT": "0"}
    runner = CliRunner()
    out = tmp_path / "out"
    refused = runner.invoke(app, ["replay", str(file), "--out", str(out)], env=env)
    assert refused.exit_code == 0, refused.output
    letters = [
        orjson.loads(line) for line in (out / "dead_letters.jsonl").read_bytes().splitlines()
    ]
    # raw personal data and no secret: refused, each with what to do
    assert [d["error_kind"] for d in letters] == ["invalid_identifier"] * 6
    assert "TOUCHSTREAM_IDENTITY_SECRET" in letters[0]["errors"][0]["msg"]

    env |= {
        "TOUCHSTREAM_IDENTITY_SECRET": IDENTITY_SECRET,
        "TOUCHSTREAM_IDENTITY_DEFAULT_REGION": "DE",
    }
    result = runner.invoke(app, ["replay", str(file), "--out", str(out), "--clickhouse"], env=env)
    assert result.exit_code == 0, result.output
    merges = jsonl(out / "merges.jsonl")
    assert len(merges) == 2 and len({m["survivor"] for m in merges}) == 1
    customers = jsonl(out / "customers.jsonl")
    assert sorted((c["customer_id"], c["event_count"]) for c in customers) == [
        (merges[0]["survivor"], 5),
        ("someone-else", 1),
    ]
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'data' / 'chdb'}")
    try:
        resolved = "SELECT uniqExact(customer_id), count() FROM touchpoints_resolved FINAL"
        assert clickhouse.query(resolved)[1] == [(2, 6)]
        aliases = "SELECT count() FROM identity_map FINAL WHERE kind = 'alias'"
        assert clickhouse.query(aliases)[1] == [(2,)]
        refusals = "SELECT reason FROM identity_refusals FINAL"
        assert clickhouse.query(refusals)[1] == [("denied_identifier",), ("no_usable_identifier",)]
    finally:
        clickhouse.close()


def test_a_shared_device_names_no_customer_when_looked_up(tmp_path: Path) -> None:
    """A kiosk seen with five people links none of them; `customer` says so by its name."""
    kiosk = {"type": "device", "value": "kiosk-7"}
    visits = [
        {
            "event_id": f"k-{n}",
            "occurred_at": f"2026-01-{1 + n:02d}T10:00:00+00:00",
            "channel": "store",
            "kind": "visit",
            "identifiers": [{"type": "email", "value": f"p{n}@example.com"}, kiosk],
        }
        for n in range(5)
    ]
    file = tmp_path / "kiosk.jsonl"
    file.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in visits))
    env = {
        "TOUCHSTREAM_DATA_DIR": str(tmp_path / "data"),
        "TOUCHSTREAM_WEB_PORT": "0",
        "TOUCHSTREAM_IDENTITY_SECRET": IDENTITY_SECRET,
    }
    runner = CliRunner()
    replayed = runner.invoke(
        app, ["replay", str(file), "--out", str(tmp_path / "out"), "--clickhouse"], env=env
    )
    assert replayed.exit_code == 0, replayed.output
    looked_up = runner.invoke(app, ["customer", "kiosk-7", "--type", "device"], env=env)
    assert looked_up.exit_code == 1
    assert "shared by several customers" in " ".join(looked_up.output.split())
    person = runner.invoke(app, ["customer", "P0@example.com", "--type", "email"], env=env)
    assert person.exit_code == 0, person.output
