"""StateRebuild tells a group that never committed, on the log its rows came from, from a
broker that forgot everything: by the events ClickHouse holds at the batch's offsets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import orjson

from tests.histories import three_late_deliveries
from tests.sinks.test_writer import handled
from touchstream.rebuild import StateRebuild
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.writer import store_batch
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine
from touchstream.streams.rules import Rules


def test_the_same_log_is_known_by_its_events(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    engine = Engine(Rules(), RiskModel(), {}, {}, 1)
    history, _ = three_late_deliveries()
    values = [(history.customer.encode(), orjson.dumps(e)) for e in history.events]
    asyncio.run(store_batch(clickhouse, handled(engine, values, 0), tmp_path / "spill"))
    rebuild = StateRebuild(clickhouse, engine, states=None, watermarks=None)

    def same(pairs: list[tuple[int, bytes]]) -> bool:
        messages = [SimpleNamespace(partition=0, offset=o, value=v) for o, v in pairs]
        return asyncio.run(rebuild._same_log(0, messages))

    assert same([(n, value) for n, (_, value) in enumerate(values)])
    assert same([(1, values[1][1])])  # a batch that starts anywhere in the log
    other = orjson.dumps({**history.events[0], "event_id": "someone-new"})
    assert not same([(0, other), (1, values[1][1])])  # a new log: offsets start afresh
    assert not same([(len(values) + 5, other)])  # offsets ClickHouse has no row at
    assert not same([(0, b'{"clock": "2026-01-01T00:00:00Z"}')])
    clickhouse.close()
