"""The batch pipeline without a broker: what one batch publishes, stores, alerts and
persists, and in which order. (The same code against a real broker: tests/e2e.)"""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tests.histories import three_late_deliveries
from tests.streams.test_staged_table import Changelog
from touchstream.schemas import InputLimits, Signal
from touchstream.schemas.control import FORGET_KEY, forget_marker
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.engine import Engine
from touchstream.streams.rules import Rules
from touchstream.streams.runtime import produce
from touchstream.streams.runtime.pipeline import STAGES, Batch, Pipeline
from touchstream.streams.runtime.tables import StagedTable

TOPICS = {"dead_letters": "out-dead", "metrics": "out-metrics", "signals": "out-signals"}
LIMITS = InputLimits(earliest=datetime(2000, 1, 1, tzinfo=UTC))


class Producer:
    """Records each `send` (a call = the groups of one `send_until_acked`)."""

    def __init__(self, log: list[str], failures: int = 0) -> None:
        self.sent: list[tuple[list[Any], ...]] = []
        self.log, self.failures = log, failures

    async def send(self, *groups: list[Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.sent.append(groups)
        self.log.append("send")


def table(name: str) -> SimpleNamespace:
    changelog = Changelog()
    changelog.get_topic_name = lambda: name  # type: ignore[method-assign]
    return SimpleNamespace(data={}, changelog_topic=changelog, key_serializer="raw")


def pipeline(log: list[str]) -> tuple[Pipeline, Producer, list[Batch], list[Signal]]:
    states = StagedTable(table("state-changelog"), CustomerState.encode, CustomerState.decode)
    clocks = StagedTable(table("clock-changelog"), orjson.dumps, float)
    engine = Engine(Rules(), RiskModel(), states, clocks, 1)
    producer = Producer(log)
    stored: list[Batch] = []
    alerted: list[Signal] = []

    async def store(batch: Batch) -> None:
        await asyncio.sleep(0.01)  # an insert takes a while: alerts must wait for it
        stored.append(batch)
        log.append("store")

    async def alerts(signals: list[Signal]) -> None:
        alerted.extend(signals)
        log.append("alerts")

    run = Pipeline(engine, LIMITS, states, clocks, producer, TOPICS, store, alerts=alerts)
    return run, producer, stored, alerted


def messages(values: list[tuple[bytes | None, bytes]]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(key=key, value=value, topic="in", partition=0, offset=offset)
        for offset, (key, value) in enumerate(values)
    ]


def test_a_batch_sends_stores_alerts_then_persists() -> None:
    history, _ = three_late_deliveries()
    values: list[tuple[bytes | None, bytes]] = [
        (history.customer.encode(), orjson.dumps(event)) for event in history.events
    ]
    values.append((b"x", b"{not json"))
    log: list[str] = []
    run, producer, stored, alerted = pipeline(log)

    async def scenario() -> None:
        writes = await run.run_batch(messages(values))
        assert len(writes) == STAGES
        assert all(inspect.getcoroutinestate(w) == inspect.CORO_CREATED for w in writes)
        assert producer.sent == [] and stored == []
        send, store, persist = writes
        await send
        assert log == ["send"]
        await store
        assert log == ["send", "store", "alerts"]
        await persist

    asyncio.run(scenario())
    (batch,) = stored
    assert [offset for _, _, offset in batch] == list(range(len(values)))
    outputs = producer.sent[0][0]
    topics = {topic for topic, _, _, _ in outputs}
    assert topics == set(TOPICS.values())
    signals = [s for handled, _, _ in batch for s in handled.signals]
    assert signals and alerted == signals
    assert sum(1 for t, *_ in outputs if t == "out-signals") == len(signals)
    (letter,) = [d for handled, _, _ in batch for d in handled.dead_letters]
    assert letter.error_kind == "invalid_json" and letter.offset == len(values) - 1
    # then the state and the clock changelogs, one send each, in that order
    state_groups, clock_groups = producer.sent[1], producer.sent[2]
    assert {r[0] for r in state_groups[0]} == {"state-changelog"}
    assert {r[0] for r in clock_groups[0]} == {"clock-changelog"}


def test_batches_handled_while_an_insert_runs_go_in_the_next_insert_together() -> None:
    """Three batches handled before the first one's rows are stored: the first store stage
    inserts all three in order, the others insert nothing, and each batch's signals reach
    the webhooks once, with its own store stage."""
    history, _ = three_late_deliveries()
    key = history.customer.encode()
    log: list[str] = []
    run, _, stored, alerted = pipeline(log)
    thirds = [history.events[i::3] for i in range(3)]

    async def scenario() -> list[int]:
        writes = []
        for n, events in enumerate(thirds):
            values: list[tuple[bytes | None, bytes]] = [(key, orjson.dumps(e)) for e in events]
            batch = messages(values)
            for offset, message in enumerate(batch):
                message.offset = 100 * n + offset
            writes.append(await run.run_batch(batch))
        alerts_after = []
        for _, store, _ in writes:
            await store
            alerts_after.append(len(alerted))
        for send, _, persist in writes:
            await send
            await persist
        return alerts_after

    alerts_after = asyncio.run(scenario())
    (together,) = stored
    assert [offset for _, _, offset in together] == [
        100 * n + i for n, events in enumerate(thirds) for i in range(len(events))
    ]
    signals = [[s for h, _, o in together if o // 100 == n for s in h.signals] for n in range(3)]
    assert sum(map(len, signals)) >= 1
    assert alerts_after == [len(signals[0]), len(signals[0] + signals[1]), len(alerted)]
    assert alerted == signals[0] + signals[1] + signals[2]


def test_a_forget_request_is_handed_on_to_store_and_topics() -> None:
    log: list[str] = []
    run, producer, stored, _ = pipeline(log)
    marker = forget_marker("gone", datetime(2026, 5, 1, tzinfo=UTC))

    async def scenario() -> None:
        for write in await run.run_batch(messages([(FORGET_KEY, marker)])):
            await write

    asyncio.run(scenario())
    ((handled, _, _),) = stored[0]
    assert handled.forget == marker
    assert sorted(t for t, _, _, _ in producer.sent[0][0]) == sorted(TOPICS.values())


def test_send_until_acked_retries_until_the_broker_takes_it() -> None:
    log: list[str] = []
    producer = Producer(log, failures=2)
    asyncio.run(produce.send_until_acked(producer, [("t", 0, b"k", b"v")]))  # type: ignore[arg-type]
    assert producer.sent == [([("t", 0, b"k", b"v")],)] and producer.failures == 0


def test_send_until_acked_can_be_cancelled_while_it_waits() -> None:
    producer = Producer([], failures=10**6)

    async def scenario() -> None:
        task = asyncio.create_task(produce.send_until_acked(producer, []))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
