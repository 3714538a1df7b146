"""Signals and metrics snapshots: what the stream processors publish for people and services."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from touchstream.schemas.touchpoint import Identifier

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class SignalKind(StrEnum):
    about_to_defect = "about_to_defect"
    wow_opportunity = "wow_opportunity"


class Severity(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MetricsSnapshot(_Wire):
    """A customer's rolling metrics at one moment of event time.

    Counts named `failed`/`met`/`exceeded` and `rating` are decayed with the configured
    half-life, so they weigh recent touchpoints more; `event_count` is the plain count.
    """

    customer_id: Identifier
    as_of: AwareDatetime
    event_count: int = Field(ge=0)
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    # expectation gap, in tolerance units (positive = better than promised)
    expectation_gap: float
    worst_recent_gap: float
    failed: float = Field(ge=0)
    met: float = Field(ge=0)
    exceeded: float = Field(ge=0)
    # consistency
    consistency: Unit
    quality_mean: float = Field(ge=-1, le=1)
    quality_stddev: float = Field(ge=0)
    met_or_better_share: Unit
    channel_spread: float = Field(ge=0)
    streak: int = Field(ge=0)
    # rhythm and life
    mean_interarrival_days: float | None = Field(default=None, ge=0)
    overdue_ratio: float = Field(ge=0)
    p_alive: Unit
    # voice
    rating: Unit | None = None
    rating_trend: float = 0.0
    open_complaints: int = Field(ge=0)
    oldest_open_complaint_days: float = Field(default=0.0, ge=0)
    silent_failures: int = Field(ge=0)
    # involvement
    channels: int = Field(ge=0)
    feedback_given: int = Field(ge=0)
    referrals: int = Field(ge=0)
    # promises, loss-aware: broken ones are never netted against kept or exceeded ones
    promises: float = Field(default=0.0, ge=0)  # decayed count of promise-bearing touchpoints
    broken_promise_rate: Unit = 0.0
    consecutive_misses: int = Field(default=0, ge=0)
    worst_recent_miss: float = Field(default=0.0, ge=0)  # decayed, in multiples of the promise
    # lapse: silence past the customer's own rhythm (see docs/metrics.md), in [0, 1]
    lapse: Unit = 0.0
    spend: float = Field(default=0.0, ge=0)  # purchases' and orders' value.amount, summed
    # loyalty beyond satisfaction: involvement, then affinity (docs/metrics.md), in [0, 1]
    involvement: Unit = 0.0
    affinity: Unit = 0.5
    revenue_at_risk: float = Field(default=0.0, ge=0)  # spend a year at the customer's pace
    # scores: the risk is P(no contact within `horizon_days`), from `risk_model`
    risk_score: Unit
    wow_score: Unit
    expected_loss: float = Field(default=0.0, ge=0)  # risk_score x revenue_at_risk
    horizon_days: float = Field(default=90.0, gt=0)
    risk_model: Annotated[str, StringConstraints(max_length=64)] = "default"


def trusted_snapshot(**values: Any) -> MetricsSnapshot:
    """A snapshot from values the engine computed, without validating them again. Every
    field must be given, of its type. The tests validate every snapshot the engine builds
    over a generated population (tests/streams/test_engine.py)."""
    snapshot = MetricsSnapshot.__new__(MetricsSnapshot)
    object.__setattr__(snapshot, "__dict__", values)
    object.__setattr__(snapshot, "__pydantic_fields_set__", set(values))
    object.__setattr__(snapshot, "__pydantic_extra__", None)
    object.__setattr__(snapshot, "__pydantic_private__", None)
    return snapshot


class Snapshot(NamedTuple):
    """A `MetricsSnapshot`'s values, field for field, as the engine builds them for most
    events: a tuple, so the ClickHouse row is the tuple itself and the JSON is msgspec's
    (`streams/snapshot.py` `snapshot_json`, ~1.6 µs) instead of a pydantic object and its
    serializer (~12 µs). The tests check the fields are the model's, in its order, and that
    the JSON is the model's for every snapshot of a generated population."""

    customer_id: str
    as_of: datetime
    event_count: int
    first_seen: datetime
    last_seen: datetime
    expectation_gap: float
    worst_recent_gap: float
    failed: float
    met: float
    exceeded: float
    consistency: float
    quality_mean: float
    quality_stddev: float
    met_or_better_share: float
    channel_spread: float
    streak: int
    mean_interarrival_days: float | None
    overdue_ratio: float
    p_alive: float
    rating: float | None
    rating_trend: float
    open_complaints: int
    oldest_open_complaint_days: float
    silent_failures: int
    channels: int
    feedback_given: int
    referrals: int
    promises: float
    broken_promise_rate: float
    consecutive_misses: int
    worst_recent_miss: float
    lapse: float
    spend: float
    involvement: float
    affinity: float
    revenue_at_risk: float
    risk_score: float
    wow_score: float
    expected_loss: float
    horizon_days: float
    risk_model: str

    def model(self) -> MetricsSnapshot:
        return trusted_snapshot(**self._asdict())


class Attribution(_Wire):
    """Where the trouble behind a signal comes from: the metric, channel and team (the
    organisation's view: who broke which promise). Empty strings when not known."""

    metric: Annotated[str, StringConstraints(max_length=64)] = ""
    channel: Annotated[str, StringConstraints(max_length=64)] = ""
    team: Annotated[str, StringConstraints(max_length=128)] = ""


class Reason(_Wire):
    """One factor of a score: its observed value and how much it added to the score."""

    factor: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    value: float
    contribution: float
    detail: Annotated[str, StringConstraints(max_length=512)] = ""


class Signal(_Wire):
    """A `wow_opportunity` or `about_to_defect` alert, with the reasons that produced it.

    `signal_id` is derived from the customer, kind and the event time of the transition,
    so the same input raises the same id on a replay and sinks can deduplicate on it.
    """

    signal_id: Annotated[str, StringConstraints(min_length=8, max_length=64)]
    kind: SignalKind
    customer_id: Identifier
    score: Unit
    severity: Severity
    raised_at: AwareDatetime
    trigger: Literal["event", "timer"]
    trigger_event_id: Identifier | None = None
    channel: str | None = None
    reasons: list[Reason]
    suggested_action: str | None = None
    metrics: MetricsSnapshot
    rules_version: Annotated[str, StringConstraints(max_length=64)] = "default"
    attribution: Attribution | None = None  # the worst metric, channel and team behind it
    revenue_at_risk: float = Field(default=0.0, ge=0)  # the customer's spend a year
    # a risk: score x revenue_at_risk; the score is P(no contact within horizon_days)
    expected_loss: float = Field(default=0.0, ge=0)
    horizon_days: float = Field(default=90.0, gt=0)
    risk_model: Annotated[str, StringConstraints(max_length=64)] = "default"
    # who acts: a wow moment's owning team (a risk names its team in `attribution`)
    team: Annotated[str, StringConstraints(max_length=64)] | None = None
    # a wow offer's rank: the customer's yearly value x the wow score
    expected_value: float = Field(default=0.0, ge=0)
