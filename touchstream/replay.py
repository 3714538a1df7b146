"""Replay / backfill: the live engine over a file of events, without a broker.

Events are fed through the same `Engine` the worker runs, partitioned the way Kafka's
default partitioner would place them, so the signals are the live ones. They are ordered by
event time first (`sort_by_time`, the default): a file grouped by customer, as CRM and
warehouse exports are, would otherwise move each partition's event-time clock customer by
customer, and the silence checks of everyone before would never run. With `as_of`, the risk
model is first learned from the file's history before that instant (`learn_before_as_of`),
as the live system learns only from its past.

Touchpoints named by identifiers are resolved in the same event-time order by the live
resolver's step (`streams/resolve.py`), their values pseudonymised first as the SDK does;
a merge joins the two states as the live keyed stage does (`Engine.merge`).
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from touchstream.inputs import InputRecord
from touchstream.learner import learn_from_events
from touchstream.publisher import protect_identifiers
from touchstream.schemas import (
    DeadLetter,
    MetricsSnapshot,
    Signal,
    TouchpointRejected,
    dead_letter_for,
    validate_touchpoint,
)
from touchstream.schemas.decoder import Touchpoint, decode_touchpoint
from touchstream.schemas.signal import Snapshot
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.identity import identity_columns
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.engine import Engine, StepResult, partition_for
from touchstream.streams.evaluate import assess
from touchstream.streams.identity import IdentityGraph, denied_keys
from touchstream.streams.offers import OVER_CAPACITY, Offer, allot, is_offer
from touchstream.streams.params import DAY
from touchstream.streams.resolve import Resolved, resolve_event, unresolved
from touchstream.streams.rows import (
    dead_letter_columns,
    metrics_columns,
    offer_columns,
    signal_columns,
    touchpoint_columns,
)
from touchstream.streams.rules import Rules

MAX_SORTED_EVENTS = 5_000_000  # ~3 GB of parsed events: beyond, sort the file beforehand


class ReplayRefused(ValueError):
    """The replay cannot be done as asked (the message says what to do instead)."""


@dataclass
class ReplayResult:
    signals: list[Signal] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    final: list[MetricsSnapshot] = field(default_factory=list)
    history: list[Snapshot] = field(default_factory=list)  # every snapshot, as live
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    states: dict[str, CustomerState] = field(default_factory=dict)
    touchpoints: list[tuple[Touchpoint, int, int]] = field(default_factory=list)
    model: RiskModel = field(default_factory=RiskModel)
    out_of_order: int = 0  # events older than one before them in the file, by over a day
    offers: list[Offer] = field(default_factory=list)  # every wow offer, decided
    identity: list[tuple[Resolved, int]] = field(default_factory=list)  # with its line
    # where each signal and dead letter came in the replay's order (event time, line...):
    # how the parts of a parallel replay are put back in the order of a single one
    signal_order: list[tuple[float, ...]] = field(default_factory=list)
    dead_letter_order: list[tuple[float, ...]] = field(default_factory=list)

    @property
    def over_capacity(self) -> int:
        return sum(1 for offer in self.offers if offer.decision == OVER_CAPACITY)


@dataclass(frozen=True)
class IdentityOptions:
    """How identifier values are pseudonymised (the publishers' settings)."""

    secret: bytes | None = None
    default_region: str = ""


def validate_record(
    record: InputRecord,
    max_bytes: int,
    earliest: datetime | None,
    identity: IdentityOptions = IdentityOptions(),
) -> Touchpoint:
    if isinstance(record.payload, bytes):
        event = decode_touchpoint(record.payload, max_bytes=max_bytes, earliest=earliest)
        if not event.identifiers:
            return event
        payload: Any = orjson.loads(record.payload)
    else:
        payload = record.payload
    validated = validate_touchpoint(payload, earliest=earliest)
    if validated.identifiers:
        validated = protect_identifiers(validated, identity.secret, identity.default_region)
    return Touchpoint.from_event(validated)


Progress = Callable[[str, int, int | None], None]
"""(stage, completed, total): "read" counts the file's records, "run" the events applied."""


def replay(
    records: Iterable[InputRecord],
    *,
    rules: Rules,
    model: RiskModel,
    partitions: int,
    source: str,
    as_of: datetime | None = None,
    sort_by_time: bool = True,
    learn_before_as_of: bool = False,
    max_bytes: int = 64 * 1024,
    earliest: datetime | None = None,
    progress: Progress | None = None,
    identity: IdentityOptions = IdentityOptions(),
    keep_rows: bool = True,
) -> ReplayResult:
    """The replay of `records`, in one process. `keep_rows=False` keeps neither the
    touchpoints nor every snapshot along the way (only a ClickHouse backfill writes them),
    so memory holds the customers' states and the events to order, not every output."""
    with fewer_collections() as collections:
        run = ReplayRun(rules, model, partitions, source, identity, keep_rows, progress)
        events = run.read(records, max_bytes, earliest, sort_by_time)
        collections.settle()
        if as_of is not None and learn_before_as_of:
            run.model = learn_from_events((event for _, event in events), as_of.timestamp(), rules)
        run.apply(events, as_of)
        run.finish(run.end(as_of))
        decide_offers(run.result, rules)
        return run.result


class NeedsOneProcess(Exception):
    """A part of a replay met a touchpoint named by identifiers: resolution joins customers
    of any partition, so the whole replay runs in one process."""


class fewer_collections:
    """The cyclic collector walks less while a replay runs. A replay keeps hundreds of
    thousands of events and states alive, and each pass of the collector walks them: a
    200,000-event replay spent a third of its time there. Young passes come rarely, and
    once the events are read and ordered `settle` takes them out of the walks (they stay
    to the end). Both are undone on exit."""

    def __init__(self, threshold: int = 200_000) -> None:
        self.threshold = threshold
        self.before: tuple[int, int, int] = (0, 0, 0)  # the thresholds in force, on enter

    def __enter__(self) -> fewer_collections:
        self.before = gc.get_threshold()
        gc.set_threshold(max(self.threshold, self.before[0]), *self.before[1:])
        return self

    def settle(self) -> None:
        """Everything alive now lives to the end of the replay: out of the collector's walks
        (another 13 % of a million-event replay)."""
        gc.freeze()

    def __exit__(self, *exc: object) -> None:
        gc.unfreeze()
        gc.set_threshold(*self.before)


class ReplayRun:
    """One replay's stages: `read` (validate, order), `apply` (the engine, in event time),
    `finish` (every customer's final metrics at the end). A parallel replay
    (`touchstream.replay_parallel`) runs them in each process over the partitions it owns,
    and needs the end of all of them before `finish`."""

    def __init__(
        self,
        rules: Rules,
        model: RiskModel,
        partitions: int,
        source: str,
        identity: IdentityOptions = IdentityOptions(),
        keep_rows: bool = True,
        progress: Progress | None = None,
        resolve: bool = True,
        received_at: datetime | None = None,
    ) -> None:
        self.rules, self.model, self.partitions, self.source = rules, model, partitions, source
        self.identity, self.keep_rows, self.progress = identity, keep_rows, progress
        self.resolve = resolve  # False: a part of a parallel replay (NeedsOneProcess)
        self.result = ReplayResult()
        self.watermarks: dict[str, float] = {}
        self.received = received_at or datetime.now(UTC)  # the dead letters' received_at
        self.sorted = True

    def read(
        self,
        records: Iterable[InputRecord],
        max_bytes: int,
        earliest: datetime | None,
        sort_by_time: bool,
    ) -> list[tuple[int, Touchpoint]]:
        """The valid events with their lines (in event time when `sort_by_time`); the others
        become dead letters. The records themselves are not kept: a million raw payloads
        would be ~0.4 GB."""
        result, progress = self.result, self.progress
        events: list[tuple[int, Touchpoint]] = []
        count = 0
        for count, record in enumerate(records, start=1):
            try:
                event = validate_record(record, max_bytes, earliest, self.identity)
            except TouchpointRejected as rejected:
                raw: Any = record.payload
                if not isinstance(raw, bytes):
                    raw = repr(raw)
                result.dead_letters.append(
                    dead_letter_for(
                        raw,
                        rejected,
                        source=self.source,
                        received_at=self.received,
                        line=record.line,
                    )
                )
                result.dead_letter_order.append((0, 0.0, record.line))
            else:
                if not self.resolve and (event.identifiers or event.customer_id is None):
                    raise NeedsOneProcess(f"line {record.line} names its customer by identifiers")
                events.append((record.line, event))
            if progress and count % 5000 == 0:
                progress("read", count, None)
            if sort_by_time and len(events) > MAX_SORTED_EVENTS:
                raise ReplayRefused(
                    f"more than {MAX_SORTED_EVENTS:,} events to order by event time in memory: "
                    "sort the file by occurred_at first (e.g. `sort` on an ISO timestamp "
                    "column) and replay it with --no-sort-by-time"
                )
        if progress:
            progress("read", count, None)
        self.sorted = sort_by_time
        if sort_by_time:
            events.sort(key=lambda pair: pair[1].occurred_at)
        else:
            result.out_of_order = _out_of_order(event for _, event in events)
        return events

    def apply(self, events: list[tuple[int, Touchpoint]], as_of: datetime | None) -> None:
        """The engine over the events, in their order; with `as_of`, every partition's
        event time then moves to it. Consumes `events`: each is let go once applied (what
        a replay holds at its peak is the events or their outputs, not both)."""
        result, progress, keep = self.result, self.progress, self.keep_rows
        partitions = self.partitions
        engine = Engine(
            self.rules, self.model, result.states, self.watermarks, partitions, snapshots=keep
        )
        graph = IdentityGraph(
            self.rules.identity, denied_keys(self.rules.identity, self.identity.secret)
        )
        partition_of: dict[str, int] = {}  # murmur2 in Python is ~2.5 us: once a customer
        result.model = self.model

        def reject(
            position: tuple[int, float, int], event: Touchpoint, why: TouchpointRejected
        ) -> None:
            result.dead_letters.append(
                dead_letter_for(
                    event.to_json(),
                    why,
                    source=self.source,
                    received_at=self.received,
                    line=position[2],
                )
            )
            result.dead_letter_order.append(position)

        def emitted(outcome: StepResult, position: tuple[float, ...]) -> None:
            for index, signal in enumerate(outcome.signals):
                result.signals.append(signal)
                result.signal_order.append((*position, index))
            if keep:
                result.history += outcome.snapshots

        total = len(events)
        events.reverse()
        done = 0
        while events:
            line, event = events.pop()
            done += 1
            at = event.occurred_at.timestamp() if self.sorted else 0.0
            if progress and done % 5000 == 0:
                progress("run", done, total)
            if event.identifiers or event.customer_id is None:
                resolved, named = resolve_event(graph, event)
                result.identity.append((resolved, line))
                for merge in resolved.merges:
                    merged = engine.merge(merge.survivor, merge.absorbed)
                    if merged is not None and keep:
                        result.history += merged.snapshots
                if named is None:
                    reject((1, at, line), event, unresolved(resolved.refusals))
                    continue
                event = named
            customer = graph.customer_of(event.customer_id or "")
            if customer is not None and customer != event.customer_id:  # by an alias
                event = msgspec.structs.replace(event, customer_id=customer)
            key = event.customer_id or ""
            partition = partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = partition_for(key, partitions)
            if keep:
                result.touchpoints.append((event, partition, line))
            outcome = engine.step(event, partition)
            emitted(outcome, (at, line))
            if outcome.status == "applied":
                result.applied += 1
            elif outcome.status == "duplicate":
                result.duplicates += 1
            elif outcome.rejection is not None:
                result.late += 1
                reject((1, at, line), event, outcome.rejection)
        if progress:
            progress("run", total, total)
        if as_of is not None:
            for partition in range(partitions):
                if str(partition) in self.watermarks:
                    checked = StepResult("tick")
                    engine.advance(partition, as_of.timestamp(), checked)
                    emitted(checked, (math.inf, partition))

    def end(self, as_of: datetime | None) -> float:
        """Where event time stands after `apply`: `as_of`, else the latest event's."""
        return as_of.timestamp() if as_of else max(self.watermarks.values(), default=0.0)

    def finish(self, end: float) -> None:
        """Every customer's final metrics, as of `end` (or their last contact, if later)."""
        result = self.result
        for customer_id in sorted(result.states):
            state = result.states[customer_id]
            if state.merged_into:  # an alias: its customer is the one it merged into
                continue
            when = max(end, state.last_seen)  # scored without raising: the state stays as it is
            result.final.append(assess(state, when, self.rules, self.model).model())


def decide_offers(result: ReplayResult, rules: Rules) -> None:
    """Every day of the replay decided, as the live leader decides each once it is behind:
    the offers over a team's capacity are kept in `offers`, not among the signals."""
    result.offers = allot((Offer(s) for s in result.signals if is_offer(s)), rules.wow)
    dropped = {o.signal.signal_id for o in result.offers if o.decision == OVER_CAPACITY}
    if dropped:
        kept = [
            (s, o)
            for s, o in zip(result.signals, result.signal_order, strict=True)
            if s.signal_id not in dropped
        ]
        result.signals = [s for s, _ in kept]
        result.signal_order = [o for _, o in kept]


def _out_of_order(events: Iterable[Touchpoint], slack: float = DAY) -> int:
    """Events more than `slack` older than the latest before them in the file."""
    latest = -math.inf
    count = 0
    for event in events:
        t = event.occurred_at.timestamp()
        if t < latest - slack:
            count += 1
        latest = max(latest, t)
    return count


def write_to_clickhouse(
    result: ReplayResult, clickhouse: ClickHouse, wow_margin: float, batch: int = 50_000
) -> dict[str, int]:
    """Backfill through the live tables and row builders.

    Offsets are line numbers here; a repeated backfill collapses like a redelivered batch
    (the tables' ReplacingMergeTree keys, read with FINAL).
    """
    ingested = datetime.now(UTC)
    written: dict[str, int] = {}

    def put(table: str, items: list[Any], to_columns: Any) -> None:
        for start in range(0, len(items), batch):
            clickhouse.insert_columns(table, to_columns(items[start : start + batch]))
        written[table] = len(items)

    put(
        "touchpoints",
        result.touchpoints,
        lambda rows: touchpoint_columns(rows, ingested, wow_margin),
    )
    put("signals", result.signals, signal_columns)
    put("wow_offers", result.offers, lambda offers: offer_columns(offers, ingested))
    # the snapshots along the way (as the live worker writes them: the daily history), then
    # each customer's final one
    put("customer_metrics", [*result.history, *result.final], metrics_columns)
    put("dead_letters", result.dead_letters, dead_letter_columns)
    for table, columns in identity_columns(result.identity).items():
        written[table] = len(next(iter(columns.values())))
        if written[table]:
            clickhouse.insert_columns(table, columns)
    return written
