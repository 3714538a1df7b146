"""store_batch: the one write path, against a real chDB: every table a batch touches, and a
forget request that splits a batch (rows before it go, from every table; rows after stay)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import orjson

from tests.histories import three_late_deliveries
from touchstream.schemas import InputLimits
from touchstream.schemas.control import FORGET_KEY, forget_marker
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.identity import store_identity
from touchstream.sinks.writer import store_batch
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine
from touchstream.streams.identity import IdentityGraph
from touchstream.streams.records import Processed, process_records
from touchstream.streams.resolve import Resolved, resolve_record
from touchstream.streams.rules import IdentityRules, Rules

LIMITS = InputLimits(earliest=datetime(2000, 1, 1, tzinfo=UTC))


def handled(engine: Engine, values: list[tuple[bytes, bytes]], first: int) -> list:
    batch: list[tuple[Processed, int, int]] = []
    records = [
        SimpleNamespace(key=k, value=v, topic="in", partition=0, offset=first + i)
        for i, (k, v) in enumerate(values)
    ]
    process_records(engine, LIMITS, records, (), batch)
    return batch


def counts(clickhouse: ClickHouse, customer: str) -> dict[str, int]:
    where = {"customer": customer}
    found = {}
    for table in ("touchpoints", "customer_metrics", "signals"):
        sql = f"SELECT count() FROM {table} FINAL WHERE customer_id = {{customer:String}}"
        found[table] = int(clickhouse.query(sql, where)[1][0][0])
    sql = "SELECT count() FROM dead_letters WHERE position(payload, {customer:String}) > 0"
    found["dead_letters"] = int(clickhouse.query(sql, where)[1][0][0])
    return found


def test_one_batch_fills_every_table_and_a_forget_empties_them(tmp_path: Path) -> None:
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    engine = Engine(Rules(), RiskModel(), {}, {}, 1)
    history, _ = three_late_deliveries()
    key = history.customer.encode()
    values = [(key, orjson.dumps(event)) for event in history.events]
    unknown_channel = {**history.events[0], "event_id": "bad-1", "channel": "pigeon"}
    values.append((key, orjson.dumps(unknown_channel)))
    first = handled(engine, values, 0)
    observed: list[tuple[str, int]] = []
    asyncio.run(
        store_batch(clickhouse, first, tmp_path / "spill", lambda t, n, s: observed.append((t, n)))
    )
    signals = sum(len(h.signals) for h, _, _ in first)
    assert signals >= 1
    assert counts(clickhouse, history.customer) == {
        "touchpoints": len(history.events),
        "customer_metrics": 1,
        "signals": signals,
        "dead_letters": 1,
    }
    assert dict(observed)["touchpoints"] == len(history.events)
    # the batch spans weeks of event time: the daily history keeps the last of every day
    sql = "SELECT day, as_of FROM customer_metrics_daily FINAL ORDER BY day"
    daily = clickhouse.query(sql)[1]
    days = sorted({datetime.fromisoformat(e["occurred_at"]).date() for e in history.events})
    assert [row[0] for row in daily] == days
    last = {}
    for event in history.events:
        at = datetime.fromisoformat(event["occurred_at"])
        last[at.date()] = max(last.get(at.date(), at), at)
    assert [row[1].replace(tzinfo=UTC) for row in daily] == [last[d] for d in days]

    # a forget request, then one more event of the same customer, in one batch
    later = {**history.events[0], "event_id": "after-forget", "occurred_at": "2026-06-01T10:00Z"}
    marker = forget_marker(history.customer, datetime(2026, 5, 1, tzinfo=UTC))
    second = handled(engine, [(FORGET_KEY, marker), (key, orjson.dumps(later))], len(values))
    asyncio.run(store_batch(clickhouse, second, tmp_path / "spill"))
    assert counts(clickhouse, history.customer) == {
        "touchpoints": 1,
        "customer_metrics": 1,
        "signals": 0,
        "dead_letters": 0,
    }
    _, done = clickhouse.query("SELECT table_name FROM forgotten_customers ORDER BY table_name")
    assert [row[0] for row in done] == [
        "customer_metrics",
        "customer_metrics_daily",
        "dead_letters",
        "identity_graph",
        "identity_map",
        "identity_merges",
        "identity_refusals",
        "signals",
        "touchpoints",
        "wow_offers",
    ]
    clickhouse.close()


def test_a_forget_through_the_resolver_removes_the_rows_that_hold_only_identifiers(
    tmp_path: Path,
) -> None:
    """Identity rows, and a dead letter that names the customer only by a pseudonym."""
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    graph = IdentityGraph(IdentityRules())
    email, phone = "h1:" + "a" * 32, "h1:" + "b" * 32

    def identify(n: int, day: int, identifiers: dict[str, str], **extra: object) -> Resolved:
        event = {
            "event_id": f"e{n}",
            "occurred_at": f"2026-03-0{day}T10:00:00Z",
            "channel": "web",
            "kind": "purchase",
            "identifiers": [{"type": t, "value": v} for t, v in identifiers.items()],
            **extra,
        }
        return resolve_record(graph, LIMITS, None, orjson.dumps(event), "identify", 0, n)

    batch = [
        (identify(1, 1, {"email": email}), 1),
        (identify(2, 2, {"phone": phone}), 2),
        (identify(3, 3, {"email": email, "phone": phone}), 3),
        (identify(4, 4, {"email": email}, channel="pigeon"), 4),  # a dead letter
    ]
    asyncio.run(store_identity(clickhouse, batch, graph.take_changes(), 4, tmp_path / "spill"))
    (merge,) = batch[2][0].merges
    tables = ("identity_map", "identity_merges", "identity_refusals", "dead_letters")
    tables += ("identity_graph",)

    def left() -> dict[str, int]:
        return {t: int(clickhouse.query(f"SELECT count() FROM {t}")[1][0][0]) for t in tables}

    assert left() == {
        "identity_map": 3,
        "identity_merges": 1,
        "identity_refusals": 0,
        "dead_letters": 1,
        "identity_graph": 2,  # the survivor (its identifiers) and its alias
    }
    forgotten = resolve_record(
        graph,
        LIMITS,
        FORGET_KEY,
        forget_marker("email:" + email, datetime(2026, 4, 1, tzinfo=UTC)),
        "identify",
        0,
        5,
    )
    graph.resolved(5)  # the forget's batch writes what changed (the offset, nothing gone)
    asyncio.run(store_identity(clickhouse, [], graph.take_changes(), 5, tmp_path / "spill"))
    engine = Engine(Rules(), RiskModel(), {}, {}, 1)
    markers = [(k, v) for name, k, v in forgotten.records if name == "touchpoints"]
    assert sorted(k for k, _ in markers) == sorted(
        [merge.survivor.encode(), merge.absorbed.encode()]
    )
    asyncio.run(store_batch(clickhouse, handled(engine, markers, 0), tmp_path / "spill"))
    assert left() == {**dict.fromkeys(tables, 0), "identity_graph": 1}
    (entry,) = clickhouse.query("SELECT name, value FROM identity_graph")[1]
    assert entry[0] == "o:" and merge.survivor not in entry[1]
    clickhouse.close()
