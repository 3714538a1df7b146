"""The engine's touchpoint, decoded from JSON in one pass by msgspec.

`TouchpointEvent` (pydantic) is the contract: its JSON Schema, its errors. Validating with it
costs 11-13 µs an event; msgspec decodes the same payload into these structs in ~3 µs, 6 with
the checks below. The fast path only ever *accepts*: whatever it is not sure of (a
type it does not take, a rule it does not check, a repeated key, more than six digits of
fraction in a timestamp) goes to pydantic, which accepts it (converted here) or rejects it
with its own errors. So a rejection is always pydantic's, and tests/schemas/test_decoder.py
shows on generated payloads that whatever the fast path accepts pydantic accepts with the
same values.

Patterns end in `\\Z`: msgspec matches with Python's `re`, where `$` also matches before a
final newline; pydantic's Rust engine does not.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from touchstream.schemas.identifiers import MAX_IDENTIFIER_CHARS, IdentifierType
from touchstream.schemas.touchpoint import (
    DEFAULT_MAX_FUTURE_SKEW,
    DEFAULT_RELATIVE_TOLERANCE,
    EARLIEST_OCCURRED_AT,
    MAX_ATTRIBUTE_TEXT,
    MAX_ATTRIBUTES,
    MAX_EXPECTATIONS,
    MAX_IDENTIFIERS,
    RATING_BOUNDS,
    Channel,
    Direction,
    Kind,
    Outcome,
    RatingScale,
    TouchpointEvent,
)
from touchstream.schemas.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    InputLimits,
    parse_touchpoint,
    read_alike,
)

_Identifier = Annotated[
    str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/\-]*\Z")
]
_Slug = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*\Z")]
_AttributeKey = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+\Z")]
_Bounded = Annotated[float, Meta(ge=-1e12, le=1e12)]
_AttributeValue = Annotated[str, Meta(max_length=MAX_ATTRIBUTE_TEXT)] | bool | int | float
_INT64 = 2**63


class _Frozen(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Immutable like the pydantic models, untracked by the cyclic GC (no cycles inside)."""


class Tolerance(_Frozen, frozen=True):
    kind: Literal["relative", "absolute"] = "relative"
    value: Annotated[float, Meta(gt=0, le=1e9)] = DEFAULT_RELATIVE_TOLERANCE


_RELATIVE = Tolerance()


class Expectation(_Frozen, frozen=True):
    metric: _Slug
    unit: Annotated[str, Meta(min_length=1, max_length=32)]
    promised: _Bounded
    actual: _Bounded
    direction: Direction
    tolerance: Tolerance = _RELATIVE


class Rating(_Frozen, frozen=True):
    scale: RatingScale
    value: float

    @property
    def normalised(self) -> float:
        """The rating on [0, 1], 1 = best; CES is inverted since low effort is good."""
        low, high = RATING_BOUNDS[self.scale]
        share = (self.value - low) / (high - low)
        return 1.0 - share if self.scale is RatingScale.ces_7 else share


class Money(_Frozen, frozen=True):
    amount: _Bounded
    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}\Z")]


class CustomerIdentifier(_Frozen, frozen=True):
    type: IdentifierType
    value: Annotated[str, Meta(min_length=1, max_length=MAX_IDENTIFIER_CHARS)]
    name: _Slug | None = None


class Touchpoint(_Frozen, frozen=True, kw_only=True):
    """A validated touchpoint, as the engine reads it (fields and order of TouchpointEvent)."""

    event_id: _Identifier
    customer_id: _Identifier | None = None  # None until resolved from `identifiers`
    occurred_at: Annotated[datetime, Meta(tz=True)]
    channel: Channel
    kind: Kind
    expectations: Annotated[list[Expectation], Meta(max_length=MAX_EXPECTATIONS)] = []
    rating: Rating | None = None
    outcome: Outcome | None = None
    sentiment: Annotated[float, Meta(ge=-1, le=1)] | None = None
    value: Money | None = None
    case_id: _Identifier | None = None
    source: Annotated[str, Meta(min_length=1, max_length=64)] = "unknown"
    team: _Identifier | None = None
    agent: _Identifier | None = None
    site: _Identifier | None = None
    schema_version: Literal[1] = 1
    attributes: Annotated[
        dict[
            _AttributeKey, Annotated[str, Meta(max_length=MAX_ATTRIBUTE_TEXT)] | bool | int | float
        ],
        Meta(max_length=MAX_ATTRIBUTES),
    ] = {}
    identifiers: Annotated[list[CustomerIdentifier], Meta(max_length=MAX_IDENTIFIERS)] = []

    @classmethod
    def from_event(cls, event: TouchpointEvent) -> Touchpoint:
        """The same touchpoint, from the pydantic model (publishers' SDK, tests, fallbacks)."""
        return cls(
            event_id=event.event_id,
            customer_id=event.customer_id,
            occurred_at=event.occurred_at,
            channel=event.channel,
            kind=event.kind,
            expectations=[
                Expectation(
                    e.metric,
                    e.unit,
                    e.promised,
                    e.actual,
                    e.direction,
                    Tolerance(e.tolerance.kind, e.tolerance.value),
                )
                for e in event.expectations
            ],
            rating=None if event.rating is None else Rating(event.rating.scale, event.rating.value),
            outcome=event.outcome,
            sentiment=event.sentiment,
            value=None if event.value is None else Money(event.value.amount, event.value.currency),
            case_id=event.case_id,
            source=event.source,
            team=event.team,
            agent=event.agent,
            site=event.site,
            schema_version=event.schema_version,
            attributes=dict(event.attributes),
            identifiers=[CustomerIdentifier(i.type, i.value, i.name) for i in event.identifiers],
        )

    def to_json(self) -> bytes:
        """Every field, as `TouchpointEvent.model_dump_json` writes it (tested equal)."""
        return _ENCODER.encode(_every_field(self))

    def to_wire(self) -> bytes:
        """The fields not at their defaults, as the SDK publishes (a quarter of `to_json`'s
        cost): what the resolver passes on to the touchpoints topic."""
        return _ENCODER.encode(self)


_DECODER = msgspec.json.Decoder(Touchpoint)
_ENCODER = msgspec.json.Encoder()


def _every_field(value: Any) -> Any:
    """The structs omit their defaults when encoded (for the repeated-key count below); a
    stored payload has every field, as pydantic writes them."""
    if isinstance(value, Struct):
        return {name: _every_field(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, list):
        return [_every_field(item) for item in value]
    return value


def decode_touchpoint(
    raw: bytes,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    earliest: datetime | None = None,
) -> Touchpoint:
    """`parse_touchpoint`, fast: the same acceptance, the same values, the same errors."""
    if len(raw) <= max_bytes:
        event = _fast(raw, now, max_future_skew, earliest or EARLIEST_OCCURRED_AT)
        if event is not None:
            return event
    return Touchpoint.from_event(
        parse_touchpoint(
            raw, now=now, max_future_skew=max_future_skew, max_bytes=max_bytes, earliest=earliest
        )
    )


def decode_within(raw: bytes, limits: InputLimits) -> Touchpoint:
    """`decode_touchpoint` under an input record's limits (the settings' part)."""
    return decode_touchpoint(
        raw,
        max_future_skew=limits.max_future_skew,
        max_bytes=limits.max_bytes,
        earliest=limits.earliest,
    )


def _fast(
    raw: bytes, now: datetime | None, skew: timedelta, earliest: datetime
) -> Touchpoint | None:
    """The decoded touchpoint when every rule holds surely, else None (pydantic decides)."""
    try:
        event = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not read_alike(raw, _ENCODER.encode(event)):
        return None
    at = event.occurred_at
    if at < earliest or at - (now or datetime.now(UTC)) > skew:
        return None
    for expectation in event.expectations:
        if expectation.promised == 0 and expectation.tolerance.kind == "relative":
            return None
    rating = event.rating
    if rating is not None:
        low, high = RATING_BOUNDS[rating.scale]
        if not low <= rating.value <= high:
            return None
    if event.attributes and not _flat_attributes(event.attributes):
        return None
    if event.customer_id is None and not event.identifiers:
        return None
    for identifier in event.identifiers:
        if (identifier.type is IdentifierType.external) != (identifier.name is not None):
            return None
    if at.tzinfo is not UTC:
        msgspec.structs.force_setattr(event, "occurred_at", at.astimezone(UTC))
    return event


def _flat_attributes(attributes: dict[str, Any]) -> bool:
    for item in attributes.values():
        if type(item) is int and not -_INT64 <= item < _INT64:
            return False
        if type(item) is float and not math.isfinite(item):
            return False
    return True
