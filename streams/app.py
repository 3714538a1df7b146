"""The Faust app: touchpoints in; dead letters, metrics snapshots and signals out.

Read top to bottom: topics, tables, the one agent. The agent only moves bytes; every
decision is made by `Engine` (pure, shared with `touchstream replay`).

Guarantees: agent concurrency is 1 (faust-streaming #606); Faust flushes the producer
before it commits offsets, so every output of a message is on the broker before the
message counts as done (at-least-once). Duplicates are absorbed downstream: state dedups
by event_id, signal ids are deterministic, sinks write idempotently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from schemas import (
    FieldError,
    TouchpointEvent,
    TouchpointRejected,
    dead_letter_for,
    parse_touchpoint,
)
from sinks.clickhouse import ClickHouse
from sinks.query_api import attach_query_endpoint
from sinks.rows import touchpoint_columns
from sinks.writer import attach_sinks, write_batch
from streams.bgnbd import BGNBDParams
from streams.engine import Engine, Outcome
from streams.rules import Rules
from streams.state import CustomerState
from touchstream.settings import Settings

log = logging.getLogger("touchstream.worker")


class StagedTable(MutableMapping[str, Any]):
    """A Faust table of raw bytes, seen as a typed mapping whose writes wait for `flush()`.

    The agent stages every write of a batch here, publishes the batch's outputs, waits for
    the broker to acknowledge them, and only then flushes: one changelog write per key per
    batch (as Kafka Streams' record cache does), and never a state that is ahead of its
    outputs. Reads and writes go to `table.data` directly, so they do not depend on Faust's
    "current event" (which `take_events` does not set per event, faust-streaming #497).
    """

    def __init__(
        self, table: Any, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
    ) -> None:
        self.table = table
        self.encode = encode
        self.decode = decode
        self.partition = 0  # the partition of the message being handled
        self._staged: dict[str, tuple[Any, int]] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        staged = self._staged.get(key)
        if staged is not None:
            return staged[0]
        raw = self.table.data.get(key)
        return default if raw is None else self.decode(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged[key] = (value, self.partition)

    def __delitem__(self, key: str) -> None:
        raise NotImplementedError("state is removed by `touchstream forget` tombstones")

    def __iter__(self) -> Iterator[str]:
        return iter(set(self.table.data.keys()) | set(self._staged))

    def __len__(self) -> int:
        return len(set(self.table.data.keys()) | set(self._staged))

    def flush(self) -> int:
        for key, (value, partition) in self._staged.items():
            raw = self.encode(value)
            self.table.data[key] = raw
            self.table.send_changelog(partition, key, raw)
        count = len(self._staged)
        self._staged.clear()
        return count

    def discard(self) -> None:
        self._staged.clear()


def encode_state(state: CustomerState) -> bytes:
    return orjson.dumps(state.to_dict())


def decode_state(raw: bytes) -> CustomerState:
    return CustomerState.from_dict(orjson.loads(raw))


def build_app(
    settings: Settings,
    bootstrap: str,
    rules: Rules,
    population: BGNBDParams,
    clickhouse: ClickHouse,
) -> faust.App:
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(datadir / settings.app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.consumer_session_timeout_seconds / 5),
        broker_commit_every=settings.commit_every,
        broker_commit_interval=settings.commit_interval_seconds,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
    )
    # changelog writes of a whole batch are buffered; the default of 100 only logs warnings
    app.producer.buffer.max_messages = max(100, settings.batch_size * 4)
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": settings.partitions,
    }
    touchpoints = app.topic(settings.topic_touchpoints, **raw)
    dead_letters = app.topic(settings.topic_dead_letters, **raw)
    metrics = app.topic(settings.topic_metrics, **raw)
    signals = app.topic(settings.topic_signals, **raw)

    customers = app.Table(
        "customer-state", key_type=str, value_type=bytes, partitions=settings.partitions
    )
    clocks = app.Table(
        "event-clock", key_type=str, value_type=bytes, partitions=settings.partitions
    )
    states = StagedTable(customers, encode_state, decode_state)
    watermarks = StagedTable(clocks, lambda t: repr(t).encode(), lambda raw: float(raw))
    engine = Engine(rules, population, states, watermarks, settings.partitions)
    outputs = {"dead_letters": dead_letters, "metrics": metrics, "signals": signals}

    spill_dir = settings.data_dir / "sink-rejected"
    attach_sinks(
        app,
        clickhouse,
        metrics=metrics,
        signals=signals,
        dead_letters=dead_letters,
        batch_size=settings.batch_size,
        batch_seconds=settings.batch_seconds,
        spill_dir=spill_dir,
    )
    attach_query_endpoint(app, clickhouse, settings)
    progress = Progress()

    @app.agent(touchpoints, concurrency=1)
    async def process(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, settings.batch_seconds):
            records: list[Record] = []
            rows: list[tuple[TouchpointEvent, int, int]] = []
            for event in events:
                message = event.message
                states.partition = watermarks.partition = message.partition
                handled, parsed = handle_message(
                    engine,
                    settings,
                    message.key,
                    message.value,
                    message.topic,
                    message.partition,
                    message.offset,
                )
                records.extend(handled)
                if parsed is not None:
                    rows.append((parsed, message.partition, message.offset))
            await deliver(records, outputs)  # acknowledged by the broker...
            states.flush()  # ...before the state moves on
            watermarks.flush()
            if rows:  # ...and the batch is in ClickHouse before Faust may commit it
                await write_batch(
                    clickhouse,
                    "touchpoints",
                    touchpoint_columns(rows, datetime.now(UTC), rules.wow_margin),
                    [f"{p}:{o}" for _, p, o in rows],
                    spill_dir,
                )
            progress.add(len(events), records)

    if settings.clock_tick_seconds > 0:

        @app.timer(interval=settings.clock_tick_seconds, on_leader=True)
        async def clock_ticks() -> None:
            """Wall-clock ticks go *through the log*, so silent partitions still get their
            silence checks and a re-read of the topic sees the very same ticks."""
            value = orjson.dumps({"clock": datetime.now(UTC).isoformat()})
            for partition in range(settings.partitions):
                await touchpoints.send(key=CLOCK_KEY, value=value, partition=partition)

    @app.on_partitions_assigned.connect  # type: ignore[misc]
    async def _rebalanced(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        engine.forget_members()
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.topic_touchpoints)
        log.info("partitions of %s assigned: %s", settings.topic_touchpoints, mine)

    return app


CLOCK_KEY = b"__clock__"
Record = tuple[str, bytes | None, bytes]  # output name, key, value


class Progress:
    """Counts for the operator's log line, printed at most every 10 seconds."""

    def __init__(self) -> None:
        self.events = 0
        self.kinds: dict[str, int] = {}
        self.window_start = time.monotonic()
        self.window_events = 0

    def add(self, events: int, records: list[Record]) -> None:
        self.events += events
        self.window_events += events
        for name, _, _ in records:
            self.kinds[name] = self.kinds.get(name, 0) + 1
        elapsed = time.monotonic() - self.window_start
        if elapsed >= 10.0:
            log.info(
                "processed %d events (%.0f/s over %.0fs); out: %s",
                self.events,
                self.window_events / elapsed,
                elapsed,
                self.kinds,
            )
            self.window_start, self.window_events = time.monotonic(), 0


async def deliver(records: list[Record], outputs: dict[str, faust.TopicT]) -> None:
    """Publish and wait for the broker's acks, retrying the whole batch until it is taken.

    Never raises for a broker problem: an exception here would let Faust ack the batch.
    Re-sent records are harmless downstream (deterministic ids, idempotent sinks).
    """
    delay = 0.2
    while True:
        try:
            pending = [
                await outputs[name].send(key=key, value=value) for name, key, value in records
            ]
            await asyncio.gather(*pending)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "publishing %d records failed (%s); retrying in %.1fs", len(records), error, delay
            )
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)


def handle_message(
    engine: Engine,
    settings: Settings,
    key: bytes | None,
    raw: bytes | None,
    topic: str,
    partition: int,
    offset: int,
) -> tuple[list[Record], TouchpointEvent | None]:
    """One input record -> the records to publish, and the event if it was valid."""
    received = datetime.now(UTC)
    payload = raw or b""
    if key == CLOCK_KEY:
        try:
            tick = datetime.fromisoformat(orjson.loads(payload)["clock"])
            if tick.tzinfo is None:
                raise ValueError("clock tick without timezone")
        except (ValueError, KeyError, TypeError) as error:
            rejected = TouchpointRejected(
                "invalid_clock_tick",
                [FieldError(loc="clock", type="invalid_clock_tick", msg=str(error))],
            )
            dead = dead_letter_for(
                payload,
                rejected,
                source=topic,
                received_at=received,
                partition=partition,
                offset=offset,
            )
            return [("dead_letters", None, dead.model_dump_json().encode())], None
        signals = engine.advance(partition, tick.timestamp())
        return [
            ("signals", s.customer_id.encode(), s.model_dump_json().encode()) for s in signals
        ], None
    try:
        event = parse_touchpoint(
            payload, max_future_skew=settings.max_future_skew, max_bytes=settings.max_payload_bytes
        )
    except TouchpointRejected as rejected:
        dead = dead_letter_for(
            payload,
            rejected,
            source=topic,
            received_at=received,
            partition=partition,
            offset=offset,
        )
        return [("dead_letters", None, dead.model_dump_json().encode())], None
    try:
        outcome: Outcome = engine.handle(event, partition)
    except Exception as error:  # a bug must cost one event, not the stream
        log.exception("processing %s failed; kept as a dead letter", event.event_id)
        failed = TouchpointRejected(
            "processing_error",
            [FieldError(loc="", type="processing_error", msg=f"{type(error).__name__}: {error}")],
        )
        dead = dead_letter_for(
            payload, failed, source=topic, received_at=received, partition=partition, offset=offset
        )
        return [
            ("dead_letters", event.customer_id.encode(), dead.model_dump_json().encode())
        ], event
    out: list[tuple[str, bytes | None, bytes]] = []
    if outcome.rejection is not None:
        dead = dead_letter_for(
            payload,
            outcome.rejection,
            source=topic,
            received_at=received,
            partition=partition,
            offset=offset,
        )
        out.append(("dead_letters", event.customer_id.encode(), dead.model_dump_json().encode()))
    for snapshot in outcome.snapshots:
        out.append(("metrics", snapshot.customer_id.encode(), snapshot.model_dump_json().encode()))
    for signal in outcome.signals:
        out.append(("signals", signal.customer_id.encode(), signal.model_dump_json().encode()))
    return out, event
