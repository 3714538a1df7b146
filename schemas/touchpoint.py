"""The touchpoint event: one meeting between a customer and the company on one channel.

This is the wire contract for publishers. It imports only pydantic, the standard library
and schemas/identifiers.py; the package (with orjson) is in the base install a publishing
service depends on.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from touchstream.schemas.identifiers import MAX_IDENTIFIER_CHARS, IdentifierType

SCHEMA_VERSION: Final = 1
MAX_ATTRIBUTES = 32
MAX_EXPECTATIONS = 16
MAX_IDENTIFIERS = 8
DEFAULT_RELATIVE_TOLERANCE = 0.10
DEFAULT_MAX_FUTURE_SKEW = timedelta(minutes=5)
# before this is a zeroed or missing clock (epoch 0, 1900-01-01), not history; real history
# (a purchase in 1997) is kept. Configurable (validation context `earliest`).
EARLIEST_OCCURRED_AT = datetime(1970, 1, 2, tzinfo=UTC)

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/\-]*$"),
]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
AttributeKey = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
]
MAX_ATTRIBUTE_TEXT = 256
AttributeValue = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_ATTRIBUTE_TEXT},
                {"type": "boolean"},
                {"type": "number"},
            ]
        }
    ),
]


class Channel(StrEnum):
    """Where the customer met the company."""

    web = "web"
    app = "app"
    email = "email"
    sms = "sms"
    phone = "phone"
    chat = "chat"
    social = "social"
    store = "store"
    delivery = "delivery"
    mail = "mail"


class Kind(StrEnum):
    """What happened at the touchpoint."""

    visit = "visit"
    inquiry = "inquiry"
    order = "order"
    purchase = "purchase"
    delivery = "delivery"
    support_ticket = "support_ticket"
    complaint = "complaint"
    complaint_resolved = "complaint_resolved"
    survey = "survey"
    feedback = "feedback"
    review = "review"
    referral = "referral"
    return_ = "return"
    cancellation = "cancellation"
    notification = "notification"


class Direction(StrEnum):
    """Which way of the promise is good for the customer."""

    lower_is_better = "lower_is_better"  # delivery days, wait minutes, price
    higher_is_better = "higher_is_better"  # quality score, items delivered, discount


class Outcome(StrEnum):
    success = "success"
    partial = "partial"
    failure = "failure"
    cancelled = "cancelled"


class RatingScale(StrEnum):
    csat_5 = "csat_5"  # customer satisfaction 1..5
    nps_10 = "nps_10"  # likelihood to recommend 0..10
    ces_7 = "ces_7"  # customer effort 1..7, lower effort is better
    stars_5 = "stars_5"  # review stars 1..5


RATING_BOUNDS: dict[RatingScale, tuple[int, int]] = {
    RatingScale.csat_5: (1, 5),
    RatingScale.nps_10: (0, 10),
    RatingScale.ces_7: (1, 7),
    RatingScale.stars_5: (1, 5),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Tolerance(_Strict):
    """How far from the promise still counts as keeping it.

    `relative` is a fraction of |promised| (0.1 = 10 %); `absolute` is in the metric's own
    unit ("on time" = at most 15 minutes late) and is the one to use for a promise of 0.
    """

    kind: Literal["relative", "absolute"] = "relative"
    value: float = Field(default=DEFAULT_RELATIVE_TOLERANCE, gt=0, le=1e9)


class Expectation(_Strict):
    """A promise and what was delivered against it."""

    metric: Slug
    unit: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    promised: float = Field(ge=-1e12, le=1e12)
    actual: float = Field(ge=-1e12, le=1e12)
    direction: Direction
    tolerance: Tolerance = Tolerance()

    @model_validator(mode="after")
    def _zero_promise_needs_absolute_tolerance(self) -> Expectation:
        if self.promised == 0 and self.tolerance.kind == "relative":
            raise ValueError(
                "a promise of 0 needs an absolute tolerance (a relative one would be 0 wide): "
                'set tolerance to {"kind": "absolute", "value": ...}'
            )
        return self


class Rating(_Strict):
    scale: RatingScale
    value: float

    @model_validator(mode="after")
    def _value_within_scale(self) -> Rating:
        low, high = RATING_BOUNDS[self.scale]
        if not low <= self.value <= high:
            raise ValueError(f"rating value {self.value} is outside {self.scale} ({low}..{high})")
        return self

    @property
    def normalised(self) -> float:
        """The rating on [0, 1], 1 = best; CES is inverted since low effort is good."""
        low, high = RATING_BOUNDS[self.scale]
        share = (self.value - low) / (high - low)
        return 1.0 - share if self.scale is RatingScale.ces_7 else share


class Money(_Strict):
    amount: float = Field(ge=-1e12, le=1e12)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class CustomerIdentifier(_Strict):
    """A key the publishing channel knows the customer by (docs/identity.md). The SDK and
    the HTTP ingest normalise the value and replace it by its pseudonym (`h1:...`) first."""

    type: IdentifierType
    value: Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDENTIFIER_CHARS)]
    name: Slug | None = Field(
        default=None, description="The system an `external` id comes from (only for those)."
    )

    @model_validator(mode="after")
    def _named_when_external(self) -> CustomerIdentifier:
        if (self.type is IdentifierType.external) != (self.name is not None):
            raise ValueError("an external identifier needs a name, and only an external one")
        return self


class TouchpointEvent(_Strict):
    """One touchpoint. `event_id` is the idempotency key: publish it again and it counts once.

    `occurred_at` is the event time every metric uses; it must carry a timezone and may be
    at most a configurable skew in the future (validation context `max_future_skew`, a
    `timedelta`, and `now`, an aware datetime, default the wall clock).
    """

    event_id: Identifier
    customer_id: Identifier | None = Field(
        default=None,
        description="The customer, as already resolved by the publisher; or leave it out and "
        "give `identifiers` (at least one of the two).",
    )
    occurred_at: AwareDatetime
    channel: Channel
    kind: Kind
    expectations: list[Expectation] = Field(default_factory=list, max_length=MAX_EXPECTATIONS)
    rating: Rating | None = None
    outcome: Outcome | None = None
    sentiment: float | None = Field(default=None, ge=-1, le=1)
    value: Money | None = None
    case_id: Identifier | None = Field(
        default=None, description="Links a complaint or ticket to its resolution."
    )
    source: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "unknown"
    team: Identifier | None = Field(
        default=None,
        description="The team that delivered this touchpoint or owns its promise (who broke "
        "which promise: the organisation's view). Optional.",
    )
    agent: Identifier | None = Field(
        default=None, description="The employee or system that handled it (an id, not a name)."
    )
    site: Identifier | None = Field(
        default=None, description="Where it was delivered: store, warehouse, call centre."
    )
    schema_version: Literal[1] = SCHEMA_VERSION
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES
    )
    identifiers: list[CustomerIdentifier] = Field(
        default_factory=list,
        max_length=MAX_IDENTIFIERS,
        description="Keys the channel knows the customer by: identifiers seen together link "
        "(docs/identity.md).",
    )

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime, info: ValidationInfo) -> datetime:
        context: dict[str, Any] = info.context or {}
        now: datetime = context.get("now") or datetime.now(UTC)
        skew: timedelta = context.get("max_future_skew", DEFAULT_MAX_FUTURE_SKEW)
        earliest: datetime = context.get("earliest") or EARLIEST_OCCURRED_AT
        if value < earliest:
            raise ValueError(
                f"occurred_at {value.isoformat()} is before {earliest.isoformat()}: a missing "
                "or zeroed timestamp? send the time the touchpoint happened "
                "(older history: lower TOUCHSTREAM_EARLIEST_OCCURRED_AT)"
            )
        if value - now > skew:
            raise ValueError(
                f"occurred_at is {value - now} ahead of the receiver's clock "
                f"(at most {skew} allowed); send the time the touchpoint happened, with its zone"
            )
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _names_a_customer(self) -> TouchpointEvent:
        if self.customer_id is None and not self.identifiers:
            raise ValueError(
                "a touchpoint names its customer: give customer_id, identifiers or both"
            )
        return self

    @field_validator("attributes")
    @classmethod
    def _flat_attribute_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Attributes are for filtering and grouping: flat scalars, short text."""
        for key, item in value.items():
            if isinstance(item, str):
                if len(item) > MAX_ATTRIBUTE_TEXT:
                    raise ValueError(
                        f"attribute {key!r} is {len(item)} characters, at most "
                        f"{MAX_ATTRIBUTE_TEXT} allowed"
                    )
            elif isinstance(item, bool | int):
                if not -(2**63) <= item < 2**63:
                    raise ValueError(f"attribute {key!r} does not fit in 64 bits")
            elif isinstance(item, float):
                if not math.isfinite(item):
                    raise ValueError(f"attribute {key!r} is not a finite number")
            else:
                raise ValueError(
                    f"attribute {key!r} must be a string, number or boolean, "
                    f"not {type(item).__name__}"
                )
        return value
