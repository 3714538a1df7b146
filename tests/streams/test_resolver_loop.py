"""The resolver's batch loop (streams/runtime/resolver.py) without a broker: what one batch
publishes, stores and counts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from tests.streams.test_resolve import LIMITS, identified
from tests.streams.test_staged_table import Changelog
from touchstream.streams.identity import IdentityGraph
from touchstream.streams.resolve import Resolved
from touchstream.streams.rules import IdentityRules
from touchstream.streams.runtime.resolver import Resolver
from touchstream.streams.runtime.tables import StagedTable
from touchstream.streams.runtime.telemetry import Telemetry

EMAIL, PHONE = ("email", "h1:" + "a" * 32), ("phone", "h1:" + "b" * 32)


class Producer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, *groups: Any) -> None:
        self.sent.extend(groups)


def resolver_of(producer: Producer, store: Any, telemetry: Telemetry | None = None) -> Resolver:
    """A resolver over an in-memory graph table, publishing to `producer`."""
    table = SimpleNamespace(data={}, changelog_topic=Changelog(), key_serializer="raw")
    return Resolver(
        lambda: IdentityGraph(IdentityRules()),
        LIMITS,
        StagedTable(table, bytes, bytes),
        producer,  # type: ignore[arg-type]
        {"touchpoints": "tp", "identity": "id", "dead_letters": "dead"},
        store,
        telemetry=telemetry,
    )


def test_a_batch_publishes_in_order_stores_only_rows_and_counts_what_happened() -> None:
    producer, stored = Producer(), list[tuple[list[tuple[Resolved, int]], int]]()

    async def store(batch: list[tuple[Resolved, int]], changes: Any, version: int) -> None:
        stored.append((batch, version))

    telemetry = Telemetry()
    resolver = resolver_of(producer, store, telemetry)
    values = [
        identified(1, 0, [EMAIL]),  # a new customer: identity map rows
        identified(2, 1, [EMAIL]),  # returning: nothing to store
        identified(3, 2, [PHONE]),  # another new customer
        identified(4, 3, [EMAIL, PHONE]),  # the two are one: a merge
        b'{"event_id": "x", ',  # a dead letter
    ]
    messages = [
        SimpleNamespace(topic="identify", partition=0, offset=10 + n, key=None, value=v)
        for n, v in enumerate(values)
    ]

    async def run() -> None:
        publish, persist = await resolver.run_batch(messages)
        await publish
        await persist

    asyncio.run(run())

    ((batch, version),) = stored
    assert [offset for _, offset in batch] == [10, 12, 13, 14] and version == 14
    assert [r.outcome for r, _ in batch] == ["resolved", "resolved", "resolved", "rejected"]
    outgoing = producer.sent[0]
    assert [topic for topic, *_ in outgoing] == ["tp", "tp", "tp", "tp", "id", "tp", "dead"]
    assert b'"e2"' in outgoing[1][3] and b"identifiers" not in outgoing[1][3]
    counted = {
        sample.labels["what"]: sample.value
        for metric in telemetry.identity.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    assert counted == {"resolved": 4, "rejected": 1, "merged": 1}
    assert resolver.graph is not None and resolver.graph.resolved_through == 14


def test_a_long_batch_keeps_its_order_and_a_redelivered_one_publishes_nothing() -> None:
    """The loop resolves a batch in slices between turns of the event loop: the records
    still go out in offset order. Delivered again after the graph persisted their offset
    (a crash before the commit), they are skipped."""
    producer = Producer()

    async def store(batch: list[tuple[Resolved, int]], changes: Any, version: int) -> None:
        pass

    resolver = resolver_of(producer, store)
    messages = [
        SimpleNamespace(
            topic="identify",
            partition=0,
            offset=n,
            key=None,
            value=identified(n, n / 24, [("email", f"h1:{n % 7:032x}")]),
        )
        for n in range(120)
    ]

    async def run() -> list[Any]:
        publish, persist = await resolver.run_batch(messages)
        await publish
        await persist
        return producer.sent[0]

    first = asyncio.run(run())
    assert [orjson.loads(value)["event_id"] for *_, value in first] == [f"e{n}" for n in range(120)]
    producer.sent.clear()
    assert asyncio.run(run()) == []
