"""The Faust app: touchpoints in; dead letters, metrics snapshots and signals out.

Read top to bottom: topics, tables, the one processing loop. The loop only moves bytes;
every decision is made by `Engine` (pure, shared with `touchstream replay`).

Guarantees: one batch is handled at a time (faust-streaming #606); offsets are committed
by `CommittedBatches`, not by Faust's acks, and only after a batch's outputs are on the
broker and its rows in ClickHouse, and then its state (at-least-once, no holes; see
streams/batches.py for why). Duplicates are absorbed downstream: state dedups by event_id
and offset, signal ids are deterministic, sinks write idempotently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson

from touchstream.ingest import attach_ingest
from touchstream.schemas.signal import Snapshot
from touchstream.settings import Settings
from touchstream.sinks.alerts import attach_webhooks
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.forget import forget_marker
from touchstream.sinks.query_api import attach_query_endpoint
from touchstream.sinks.rows import metrics_columns, touchpoint_row_columns
from touchstream.sinks.writer import attach_sinks, forget_in, write_batch
from touchstream.streams.batches import CommittedBatches
from touchstream.streams.bgnbd import BGNBDParams
from touchstream.streams.engine import Engine
from touchstream.streams.feed import set_fetch_max_wait
from touchstream.streams.handling import CLOCK_KEY, Handled, Record, handle_messages
from touchstream.streams.produce import BatchProducer, OutRecord
from touchstream.streams.rebuild import StateRebuild
from touchstream.streams.rules import Rules
from touchstream.streams.state import CustomerState
from touchstream.telemetry import Health, Telemetry, attach_metrics_endpoint

log = logging.getLogger("touchstream.worker")


class StagedTable(MutableMapping[str, Any]):
    """A Faust table of raw bytes, seen as a typed mapping whose writes wait for `take()`.

    The loop stages every write of a batch here and takes them at the end of the batch:
    one changelog write per key per batch (as Kafka Streams' record cache does), sent only
    once the batch's outputs and rows are acknowledged, so never a state that is ahead of
    its outputs. Reads and writes go to `table.data` directly, so they do not depend on Faust's
    "current event" (which `take_events` does not set per event, faust-streaming #497).

    A write is encoded at once, so a value read and written back dies with its event: kept
    as objects until the end of the batch, each state's dozen lists and dicts were walked by
    the cyclic GC. A later change to the object is not written unless it is written again,
    exactly as for a value read from the store.
    """

    def __init__(
        self, table: Any, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
    ) -> None:  # table: a Faust table (its `data` and `changelog_topic` are used)
        self.table = table
        self.encode = encode
        self.decode = decode
        self.partition = 0  # the partition of the message being handled
        self._staged: dict[str, tuple[bytes | None, int]] = {}  # encoded, partition

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        staged = self._staged.get(key)
        raw = self._store().get(key) if staged is None else staged[0]
        return default if raw is None else self.decode(raw)

    def has(self, key: str) -> bool:
        """Whether a key has a value, without decoding it."""
        staged = self._staged.get(key)
        return self._store().get(key) is not None if staged is None else staged[0] is not None

    def _store(self) -> MutableMapping[str, bytes]:
        """The stored values: a memory store's own dict (its mapping front costs two Python
        calls a read), or the store itself."""
        store = self.table.data
        return getattr(store, "data", store)  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged[key] = (self.encode(value), self.partition)

    def __delitem__(self, key: str) -> None:
        """Staged like a write; flushed as a changelog tombstone."""
        self._staged[key] = (None, self.partition)

    def _keys(self) -> set[str]:
        keys = set(self.table.data.keys())
        for key, (raw, _) in self._staged.items():
            if raw is None:
                keys.discard(key)
            else:
                keys.add(key)
        return keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _key_bytes(self) -> Callable[[str], bytes]:
        """A key's bytes exactly as Faust writes them, so its recovery reads them back.
        Faust's own path costs ~2 µs a key; a direct encoder is used when it gives the same
        bytes for keys with quotes, escapes and non-ASCII letters (JSON for our tables)."""
        topic, serializer = self.table.changelog_topic, self.table.key_serializer

        def faust(key: str) -> bytes:
            return topic.prepare_key(key, serializer, None, {})[0]  # type: ignore[no-any-return]

        probes = ("c-1", 'a"b\\c/d\n\t', "ключ:1", END_KEY)
        for direct in (orjson.dumps, str.encode):
            if all(direct(probe) == faust(probe) for probe in probes):
                return direct
        return faust

    def take(self, end_marker: bool = True) -> list[list[OutRecord]]:
        """Apply the staged writes; returns their changelog records, to be sent (in order,
        after the outputs they follow) with `send_until_acked(producer, *groups)`.

        `end_marker`: then one tombstone of END_KEY on every partition written, as a batch
        of its own. Tansu answers ListOffsets(latest) with the *base* offset of a
        partition's last record batch + 1 (measured), so Faust's recovery would stop before
        the rest of that batch and restore stale state; a one-record last batch hides
        nothing. Harmless on Apache Kafka (one small record per partition per batch).
        """
        name = self.table.changelog_topic.get_topic_name()
        key_bytes = self._key_bytes()
        records: list[OutRecord] = []
        store = self._store()
        for key, (raw, partition) in self._staged.items():
            if raw is None:
                store.pop(key, None)
            else:
                store[key] = raw
            records.append((name, partition, key_bytes(key), raw))
        self._staged.clear()
        if not end_marker:
            return [records]
        end = key_bytes(END_KEY)
        return [records, [(name, p, end, None) for p in sorted({r[1] for r in records})]]


def encode_state(state: CustomerState) -> bytes:
    # orjson's result keeps its ~8 KiB working buffer (measured with tracemalloc, orjson
    # 3.13): fine for a message on its way out, 9x the state for a value the table keeps
    return memoryview(orjson.dumps(state.to_row())).tobytes()


def decode_state(raw: bytes) -> CustomerState:
    data = orjson.loads(raw)
    # rows since 0.1 (positional); objects from before stay readable
    return CustomerState.from_row(data) if isinstance(data, list) else CustomerState.from_dict(data)


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
        broker_credentials=settings.faust_credentials(),
        broker_session_timeout=settings.consumer_session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.consumer_session_timeout_seconds / 5),
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_bind,
        web_host=settings.web_bind,
        # Faust's own pages would serve every table's values (customer state) to anyone
        # who can reach the port: only our endpoints, each with its own keys
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        producer_max_batch_size=settings.worker_batch_bytes,
        table_standby_replicas=settings.standby_replicas,
    )
    set_fetch_max_wait(app, settings.consumer_fetch_max_wait_ms)
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": settings.partitions,
        "acks": False,  # offsets are ours to commit: streams/batches.py
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
    # event times as their shortest round-trip text (what repr() writes), by C functions
    watermarks = StagedTable(clocks, orjson.dumps, float)
    engine = Engine(rules, population, states, watermarks, settings.partitions)
    outputs = {"dead_letters": dead_letters, "metrics": metrics, "signals": signals}

    spill_dir = settings.data_dir / "sink-rejected"
    telemetry = Telemetry()
    attach_metrics_endpoint(app, telemetry, settings.endpoint_keys("metrics"))
    health = Health()
    health.attach(app)
    alerts = attach_webhooks(app, clickhouse, settings, raw, telemetry)
    attach_sinks(
        app,
        clickhouse,
        signals=signals,
        dead_letters=dead_letters,
        batch_size=settings.batch_size,
        batch_seconds=settings.batch_seconds,
        spill_dir=spill_dir,
        on_signals=alerts,
        telemetry=telemetry,
    )
    attach_query_endpoint(app, clickhouse, settings)
    attach_ingest(app, settings, touchpoints, dead_letters)
    progress = Progress(telemetry)

    committed = CommittedBatches(
        app, touchpoints, settings.batch_size, settings.batch_seconds, telemetry
    )
    rebuild = StateRebuild(clickhouse, engine, states, watermarks, committed.resumed)

    producer = BatchProducer(app)
    topic_of = {name: topic.get_topic_name() for name, topic in outputs.items()}

    async def publish(records: list[Record], batch: list[tuple[Handled, int, int]]) -> None:
        """Outputs to the broker and rows to ClickHouse."""
        outgoing = [(topic_of[name], None, key, value) for name, key, value in records]
        await asyncio.gather(
            send_until_acked(producer, outgoing),
            store_rows(clickhouse, batch, spill_dir, telemetry),
        )

    async def persist(state: list[list[OutRecord]], clocks: list[list[OutRecord]]) -> None:
        """The state, after the batch's outputs and rows (`publish`): a state on the broker
        is never ahead of what it produced, or a restart would take the events it covers for
        redeliveries and their rows and snapshots would be lost. Every customer's state is
        on the broker before the partition clock says its silence checks are done (the
        changelogs are different topics: one after the other; a crash between them repeats
        checks, which is harmless, instead of skipping them)."""
        await send_until_acked(producer, *state)
        await send_until_acked(producer, *clocks)

    async def handle_batch(messages: list[Any]) -> tuple[Coroutine[Any, Any, None], ...]:
        """Handle a batch now; returns its writes in two stages, not started (`publish`,
        `persist`). Each stage starts after the same stage of the previous batch (a
        changelog write must not overtake an older one of the same key) and `persist` after
        the batch's own `publish`; the batch's offsets are committed when both are done.
        Yields to the loop every YIELD_EVERY records, so earlier batches' writes (acks, the
        ClickHouse insert's result) move on meanwhile."""
        await rebuild.ensure({message.partition for message in messages})
        batch: list[tuple[Handled, int, int]] = []
        for start in range(0, len(messages), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            chunk = messages[start : start + YIELD_EVERY]
            handle_messages(engine, settings, chunk, (states, watermarks), batch)
        records = [record for handled, _, _ in batch for record in handled.records]
        progress.add(batch, records)
        end_marker = settings.changelog_end_marker
        return (
            publish(records, batch),
            persist(states.take(end_marker), watermarks.take(end_marker)),
        )

    @app.task
    async def process() -> None:
        """One batch handled at a time (the `concurrency=1` of an agent; faust-streaming
        #606), the writes of the previous ones meanwhile."""
        await committed.run(handle_batch, stages=2, in_flight=WRITES_IN_FLIGHT)

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
        rebuild.reset()
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.topic_touchpoints)
        log.info("partitions of %s assigned: %s", settings.topic_touchpoints, mine)
        health.ready = True

    return app


YIELD_EVERY = 10  # records handled between two turns of the event loop (~1 ms)
# batches being written while the next is handled: one more than the stages absorbs the
# ClickHouse insert's and the broker's uneven answers (the loop waited ~10 % of its time
# with two; ~5 % with three, +3-5 % events/s)
WRITES_IN_FLIGHT = 3
END_KEY = "__end__"


class Progress:
    """Counts for the operator's log line (at most every 10 seconds) and for /metrics."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.events = 0
        self.kinds: dict[str, int] = {}
        self.window_start = time.monotonic()
        self.window_events = 0

    def add(self, batch: list[tuple[Handled, int, int]], records: list[Record]) -> None:
        counts: Counter[tuple[Any, str]] = Counter()
        for handled, _, _ in batch:
            counts[(self.telemetry.events, handled.outcome)] += 1
            for reason in handled.dead_reasons:
                counts[(self.telemetry.dead_letters, reason)] += 1
            for kind in handled.signal_kinds:
                counts[(self.telemetry.signals, kind)] += 1
        for (metric, label), n in counts.items():
            metric.labels(label).inc(n)
        events = len(batch)
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


async def send_until_acked(producer: BatchProducer, *groups: list[OutRecord]) -> None:
    """Send and wait for the broker's acks, retrying the whole lot until it is taken.

    Never raises for a broker problem: the batch loop must not die (its offsets stay
    uncommitted until this returns). Re-sent records are harmless downstream
    (deterministic ids, idempotent sinks, changelog writes of the same state).
    """
    delay = 0.2
    while True:
        try:
            await producer.send(*groups)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "publishing %d records failed (%s); retrying in %.1fs",
                sum(len(group) for group in groups),
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)


async def store_rows(
    clickhouse: ClickHouse,
    batch: list[tuple[Handled, int, int]],
    spill_dir: Path,
    telemetry: Telemetry | None = None,
) -> None:
    """Insert the batch's touchpoints and the latest metrics of each customer in it (the
    table keeps the latest per customer anyway). Written here, not by a sink of the metrics
    topic: that round trip cost a second pass through Faust for most events. A forget
    request splits the batch, so rows before it go and rows after it stay."""
    touchpoints: list[tuple[Any, ...]] = []
    positions: list[str] = []  # partition:offset of each touchpoint row
    latest: dict[str, tuple[Snapshot, str]] = {}

    async def write() -> None:
        if touchpoints:
            await write_batch(
                clickhouse,
                "touchpoints",
                touchpoint_row_columns(touchpoints, datetime.now(UTC)),
                positions,
                spill_dir,
                telemetry,
            )
            touchpoints.clear()
            positions.clear()
        if latest:
            snapshots = [snapshot for snapshot, _ in latest.values()]
            keys = [key for _, key in latest.values()]
            await write_batch(
                clickhouse,
                "customer_metrics",
                metrics_columns(snapshots),
                keys,
                spill_dir,
                telemetry,
            )
            latest.clear()

    for handled, partition, offset in batch:
        position = f"{partition}:{offset}"
        if handled.row is not None:
            touchpoints.append(handled.row)
            positions.append(position)
        for snapshot in handled.snapshots:
            latest[snapshot.customer_id] = (snapshot, position)
        if handled.forget is not None:
            await write()
            marker = forget_marker(*handled.forget)
            # dead letters are forgotten by their own writer, at the marker on their topic
            for table in ("touchpoints", "customer_metrics", "customer_metrics_daily"):
                await forget_in(clickhouse, table, marker)
    await write()
