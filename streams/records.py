"""One input record -> what to publish and store: the worker's per-record step.

Its own module so mypyc compiles it with the engine (touchstream/native): it runs for
every event (compiled, its glue costs ~3 µs an event less in-process). No I/O and no
settings object here; the runtime (streams/runtime/pipeline.py) moves the bytes and the rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from touchstream.schemas import (
    DeadLetter,
    FieldError,
    InputLimits,
    Signal,
    SignalKind,
    TouchpointRejected,
    dead_letter_for,
)
from touchstream.schemas.control import (
    AFTER_PREFIX,
    CLOCK_KEY,
    CONTROL_PREFIXES,
    FORGET_KEY,
    MAX_HOPS,
    MERGE_HALVES,
    MERGE_PREFIX,
    VIA_PREFIX,
    absorb_request,
    after_merges,
    forget_marker,
    invalid_control,
    parse_after,
    parse_marker,
    parse_merge,
    parse_via,
    sent_on,
)
from touchstream.schemas.decoder import decode_within
from touchstream.schemas.signal import Snapshot
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.engine import Engine, StepResult
from touchstream.streams.rows import touchpoint_row
from touchstream.streams.snapshot import snapshot_json

log = logging.getLogger("touchstream.worker")

__all__ = ["Processed", "Record", "process_record", "process_records"]

Record = tuple[str, bytes | None, bytes]  # output name, key, value


@dataclass(slots=True, init=False)
class Processed:
    """What one input record asks for: records to publish, rows, a forget request.

    Kept until the batch is written, so it holds plain values, not the pydantic event: every
    object alive across a cyclic GC pass is walked by it (a worker spent ~10 % there). The
    signals and dead letters are models (rare: a few per hundred events), written as rows by
    the same loop that publishes them. Wow opportunities are `offers`: stored, not published,
    until their day is decided against the teams' capacity (streams/offers.py)."""

    records: list[Record]
    row: tuple[Any, ...] | None  # the touchpoint's row (streams.rows.touchpoint_row)
    snapshots: list[Snapshot]
    signals: list[Signal]
    offers: list[Signal]
    dead_letters: list[DeadLetter]
    forget: bytes | None  # a forget request's marker (schemas/control.py)
    outcome: str  # for /metrics: applied | duplicate | late | rejected | error | control | parked
    behind: float  # seconds the event's time was behind its partition's (0: not far behind)
    released: list[tuple[Processed, int]]  # parked records handled now, with their offsets

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        records: list[Record],
        row: tuple[Any, ...] | None = None,
        snapshots: list[Snapshot] | None = None,
        forget: bytes | None = None,
        outcome: str = "control",
        signals: list[Signal] | None = None,
        dead_letters: list[DeadLetter] | None = None,
        offers: list[Signal] | None = None,
        behind: float = 0.0,
    ) -> None:
        self.records, self.row, self.forget, self.outcome = records, row, forget, outcome
        self.snapshots = [] if snapshots is None else snapshots
        self.signals = [] if signals is None else signals
        self.offers = [] if offers is None else offers
        self.dead_letters = [] if dead_letters is None else dead_letters
        self.behind = behind
        self.released = []

    @property
    def dead_reasons(self) -> list[str]:
        return [letter.error_kind for letter in self.dead_letters]

    @property
    def signal_kinds(self) -> list[str]:
        """Of the signals the engine raised (wow offers included, decided or not)."""
        return [signal.kind.value for signal in (*self.signals, *self.offers)]


def process_records(
    engine: Engine,
    limits: InputLimits,
    messages: list[Any],
    tables: tuple[Any, ...],
    into: list[tuple[Processed, int, int]],
) -> None:
    """`process_record` for each of consecutive messages (Faust's), appended to `into` with
    their partition and offset; `tables` (StagedTables) are told each message's partition."""
    for message in messages:
        partition = message.partition
        for table in tables:
            table.partition = partition
        handled = process_record(
            engine, limits, message.key, message.value, message.topic, partition, message.offset
        )
        _append(into, handled, partition, message.offset)


def _append(
    into: list[tuple[Processed, int, int]], handled: Processed, partition: int, offset: int
) -> None:
    """A record's result, then those of the parked records it released (in their order)."""
    into.append((handled, partition, offset))
    for released, at in handled.released:
        _append(into, released, partition, at)


def process_record(
    engine: Engine,
    limits: InputLimits,
    key: bytes | None,
    raw: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    via: tuple[str, ...] = (),
) -> Processed:
    """One input record -> what to publish and store. Never raises. `via`: the merged-away
    keys it was sent on through (a `sent_on` record's)."""
    payload = raw or b""

    def dead(rejection: TouchpointRejected) -> DeadLetter:
        return dead_letter_for(
            payload,
            rejection,
            source=topic,
            received_at=datetime.now(UTC),
            partition=partition,
            offset=offset,
        )

    if key in (CLOCK_KEY, FORGET_KEY) or payload.startswith(CONTROL_PREFIXES):
        try:
            if payload.startswith(VIA_PREFIX):
                path, inner = parse_via(payload)
                return process_record(
                    engine, limits, key, inner, topic, partition, offset, tuple(path)
                )
            if payload.startswith(MERGE_HALVES):
                return _merge_half(engine, limits, payload, topic, partition, offset, via)
            if payload.startswith(AFTER_PREFIX):
                return _after(engine, limits, payload, topic, partition, offset, via)
            return _control(engine, key or b"", payload, partition)
        except (ValueError, KeyError, TypeError) as error:
            invalid = invalid_control(key, error)
            return _processed(key, None, dead_letters=[dead(invalid)], outcome="rejected")
    try:
        event = decode_within(payload, limits)
    except TouchpointRejected as rejected:
        return _processed(key, None, dead_letters=[dead(rejected)], outcome="rejected")
    if event.customer_id is None:
        return _processed(key, None, dead_letters=[dead(_UNRESOLVED)], outcome="rejected")
    customer_key = event.customer_id.encode()
    wow_margin = engine.rules.wow_margin
    try:
        outcome: StepResult = engine.step(event, partition, offset)
    except Exception as error:  # a bug must cost one event, not the stream
        log.exception("processing %s failed; kept as a dead letter", event.event_id)
        failed = TouchpointRejected(
            "processing_error",
            [FieldError(loc="", type="processing_error", msg=f"{type(error).__name__}: {error}")],
        )
        return _processed(
            customer_key,
            touchpoint_row(event, partition, offset, wow_margin, payload=payload),
            dead_letters=[dead(failed)],
            outcome="error",
        )
    if outcome.status == "redirected":  # its key was merged: on to the customer's
        target = outcome.redirect
        moved = msgspec.structs.replace(event, customer_id=target).to_wire()
        on = _sent_on(via, event.customer_id, target, moved)
        if isinstance(on, TouchpointRejected):
            handled = _processed(customer_key, None, dead_letters=[dead(on)], outcome="rejected")
        else:
            handled = Processed([on], outcome="redirected")
        return _with_checks(handled, outcome)
    if outcome.status == "parked":  # behind a touchpoint that waits for its merge
        t = event.occurred_at.timestamp()
        handled = _park(engine, limits, event.customer_id, topic, partition, offset, payload, t)
        return _with_checks(handled, outcome)
    return _processed(
        customer_key,
        touchpoint_row(event, partition, offset, wow_margin, outcome.assessment, payload),
        outcome.snapshots,
        outcome.signals,
        [] if outcome.rejection is None else [dead(outcome.rejection)],
        outcome.status,
        outcome.behind,
    )


def _with_checks(handled: Processed, outcome: StepResult) -> Processed:
    """The silence checks the event's time passed (other customers'), on a record the step
    did not apply."""
    if outcome.snapshots or outcome.signals:
        checks = _processed(None, None, outcome.snapshots, outcome.signals)
        handled.records.extend(checks.records)
        handled.snapshots.extend(checks.snapshots)
        handled.signals.extend(checks.signals)
        handled.offers.extend(checks.offers)
    return handled


_UNRESOLVED = TouchpointRejected(
    "unresolved_identity",
    [
        FieldError(
            loc="customer_id",
            type="unresolved_identity",
            msg="a touchpoint without customer_id reaches the touchpoints topic only through the "
            "identity resolver: publish it to the identify topic (TOUCHSTREAM_TOPICS__IDENTIFY; "
            "the SDK and POST /v1/touchpoints do), or give customer_id",
        )
    ],
)


def _processed(
    key: bytes | None,
    row: tuple[Any, ...] | None,
    snapshots: list[Snapshot] | None = None,
    signals: list[Signal] | None = None,
    dead_letters: list[DeadLetter] | None = None,
    outcome: str = "control",
    behind: float = 0.0,
) -> Processed:
    """The records to publish for what a record produced. Dead letters are keyed by the
    customer (else as the input was): a forget request's marker, keyed by the customer,
    follows them on their partition. Wow offers wait for their day's decision."""
    records: list[Record] = []
    for letter in dead_letters or ():
        records.append(("dead_letters", key, letter.model_dump_json().encode()))
    for snapshot in snapshots or ():
        records.append(("metrics", snapshot.customer_id.encode(), snapshot_json(snapshot)))
    published: list[Signal] = []
    offers: list[Signal] = []
    for signal in signals or ():
        if signal.kind is SignalKind.wow_opportunity:
            offers.append(signal)
            continue
        published.append(signal)
        records.append(("signals", signal.customer_id.encode(), signal.model_dump_json().encode()))
    return Processed(
        records, row, snapshots, None, outcome, published, dead_letters, offers, behind
    )


def _control(engine: Engine, key: bytes, payload: bytes, partition: int) -> Processed:
    """Clock ticks and forget requests: records the worker itself put on the topic."""
    if key == CLOCK_KEY:
        tick = datetime.fromisoformat(orjson.loads(payload)["clock"])
        if tick.tzinfo is None:
            raise ValueError("clock tick without timezone")
        checked = StepResult("tick")
        engine.advance(partition, tick.timestamp(), checked)
        return _processed(None, None, checked.snapshots, checked.signals)
    customer_id, requested_at, identifiers = parse_marker(payload)
    engine.forget(customer_id, partition)
    log.info("forgetting customer %s (requested %s)", customer_id, requested_at.isoformat())
    marker = forget_marker(customer_id, requested_at, identifiers)
    # the markers tell each output topic's subscribers, in order with that customer's records
    key = customer_id.encode()
    return Processed(
        [("metrics", key, marker), ("signals", key, marker), ("dead_letters", key, marker)],
        forget=marker,
    )


def _merge_half(
    engine: Engine,
    limits: InputLimits,
    payload: bytes,
    topic: str,
    partition: int,
    offset: int,
    via: tuple[str, ...],
) -> Processed:
    """A merge's two halves (schemas/control.py): where the absorbed key lives its state
    leaves for the survivor's partition; there it joins the survivor's state, and the
    records parked for it go on."""
    absorbed, survivor, merge_id, raw = parse_merge(payload)
    if payload.startswith(MERGE_PREFIX):
        before = engine.states.get(absorbed)
        if before is not None and before.merged_into:
            return Processed([])  # moved before (a redelivery): its state is on its way
        state = engine.absorb_out(absorbed, survivor, partition)
        log.info("customer %s merged into %s (%s)", absorbed, survivor, merge_id)
        key = survivor.encode()
        if state is None:  # nothing to bring: the survivor still learns the merge arrived
            return Processed(
                [("touchpoints", key, absorb_request(absorbed, survivor, merge_id, None))]
            )
        parked, state.parked = state.parked, []
        moved = Processed(
            [("touchpoints", key, absorb_request(absorbed, survivor, merge_id, state.encode()))]
        )
        # what waited here goes on behind the state, through the key's redirect
        moved.records.extend(("touchpoints", absorbed.encode(), entry[1]) for entry in parked)
        return moved
    other = CustomerState(absorbed) if raw is None else CustomerState.decode(raw)
    outcome = engine.absorb_in(survivor, other, partition)
    if outcome.status == "redirected":
        request = absorb_request(absorbed, outcome.redirect, merge_id, raw)
        on = _sent_on(via, survivor, outcome.redirect, request)
        return _forwarded(on, payload, topic, partition, offset)
    handled = _processed(survivor.encode(), None, outcome.snapshots)
    handled.released = _release(engine, limits, survivor, topic, partition)
    return handled


def _sent_on(
    via: tuple[str, ...], here: str, target: str, record: bytes
) -> Record | TouchpointRejected:
    """The record for `target`'s partition, with the keys it came through; a rejection when
    it would go round (a key seen before, or MAX_HOPS of them)."""
    path = (*via, here)
    if target in path or len(path) >= MAX_HOPS:
        return TouchpointRejected(
            "merge_loop",
            [
                FieldError(
                    loc="customer_id",
                    type="merge_loop",
                    msg=f"sent on through {' -> '.join((*path, target))}: the merged-away "
                    "keys form a loop (merge requests not from the resolver?); kept here",
                )
            ],
        )
    return ("touchpoints", target.encode(), sent_on(path, record))


def _forwarded(
    on: Record | TouchpointRejected, payload: bytes, topic: str, partition: int, offset: int
) -> Processed:
    if not isinstance(on, TouchpointRejected):
        return Processed([on])
    letter = dead_letter_for(
        payload, on, source=topic, received_at=datetime.now(UTC), partition=partition, offset=offset
    )
    return _processed(None, None, dead_letters=[letter], outcome="rejected")


def _after(
    engine: Engine,
    limits: InputLimits,
    payload: bytes,
    topic: str,
    partition: int,
    offset: int,
    via: tuple[str, ...],
) -> Processed:
    """A touchpoint that made merges: handled once the absorbed states have joined its
    customer's, parked until then (with whatever comes for the customer meanwhile)."""
    waits_for, touchpoint = parse_after(payload)
    event = decode_within(touchpoint, limits)
    customer = event.customer_id or ""
    state = engine.states.get(customer)
    if state is not None and state.merged_into:  # the customer was merged on: follow it
        target = state.merged_into
        moved = msgspec.structs.replace(event, customer_id=target).to_wire()
        on = _sent_on(via, customer, target, after_merges(waits_for, moved))
        return _forwarded(on, payload, topic, partition, offset)
    if state is not None and not state.parked and set(state.absorbed).issuperset(waits_for):
        return process_record(
            engine, limits, customer.encode(), touchpoint, topic, partition, offset
        )
    return _park(
        engine, limits, customer, topic, partition, offset, payload, event.occurred_at.timestamp()
    )


def _park(
    engine: Engine,
    limits: InputLimits,
    customer: str,
    topic: str,
    partition: int,
    offset: int,
    payload: bytes,
    at: float,
) -> Processed:
    """Keep a record until the merge its customer waits for arrives. Bounded: past
    `engine.park_limit` records the customer goes on without it (a merge that cannot come)."""
    parked = engine.park(customer, partition, offset, payload, at)
    if len(engine.states[customer].parked) <= engine.park_limit:
        return Processed([], outcome="parked" if parked else "duplicate")
    limit = engine.park_limit
    log.warning("%s waited for a merge through %d records: going on without", customer, limit)
    handled = Processed([], outcome="released")
    handled.released = _release(engine, limits, customer, topic, partition, wait=False)
    return handled


def _release(
    engine: Engine,
    limits: InputLimits,
    customer: str,
    topic: str,
    partition: int,
    wait: bool = True,
) -> list[tuple[Processed, int]]:
    """The customer's parked records, handled in their order (`wait`: one that still waits
    for a merge parks again, and the rest behind it; else none waits). Before each, the
    customer's silence checks its partition passed meanwhile, as a replay has them."""
    handle = process_record if wait else _unwrapped_record
    key = customer.encode()
    out: list[tuple[Processed, int]] = []

    def catch_up(after: float, until: float, offset: int) -> None:
        checks = StepResult("tick")
        engine.catch_up(customer, partition, after, until, checks)
        if checks.snapshots or checks.signals:
            out.append((_processed(None, None, checks.snapshots, checks.signals), offset))

    parked = engine.unpark(customer)
    since = parked[0][2] if parked else 0.0
    for offset, payload, at in parked:
        catch_up(since, at, offset)
        out.append((handle(engine, limits, key, payload, topic, partition, offset), offset))
        since = max(since, at)
    if parked:
        catch_up(since, math.inf, parked[-1][0])
    return out


def _unwrapped_record(
    engine: Engine,
    limits: InputLimits,
    key: bytes | None,
    payload: bytes,
    topic: str,
    partition: int,
    offset: int,
) -> Processed:
    """A parked record handled without waiting for its merge."""
    if payload.startswith(AFTER_PREFIX):
        payload = parse_after(payload)[1]
    return process_record(engine, limits, key, payload, topic, partition, offset)
