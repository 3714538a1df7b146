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
from touchstream.streams.evaluate import evaluate
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
    progress: Callable[[int], None] | None = None,
    identity: IdentityOptions = IdentityOptions(),
) -> ReplayResult:
    result = ReplayResult()
    watermarks: dict[str, float] = {}
    received = datetime.now(UTC)
    events: list[tuple[InputRecord, Touchpoint]] = []
    for count, record in enumerate(records, start=1):
        try:
            events.append((record, validate_record(record, max_bytes, earliest, identity)))
        except TouchpointRejected as rejected:
            raw: Any = record.payload
            if not isinstance(raw, bytes):
                raw = repr(raw)
            result.dead_letters.append(
                dead_letter_for(
                    raw, rejected, source=source, received_at=received, line=record.line
                )
            )
        if progress and count % 5000 == 0:
            progress(count)
        if sort_by_time and len(events) > MAX_SORTED_EVENTS:
            raise ReplayRefused(
                f"more than {MAX_SORTED_EVENTS:,} events to order by event time in memory: "
                "sort the file by occurred_at first (e.g. `sort` on an ISO timestamp column) "
                "and replay it with --no-sort-by-time"
            )
    result.out_of_order = _out_of_order(event for _, event in events)
    if sort_by_time:
        events.sort(key=lambda pair: pair[1].occurred_at)
    if as_of is not None and learn_before_as_of:
        model = learn_from_events((event for _, event in events), as_of.timestamp(), rules)
    result.model = model
    engine = Engine(rules, model, result.states, watermarks, partitions)
    graph = IdentityGraph(rules.identity, denied_keys(rules.identity, identity.secret))

    def reject(event: Touchpoint, rejection: TouchpointRejected, line: int) -> None:
        result.dead_letters.append(
            dead_letter_for(
                event.to_json(), rejection, source=source, received_at=received, line=line
            )
        )

    for record, event in events:
        if event.identifiers or event.customer_id is None:
            resolved, named = resolve_event(graph, event)
            result.identity.append((resolved, record.line))
            for merge in resolved.merges:
                merged = engine.merge(merge.survivor, merge.absorbed)
                if merged is not None:
                    result.history += merged.snapshots
            if named is None:
                reject(event, unresolved(resolved.refusals), record.line)
                continue
            event = named
        customer = graph.customer_of(event.customer_id or "")
        if customer is not None and customer != event.customer_id:  # by an alias
            event = msgspec.structs.replace(event, customer_id=customer)
        partition = partition_for(event.customer_id or "", partitions)
        result.touchpoints.append((event, partition, record.line))
        outcome = engine.step(event, partition)
        result.signals.extend(outcome.signals)
        result.history += outcome.snapshots
        if outcome.status == "applied":
            result.applied += 1
        elif outcome.status == "duplicate":
            result.duplicates += 1
        elif outcome.rejection is not None:
            result.late += 1
            reject(event, outcome.rejection, record.line)
    end = as_of.timestamp() if as_of else max(watermarks.values(), default=0.0)
    if as_of is not None:
        for partition in range(partitions):
            if str(partition) in watermarks:
                checked = StepResult("tick")
                engine.advance(partition, end, checked)
                result.signals.extend(checked.signals)
                result.history += checked.snapshots
    # every day of the file decided, as the live leader decides each once it is behind
    result.offers = allot((Offer(s) for s in result.signals if is_offer(s)), rules.wow)
    dropped = {o.signal.signal_id for o in result.offers if o.decision == OVER_CAPACITY}
    result.signals = [s for s in result.signals if s.signal_id not in dropped]
    for customer_id in sorted(result.states):
        state = result.states[customer_id]
        if state.merged_into:  # an alias: its customer is the one it merged into
            continue
        when = max(end, state.last_seen)
        probe = CustomerState.decode(state.encode())  # scoring must not move signal state
        result.final.append(evaluate(probe, when, rules, model).snapshot(probe).model())
    return result


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
