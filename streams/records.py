"""One input record -> what to publish and store: the worker's per-record step.

Its own module so mypyc compiles it with the engine (touchstream/native): it runs for
every event (compiled, its glue costs ~3 µs an event less in-process). No I/O and no
settings object here; the runtime (streams/runtime/pipeline.py) moves the bytes and the rows.
"""

from __future__ import annotations

import logging
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
    CLOCK_KEY,
    CONTROL_PREFIXES,
    FORGET_KEY,
    MERGE_HALVES,
    MERGE_PREFIX,
    absorb_request,
    forget_marker,
    invalid_control,
    parse_marker,
    parse_merge,
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
    outcome: str  # for /metrics: applied | duplicate | late | rejected | error | control
    behind: float  # seconds the event's time was behind its partition's (0: not far behind)

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
        into.append((handled, partition, message.offset))


def process_record(
    engine: Engine,
    limits: InputLimits,
    key: bytes | None,
    raw: bytes | None,
    topic: str,
    partition: int,
    offset: int,
) -> Processed:
    """One input record -> what to publish and store. Never raises."""
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
            if payload.startswith(MERGE_HALVES):
                return _merge_half(engine, payload, partition)
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
        moved = msgspec.structs.replace(event, customer_id=target)
        return Processed([("touchpoints", target.encode(), moved.to_wire())], outcome="redirected")
    return _processed(
        customer_key,
        touchpoint_row(event, partition, offset, wow_margin, outcome.assessment, payload),
        outcome.snapshots,
        outcome.signals,
        [] if outcome.rejection is None else [dead(outcome.rejection)],
        outcome.status,
        outcome.behind,
    )


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


def _merge_half(engine: Engine, payload: bytes, partition: int) -> Processed:
    """A merge's two halves (schemas/control.py): where the absorbed key lives its state
    leaves for the survivor's partition; there it joins the survivor's state."""
    absorbed, survivor, merge_id, raw = parse_merge(payload)
    if payload.startswith(MERGE_PREFIX):
        state = engine.absorb_out(absorbed, survivor, partition)
        log.info("customer %s merged into %s (%s)", absorbed, survivor, merge_id)
        if state is None:
            return Processed([])
        request = absorb_request(absorbed, survivor, merge_id, state.encode())
        return Processed([("touchpoints", survivor.encode(), request)])
    if raw is None:
        return Processed([])
    outcome = engine.absorb_in(survivor, CustomerState.decode(raw), partition)
    if outcome.status == "redirected":
        request = absorb_request(absorbed, outcome.redirect, merge_id, raw)
        return Processed([("touchpoints", outcome.redirect.encode(), request)])
    return _processed(survivor.encode(), None, outcome.snapshots)
