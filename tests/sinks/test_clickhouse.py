"""The ClickHouse writer against real chDB, with outages injected at the connection."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.streams.builders import delivery
from touchstream.query_endpoint import QueryRefused, has_second_statement, readonly_query
from touchstream.sinks.clickhouse import ClickHouse, connect, migrate, migration_files, redact
from touchstream.sinks.writer import write_batch
from touchstream.streams.rows import touchpoint_columns


class Flaky:
    """A client that fails `failures` times (before or after doing the work), then works."""

    def __init__(self, real: Any, state: dict[str, int]) -> None:
        self.real, self.state = real, state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        if self.state["before"] > 0:
            self.state["before"] -= 1
            raise ConnectionRefusedError("ClickHouse is down")
        result = self.real.insert(*args, **kwargs)
        if self.state["after"] > 0:  # the insert landed but the answer was lost
            self.state["after"] -= 1
            raise TimeoutError("read timed out")
        return result


def flaky_clickhouse(path: Path, before: int, after: int) -> tuple[ClickHouse, dict[str, int]]:
    state = {"before": before, "after": after, "connects": 0}

    def factory(url: str) -> Any:
        state["connects"] += 1
        return Flaky(connect(url), state)

    return ClickHouse(f"chdb://{path}", factory, retry_initial=0.01, retry_max=0.05), state


def rows(n: int, offset: int = 0) -> list:
    events = [
        delivery(f"c{i % 7}", i * 0.1, 2, 2 + (i % 3), event_id=f"e{offset + i}") for i in range(n)
    ]
    return [(e, 0, offset + i) for i, e in enumerate(events)]


def count(clickhouse: ClickHouse, sql: str) -> int:
    return clickhouse.query(sql)[1][0][0]


def test_outage_then_recovery_lands_every_row_once(tmp_path: Path) -> None:
    clickhouse, state = flaky_clickhouse(tmp_path / "ch", before=0, after=0)
    count(clickhouse, "SELECT 1")  # migrated while healthy
    state["before"], state["after"] = 5, 2  # down for a while, then answers get lost

    async def run() -> None:
        for batch in range(4):
            data = rows(50, offset=batch * 50)
            await write_batch(
                clickhouse,
                "touchpoints",
                touchpoint_columns(data, datetime.now(UTC), 1.0),
                [f"0:{o}" for *_, o in data],
                tmp_path / "spill",
            )

    asyncio.run(run())
    assert state["before"] == 0 and state["after"] == 0  # every failure was hit
    assert state["connects"] > 1  # and each one reconnected
    # answers lost after the insert mean repeats in the raw table; FINAL collapses them
    assert count(clickhouse, "SELECT count() FROM touchpoints FINAL") == 200
    assert count(clickhouse, "SELECT uniqExact(event_id) FROM touchpoints") == 200
    assert count(clickhouse, "SELECT count() FROM touchpoints") >= 200
    assert not (tmp_path / "spill").exists()
    clickhouse.close()


def test_redelivered_rows_collapse_under_final(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    data = rows(30)
    for _ in range(3):  # the same batch three times, as after crashes
        clickhouse.insert_columns("touchpoints", touchpoint_columns(data, datetime.now(UTC), 1.0))
    # and a batch cut differently (a redelivery with other boundaries)
    clickhouse.insert_columns("touchpoints", touchpoint_columns(data[:10], datetime.now(UTC), 1.0))
    assert count(clickhouse, "SELECT count() FROM touchpoints") == 100
    assert count(clickhouse, "SELECT count() FROM touchpoints FINAL") == 30
    clickhouse.close()


def test_column_types_are_asked_once_per_connection(tmp_path: Path) -> None:
    """clickhouse-connect describes the table before an insert given no types: once per
    table and connection here, again after a reconnect (a migration may have run)."""
    state = {"before": 0, "after": 0, "connects": 0}
    described: list[bool] = []

    class Counting(Flaky):
        def create_insert_context(self, *args: Any, **kwargs: Any) -> Any:
            described.append(kwargs.get("column_types") is None)
            return self.real.create_insert_context(*args, **kwargs)

    def factory(url: str) -> Any:
        state["connects"] += 1
        return Counting(connect(url), state)

    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}", factory, retry_initial=0.01)
    for batch in range(3):
        data = rows(5, offset=batch * 5)
        clickhouse.insert_columns("touchpoints", touchpoint_columns(data, datetime.now(UTC), 1.0))
        if batch == 1:
            state["before"] = 1  # the next insert fails once: a new connection
    assert described == [True, False, False, True]
    assert state["connects"] == 2
    assert count(clickhouse, "SELECT count() FROM touchpoints FINAL") == 15
    clickhouse.close()


def test_refused_batch_is_spilled_not_dropped(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    bad = {"event_id": ["x"], "no_such_column": [1]}
    asyncio.run(write_batch(clickhouse, "touchpoints", bad, ["0:1"], tmp_path / "spill"))
    spilled = list((tmp_path / "spill").glob("touchpoints-*.json"))
    assert len(spilled) == 1 and "no_such_column" in spilled[0].read_text()
    clickhouse.close()


def test_migrations_are_idempotent_and_recorded(tmp_path: Path) -> None:
    client = connect(f"chdb://{tmp_path / 'ch'}")
    first = migrate(client)
    assert first == [f"{v:03d}_{name}" for v, name, _ in migration_files()]
    assert migrate(client) == []
    tables = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert {
        "touchpoints",
        "customer_metrics",
        "signals",
        "dead_letters",
        "signals_daily",
        "channel_quality_weekly",
        "forgotten_customers",
    } <= tables
    client.close()


def test_readonly_query_refuses_writes_and_limits_rows(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    data = rows(25)
    clickhouse.insert_columns("touchpoints", touchpoint_columns(data, datetime.now(UTC), 1.0))
    result = readonly_query(clickhouse, "SELECT event_id FROM touchpoints", max_rows=10)
    assert len(result["rows"]) == 10 and result["truncated"]
    with pytest.raises(QueryRefused):
        readonly_query(clickhouse, "SELECT 1; DROP TABLE touchpoints")
    from touchstream.sinks.clickhouse import ClickHouseRejected
    from touchstream.sinks.query_guard import limits

    with pytest.raises(QueryRefused, match="only SELECT"):
        readonly_query(clickhouse, "DROP TABLE touchpoints")
    # and ClickHouse's own readonly setting stops a write the check would miss
    with pytest.raises(ClickHouseRejected, match="readonly"):
        clickhouse.query("DROP TABLE touchpoints", {}, limits(5, 10, 1 << 28), user_query=True)
    # the refused query left the writer's session writable
    clickhouse.insert_columns(
        "touchpoints", touchpoint_columns(rows(5, 100), datetime.now(UTC), 1.0)
    )
    assert count(clickhouse, "SELECT count() FROM touchpoints") == 30
    clickhouse.close()


@pytest.mark.parametrize(
    ("sql", "second"),
    [
        ("SELECT 1", False),
        ("SELECT '; '", False),
        ("SELECT 1 -- ;", False),
        ("SELECT `a;b`", False),
        ("SELECT 1 /* ; */", False),
        ("SELECT 1; SELECT 2", True),
    ],
)
def test_statement_splitting(sql: str, second: bool) -> None:
    assert has_second_statement(sql) is second


def test_passwords_never_shown() -> None:
    assert redact("http://ops:s3cret@ch.example:8123/db") == "http://ops:***@ch.example:8123/db"
    assert "s3cret" not in redact("https://u:s3cret@h/db")


def test_an_insert_leaves_its_rows_to_reference_counting(tmp_path: Path) -> None:
    """clickhouse-connect's InsertContext refers to itself: unless the writer breaks that
    cycle, every batch's columns wait for the cyclic GC (memory, and a GC pass walking them)."""
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    count(clickhouse, "SELECT 1")  # connected and migrated
    columns = touchpoint_columns(rows(20), datetime.now(UTC), 1.0)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        clickhouse.insert_columns("touchpoints", columns)
        del columns
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert "InsertContext" not in left
    assert left.count("list") < 5, left  # the columns went when the insert was done
    assert count(clickhouse, "SELECT count() FROM touchpoints") == 20
    clickhouse.close()
