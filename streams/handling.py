"""One input record -> what to publish and store: the worker's per-record step.

Its own module so mypyc compiles it with the engine (touchstream/native.py): it runs for
every event (compiled, its glue costs ~3 µs an event less in-process). No I/O here;
`streams/app.py` moves the bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from touchstream.schemas import FieldError, TouchpointRejected, dead_letter_for, parse_touchpoint
from touchstream.schemas.signal import Snapshot
from touchstream.settings import Settings
from touchstream.sinks.forget import forget_marker, parse_marker
from touchstream.sinks.rows import touchpoint_row
from touchstream.streams.engine import Engine, Outcome

log = logging.getLogger("touchstream.worker")

CLOCK_KEY = b"__clock__"
FORGET_KEY = b"__forget__"
Record = tuple[str, bytes | None, bytes]  # output name, key, value


@dataclass(slots=True, init=False)
class Handled:
    """What one input record asks for: records to publish, rows, a forget request.

    Kept until the batch is written, so it holds plain values, not the pydantic event: every
    object alive across a cyclic GC pass is walked by it (a worker spent ~10 % there)."""

    records: list[Record]
    row: tuple[Any, ...] | None  # the touchpoint's row (sinks.rows.touchpoint_row)
    snapshots: list[Snapshot]
    forget: tuple[str, datetime] | None
    outcome: str  # for /metrics: applied | duplicate | late | rejected | error | control
    dead_reasons: tuple[str, ...]
    signal_kinds: tuple[str, ...]

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        records: list[Record],
        row: tuple[Any, ...] | None = None,
        snapshots: list[Snapshot] | None = None,
        forget: tuple[str, datetime] | None = None,
        outcome: str = "control",
        dead_reasons: tuple[str, ...] = (),
        signal_kinds: tuple[str, ...] = (),
    ) -> None:
        self.records, self.row, self.forget, self.outcome = records, row, forget, outcome
        self.snapshots = [] if snapshots is None else snapshots
        self.dead_reasons, self.signal_kinds = dead_reasons, signal_kinds


def handle_messages(
    engine: Engine,
    settings: Settings,
    messages: list[Any],
    tables: tuple[Any, ...],
    into: list[tuple[Handled, int, int]],
) -> None:
    """`handle_message` for each of consecutive messages (Faust's), appended to `into` with
    their partition and offset; `tables` (StagedTables) are told each message's partition."""
    for message in messages:
        partition = message.partition
        for table in tables:
            table.partition = partition
        handled = handle_message(
            engine, settings, message.key, message.value, message.topic, partition, message.offset
        )
        into.append((handled, partition, message.offset))


def handle_message(
    engine: Engine,
    settings: Settings,
    key: bytes | None,
    raw: bytes | None,
    topic: str,
    partition: int,
    offset: int,
) -> Handled:
    """One input record -> what to publish and store. Never raises."""
    payload = raw or b""

    def dead(rejection: TouchpointRejected, dead_key: bytes | None = None) -> Record:
        """Keyed by the customer (else as the input was, the customer for our publishers):
        a forget request's marker, keyed by the customer, follows them on their partition."""
        letter = dead_letter_for(
            payload,
            rejection,
            source=topic,
            received_at=datetime.now(UTC),
            partition=partition,
            offset=offset,
        )
        return ("dead_letters", dead_key or key, letter.model_dump_json().encode())

    if key in (CLOCK_KEY, FORGET_KEY):
        try:
            return _control(engine, key, payload, partition)
        except (ValueError, KeyError, TypeError) as error:
            kind = "invalid_control_record"
            invalid = TouchpointRejected(
                kind, [FieldError(loc="", type=kind, msg=f"{key!r}: {error}")]
            )
            return Handled([dead(invalid)], outcome="rejected", dead_reasons=(kind,))
    try:
        event = parse_touchpoint(
            payload,
            max_future_skew=settings.max_future_skew,
            max_bytes=settings.max_payload_bytes,
            earliest=settings.earliest_occurred_at,
        )
    except TouchpointRejected as rejected:
        return Handled([dead(rejected)], outcome="rejected", dead_reasons=(rejected.kind,))
    customer_key = event.customer_id.encode()
    wow_margin = engine.rules.wow_margin
    try:
        outcome: Outcome = engine.handle(event, partition, offset)
    except Exception as error:  # a bug must cost one event, not the stream
        log.exception("processing %s failed; kept as a dead letter", event.event_id)
        failed = TouchpointRejected(
            "processing_error",
            [FieldError(loc="", type="processing_error", msg=f"{type(error).__name__}: {error}")],
        )
        return Handled(
            [dead(failed, customer_key)],
            touchpoint_row(event, partition, offset, wow_margin, payload=payload),
            outcome="error",
            dead_reasons=(failed.kind,),
        )
    records: list[Record] = []
    if outcome.rejection is not None:
        records.append(dead(outcome.rejection, customer_key))
    for snapshot in outcome.snapshots:
        records.append(("metrics", customer_key, snapshot.json()))
    for signal in outcome.signals:
        records.append(("signals", customer_key, signal.model_dump_json().encode()))
    return Handled(
        records,
        touchpoint_row(event, partition, offset, wow_margin, outcome.assessment, payload),
        outcome.snapshots,
        outcome=outcome.status,
        dead_reasons=() if outcome.rejection is None else (outcome.rejection.kind,),
        signal_kinds=tuple(signal.kind.value for signal in outcome.signals),
    )


def _control(engine: Engine, key: bytes, payload: bytes, partition: int) -> Handled:
    """Clock ticks and forget requests: records the worker itself put on the topic."""
    if key == CLOCK_KEY:
        tick = datetime.fromisoformat(orjson.loads(payload)["clock"])
        if tick.tzinfo is None:
            raise ValueError("clock tick without timezone")
        checked = Outcome("tick")
        engine.advance(partition, tick.timestamp(), checked)
        records: list[Record] = [
            ("metrics", s.customer_id.encode(), s.json()) for s in checked.snapshots
        ]
        records += [
            ("signals", s.customer_id.encode(), s.model_dump_json().encode())
            for s in checked.signals
        ]
        return Handled(
            records,
            snapshots=checked.snapshots,
            signal_kinds=tuple(s.kind.value for s in checked.signals),
        )
    customer_id, requested_at = parse_marker(payload)
    engine.forget(customer_id, partition)
    log.info("forgetting customer %s (requested %s)", customer_id, requested_at.isoformat())
    marker = forget_marker(customer_id, requested_at)
    # the markers reach each table's writer in order with that customer's earlier records
    key = customer_id.encode()
    return Handled(
        [("metrics", key, marker), ("signals", key, marker), ("dead_letters", key, marker)],
        forget=(customer_id, requested_at),
    )
