"""StateRebuild tells a group that never committed, on the log its rows came from, from a
broker that forgot everything: by the events ClickHouse holds at the batch's offsets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import orjson

from tests.histories import three_late_deliveries
from tests.sinks.test_writer import handled
from touchstream.rebuild import StateRebuild
from touchstream.schemas.decoder import decode_touchpoint
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.writer import store_batch
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine
from touchstream.streams.rules import Rules
from touchstream.streams.state import event_key


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


def test_a_rebuilt_redirect_remembers_the_ids_its_touchpoints_left(tmp_path: Path) -> None:
    """After the broker lost everything, an id merged away is rebuilt as a redirect to its
    customer, remembering its own touchpoints' recent ids and how far back, as the redirect
    a merge leaves does: a copy the resolver sends again is a duplicate there, and one older
    than that memory is late there, instead of a second row under the survivor's id."""
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    engine = Engine(Rules(), RiskModel(), {}, {}, 1)
    events = [  # the alias's own touchpoints: two days apart, so the first is forgotten
        {
            "event_id": f"a{n}",
            "customer_id": "alias",
            "occurred_at": f"2026-01-{10 + 2 * n:02d}T10:00:00Z",
            "channel": "web",
            "kind": "visit",
        }
        for n in range(3)
    ]
    values = [(b"alias", orjson.dumps(e)) for e in events]
    asyncio.run(store_batch(clickhouse, handled(engine, values, 0), tmp_path / "spill"))
    rebuild = StateRebuild(clickhouse, engine, states=None, watermarks=None)
    states, _, _ = rebuild._history(
        0, {"alias"}, "kafka_partition = {p:UInt16}", {"p": 0}, False, {"alias": "survivor"}
    )
    redirect = states["alias"]
    assert redirect.merged_into == "survivor" and not redirect.event_count
    assert set(redirect.seen) == {event_key("a2")}
    assert redirect.last_seen == engine.states["alias"].last_seen

    def outcome(event_id: str, day: int) -> str:
        event = {**events[0], "event_id": event_id, "occurred_at": f"2026-01-{day}T09:00:00Z"}
        copy = decode_touchpoint(orjson.dumps(event), earliest=datetime(2000, 1, 1, tzinfo=UTC))
        return Engine(Rules(), RiskModel(), dict(states), {}, 1).step(copy, 0).status

    assert outcome("a2", 14) == "duplicate"
    assert outcome("a0", 10) == "late"
    assert outcome("new", 14) == "redirected"
    clickhouse.close()
