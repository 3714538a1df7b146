"""The touchpoint as msgspec structs: what `schemas/decoder.py` decodes a record into.

Apart from the decoder because msgspec reads a struct's options (frozen, forbid unknown
fields, omit defaults) from its class keywords, which a class compiled with mypyc loses; the
decoder's functions are compiled, these classes stay interpreted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from touchstream.schemas.identifiers import MAX_IDENTIFIER_CHARS, IdentifierType
from touchstream.schemas.touchpoint import (
    DEFAULT_RELATIVE_TOLERANCE,
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

# The patterns of TouchpointEvent's identifiers, slugs, attribute keys and currencies are
# checked by the decoder (`schemas/decoder.py` `_spelled_right`, compiled), not here: msgspec
# calls Python's `re` for each string, ~3,000 instructions, most of a decode's constraints.
_Identifier = Annotated[str, Meta(min_length=1, max_length=128)]
_Slug = Annotated[str, Meta(min_length=1, max_length=64)]
_AttributeKey = Annotated[str, Meta(min_length=1, max_length=64)]
_Bounded = Annotated[float, Meta(ge=-1e12, le=1e12)]
_AttributeValue = Annotated[str, Meta(max_length=MAX_ATTRIBUTE_TEXT)] | bool | int | float


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
    currency: Annotated[str, Meta(min_length=3, max_length=3)]


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
        dict[_AttributeKey, _AttributeValue], Meta(max_length=MAX_ATTRIBUTES)
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
