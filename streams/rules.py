"""Signal rules: weights, thresholds, hysteresis, cooldown; the scoring is `streams.scoring`.

Defaults are argued in docs/metrics.md; every number here can be changed in a rules file
(YAML or TOML).
"""

from __future__ import annotations

import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from touchstream.streams.params import ScoringParams, StateParams


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Config):
    """Raise when the score reaches `raise_at`; re-arm only after it fell below `clear_below`
    (hysteresis), and never raise again within `cooldown_days` of event time."""

    raise_at: float = Field(ge=0, le=1)
    clear_below: float = Field(ge=0, le=1)
    cooldown_days: float = Field(ge=0)

    @model_validator(mode="after")
    def _band(self) -> Trigger:
        if self.clear_below > self.raise_at:
            raise ValueError("clear_below must not be above raise_at (hysteresis band)")
        return self


def _weights_sum_to_one(weights: BaseModel) -> None:
    total = sum(weights.model_dump().values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (they sum to {total:.4f})")


class RiskWeights(_Config):
    """The most each service factor can add to the risk *alone* (a noisy-OR,
    `scoring.combined`): above the raise threshold (0.5) for what a customer-success manager
    acts on by itself. The lapse is no weight: it is the probability learned from the
    business's history (`streams.churn`)."""

    broken_promises: float = Field(0.7, ge=0, le=1)
    open_complaints: float = Field(0.65, ge=0, le=1)
    silent_failures: float = Field(0.35, ge=0, le=1)
    detractor: float = Field(0.35, ge=0, le=1)
    inconsistency: float = Field(0.2, ge=0, le=1)
    falling_trend: float = Field(0.2, ge=0, le=1)


class ConsistencyWeights(_Config):
    """Steadiness and reliability "matter most" (seed 002); uniformity and a recent run less."""

    steadiness: float = Field(0.35, ge=0)
    met_share: float = Field(0.35, ge=0)
    channel_uniformity: float = Field(0.2, ge=0)
    streak: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _sum(self) -> ConsistencyWeights:
        _weights_sum_to_one(self)
        return self


class ConsistencyRules(_Config):
    """How steady the company is with this customer (docs/metrics.md, `consistency`)."""

    weights: ConsistencyWeights = ConsistencyWeights()
    stddev_full: float = Field(0.6, gt=0, description="quality stddev at which steadiness is 0")
    spread_full: float = Field(0.5, gt=0, description="channel spread at which uniformity is 0")
    streak_full: int = Field(5, ge=1, description="touchpoints in a row that count fully")


class WowWeights(_Config):
    consistent_record: float = Field(0.35, ge=0)
    moment: float = Field(0.45, ge=0)
    stealable: float = Field(0.20, ge=0)

    @model_validator(mode="after")
    def _sum(self) -> WowWeights:
        _weights_sum_to_one(self)
        return self


DEFAULT_WOW_OWNERS = {
    "service_recovery": "support",
    "milestone": "customer_success",
    "advocacy": "marketing",
    "high_value": "account_management",
}
# A small company's gestures in a day (event time). Support closes a complaint with the
# recovery gesture (a call and a credit, ~10 minutes: 5 a day); a hand-written note, an
# upgrade to arrange, a referral invite or an account manager's thank-you take 30-45 minutes
# of someone's attention (one a day each). 8 a day in all, about half a person-day; for the
# demo's 2,000 customers that is at most 122 per 1,000 customers a month if every team were
# full every day (docs/metrics.md has what the demo publishes).
DEFAULT_WOW_CAPACITY = {
    "support": 5,
    "customer_success": 1,
    "marketing": 1,
    "account_management": 1,
}
DEFAULT_WOW_ACTIONS = {
    "service_recovery": "service recovery by {team}: reach out personally on {channel} "
    "after {what}, with a goodwill credit",
    "service_recovery@top": "service recovery by {team}'s lead: reach out personally on "
    "{channel} after {what}, with a credit in proportion to their {value} a year",
    "milestone": "{team}: a hand-written thank-you note for {what}",
    "milestone@top": "{team}: a hand-written note and an unexpected upgrade for {what}",
    "advocacy": "{team}: invite them to the referral programme after {what}",
    "advocacy@top": "{team}: ask for a public review or a case study after {what}",
    "high_value": "{team}: priority service on their next order after {what}",
    "high_value@top": "{team}: a personal thank-you from their account manager for {what}",
}
DEFAULT_RISK_ACTIONS = {
    "lapse": "personal check-in on {channel}: ask how they are doing, no sales pitch",
    "broken_promises": "{team} fixes the broken {metric} promise and apologises in person",
    "open_complaints": "escalate the open complaint past its SLA to {team}",
    "silent_failures": "reach out about the failures they did not complain about",
    "detractor": "call back about their low rating and what went wrong",
    "inconsistency": "review their recent experience across channels with {team}",
    "falling_trend": "ask what changed: their ratings are falling",
}


DEFAULT_MOMENT_COOLDOWN_DAYS = {
    "service_recovery": 0.0,
    "milestone": 0.0,
    "advocacy": 180.0,
    "high_value": 60.0,
}


def _over(defaults: dict[str, Any], given: Any) -> Any:
    """A rules file names the entries of a table it changes; the others keep their default."""
    return {**defaults, **given} if isinstance(given, dict) else given


class RiskRules(_Config):
    """The risk is a probability: that the customer has no contact (a customer-initiated
    touchpoint: a purchase, a visit, a call...) within `horizon_days`; for a feed of
    purchases only, no purchase. A signal is raised on it at `trigger.raise_at`."""

    horizon_days: float = Field(
        90.0, gt=0, le=3650, description="the risk is P(no contact within this many days)"
    )
    min_loss_share: float = Field(
        0.05,
        ge=0,
        description="a lapse alone raises a risk only when its expected loss (P x yearly "
        "value) is at least this share of the business's typical customer's yearly value "
        "(0.05: at P 0.5, a customer worth a tenth of the typical one)",
    )
    min_lapse: float = Field(
        0.5,
        ge=0,
        le=1,
        description="unless the risk model was checked at this horizon on the business's own "
        "history (recalibrated; then past the usual gap is enough), the rhythm raises a risk "
        "alone only once the silence is this far past the customer's own rhythm (the lapse "
        "metric: 0.5 = 5.5 gap spreads past the usual gap)",
    )
    actions: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_RISK_ACTIONS),
        description="suggested action by the factor driving the risk most; {team}, "
        "{channel} and {metric} are filled in",
    )
    weights: RiskWeights = RiskWeights()
    trigger: Trigger = Trigger(raise_at=0.5, clear_below=0.35, cooldown_days=14)

    @field_validator("actions", mode="before")
    @classmethod
    def _over_defaults(cls, given: Any) -> Any:
        return _over(DEFAULT_RISK_ACTIONS, given)

    @model_validator(mode="after")
    def _actions_format(self) -> RiskRules:
        for factor, text in self.actions.items():
            try:
                text.format(team="", channel="", metric="")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"risk.actions.{factor}: only {{team}}, {{channel}} and {{metric}} can be "
                    f"filled in ({error!r})"
                ) from None
        return self

    lapse_from: float = Field(
        3.0,
        ge=0,
        description="silence, in the customer's own gap spreads past their usual gap, "
        "where the displayed lapse (and wow's gate) starts to count",
    )
    lapse_full: float = Field(8.0, gt=0, description="...and where it counts fully")
    consecutive_full: int = Field(
        3, ge=1, description="broken promises in a row that count fully (squared below it)"
    )
    broken_rate_full: float = Field(
        0.5, gt=0, le=1, description="share of recent promises broken that counts fully"
    )
    metric_importance: dict[str, float] = Field(
        default_factory=dict,
        description="per-metric weight of a broken promise (default 1; 'what matters most': "
        "e.g. {tow_arrival_minutes: 1.5, invoice_days: 0.5})",
    )
    silent_failures_full: int = Field(3, ge=1)
    complaint_sla_days: float = Field(3.0, gt=0)
    trend_full: float = Field(0.3, gt=0)


class WowRules(_Config):
    """A wow is raised by the moment itself (no hysteresis: a steady customer gets the next
    one), once per moment kind per `moment_cooldown_days`, and at most once per customer
    per `budget_days` (service recovery excepted: an incident is answered when it happens)."""

    weights: WowWeights = WowWeights()
    raise_at: float = Field(0.6, ge=0, le=1)
    moment_cooldown_days: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MOMENT_COOLDOWN_DAYS)
    )
    budget_days: float = Field(30.0, ge=0, description="at most one wow per customer this often")
    min_consistency: float = Field(0.6, ge=0, le=1, description="consistency comes before wow")
    min_promises_kept: float = Field(
        0.8, ge=0, le=1, description="share of recent promises kept (when there were any)"
    )
    max_risk: float = Field(0.35, ge=0, le=1)
    max_lapse: float = Field(0.25, ge=0, le=1, description="no wow for a customer who is lapsing")
    milestones: tuple[int, ...] = (5, 10, 25, 50, 100)
    high_value_amount: float = Field(500.0, gt=0)
    owners: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_WOW_OWNERS),
        description="the team that makes each moment's gesture",
    )
    capacity_per_day: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_WOW_CAPACITY),
        description="gestures a team can make in a day (event time): the day's offers are "
        "ranked by expected value and only this many are published, the rest are kept as "
        "over_capacity (docs/metrics.md says why 8 a day in all)",
    )
    default_capacity_per_day: int = Field(
        1, ge=0, description="for a team that `capacity_per_day` does not name"
    )
    decide_after_hours: float = Field(
        2.0,
        ge=0,
        description="a day's offers are decided once event time on every partition is this "
        "far past its end (so the day's late events are in)",
    )
    top_value_share: float = Field(
        2.0,
        gt=0,
        description="a customer worth this many times the typical yearly value gets the "
        "moment's `@top` action when there is one",
    )
    actions: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_WOW_ACTIONS),
        description="suggested action by moment (and `moment@top` for the most valuable "
        "customers); {team}, {channel}, {what} and {value} are filled in",
    )

    @field_validator("owners", "actions", "capacity_per_day", "moment_cooldown_days", mode="before")
    @classmethod
    def _over_defaults(cls, given: Any, info: ValidationInfo) -> Any:
        defaults: dict[str, dict[str, Any]] = {
            "owners": DEFAULT_WOW_OWNERS,
            "actions": DEFAULT_WOW_ACTIONS,
            "capacity_per_day": DEFAULT_WOW_CAPACITY,
            "moment_cooldown_days": DEFAULT_MOMENT_COOLDOWN_DAYS,
        }
        return _over(defaults[info.field_name or ""], given)

    @model_validator(mode="after")
    def _actions_format(self) -> WowRules:
        for key, text in self.actions.items():
            try:
                text.format(team="", channel="", what="", value="")
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    f"wow.actions.{key}: only {{team}}, {{channel}}, {{what}} and {{value}} "
                    f"can be filled in ({error!r})"
                ) from None
        for team, capacity in self.capacity_per_day.items():
            if capacity < 0:
                raise ValueError(f"wow.capacity_per_day.{team}: must be 0 or more")
        return self

    def owner(self, moment: str) -> str:
        return self.owners.get(moment, "customer_success")

    def capacity(self, team: str) -> int:
        return self.capacity_per_day.get(team, self.default_capacity_per_day)


class InvolvementWeights(_Config):
    """Each component's reach alone (a noisy-OR, like the risk) once it is full
    (`InvolvementFull`): docs/metrics.md."""

    feedback: float = Field(0.4, ge=0, le=1, description="full feedback, all answered")
    channels: float = Field(0.3, ge=0, le=1)
    tenure: float = Field(0.3, ge=0, le=1)
    spend: float = Field(0.3, ge=0, le=1, description="full at wow.high_value_amount")
    referrals: float = Field(0.5, ge=0, le=1)


class InvolvementFull(_Config):
    """Where each involvement component counts fully."""

    feedback: float = Field(5.0, gt=0, description="pieces of feedback given")
    channels: float = Field(4.0, gt=1, description="channels used")
    tenure_days: float = Field(365.0, gt=0, description="between first and last contact")
    referrals: float = Field(2.0, gt=0)


class LoyaltyRules(_Config):
    """Loyalty beyond satisfaction: involvement, then affinity. Both protect against the risk
    (an involved, attached customer forgives one failure) and make a customer ready to be
    invited as an advocate."""

    involvement: InvolvementWeights = InvolvementWeights()
    involvement_full: InvolvementFull = InvolvementFull()
    protection_involvement: float = Field(
        0.25, ge=0, le=0.5, description="risk taken off at full involvement"
    )
    protection_affinity: float = Field(
        0.15, ge=0, le=0.5, description="risk taken off at full affinity (above neutral)"
    )
    advocacy_min_involvement: float = Field(0.3, ge=0, le=1)
    advocacy_min_affinity: float = Field(0.65, ge=0, le=1)
    bad_review_strength: float = Field(
        0.6, ge=0, le=1, description="a public bad review's weight in the detractor factor"
    )
    pace_min_days: float = Field(
        90.0, gt=0, description="revenue at risk: spend a year, over at least this span"
    )


class CalibrationRules(_Config):
    """Company level: a promise type (metric x channel x team) broken in more than `rate` of
    its promises over a window of event time raises `promise_overcommitted`, once."""

    window_days: float = Field(7.0, gt=0, description="windows of event time, from the epoch")
    rate: float = Field(0.2, gt=0, le=1, description="share of promises broken that alerts")
    min_promises: int = Field(10, ge=1, description="fewer promises in a window: no verdict")
    grace_days: float = Field(
        1.0, ge=0, description="a window is judged once event time is this far past its end"
    )


DEFAULT_IDENTIFIER_LIMITS = {
    "customer": 1,
    "crm_id": 1,
    "email": 5,
    "phone": 5,
    "loyalty_card": 5,
    "device": 20,
}
DEFAULT_DENIED_IDENTIFIERS = (
    "null",
    "none",
    "nil",
    "undefined",
    "unknown",
    "n/a",
    "na",
    "-",
    "0",
    "test",
    "test@test.com",
    "test@example.com",
    "noreply@example.com",
)


class IdentityRules(_Config):
    """How identifiers seen together link customers (streams/identity.py).

    Strong identifiers (a resolved customer id, CRM id, e-mail, phone, named external ids)
    name a person; seen together on a touchpoint, their customers merge. Weak ones (device,
    loyalty card, order) are shared in real life (a kiosk, a family card, a gift): they join
    one customer and bring in their anonymous history, but never merge two customers who are
    both known by a strong identifier."""

    weak_types: tuple[str, ...] = Field(
        ("device", "loyalty_card", "order_id"),
        description="identifier types that never merge two customers known by strong ones",
    )
    limits: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_IDENTIFIER_LIMITS),
        description="at most this many identifiers of a type per customer (a type not named "
        "has no limit; `external:<name>` ids: one each): two CRM ids never merge",
    )
    confirm_types: tuple[str, ...] = Field(
        ("device",),
        description="weak types whose anonymous history joins a customer only once seen with "
        "that same customer on two different days (no one else's in between), so a kiosk's "
        "first login merges nothing (bench/identity.py measured it: cards too lost 13 % of "
        "the linkable pairs, devices alone 4 %, none 2 merges through kiosks)",
    )
    shared_after: int = Field(
        3,
        ge=1,
        description="a weak identifier seen with more known customers than this is shared "
        "(a kiosk, a family card): it stops linking",
    )
    denied: tuple[str, ...] = Field(
        DEFAULT_DENIED_IDENTIFIERS,
        description="placeholder values that are never identifiers (compared normalised, "
        "also as their pseudonyms)",
    )


class Rules(_Config):
    """The whole rules file. `version` goes into every signal and its id."""

    version: str = "default-4"
    half_life_days: float = Field(30.0, gt=0)
    wow_margin: float = Field(1.0, ge=0, description="gap (tolerance units) that counts as wow")
    grace_seconds: float = Field(24 * 3600.0, ge=0)
    recovery_sla_days: float = Field(
        2.0, gt=0, description="a complaint resolved within this is a service recovery"
    )
    default_interarrival_days: float = Field(30.0, gt=0)
    silence_check_days: float = Field(1.0, gt=0, description="event-time timer period")
    snapshot_every_days: float = Field(1.0, ge=0, description="metrics snapshot throttle")
    consistency: ConsistencyRules = ConsistencyRules()
    risk: RiskRules = RiskRules()
    wow: WowRules = WowRules()
    loyalty: LoyaltyRules = LoyaltyRules()
    calibration: CalibrationRules = CalibrationRules()
    identity: IdentityRules = IdentityRules()

    @cached_property
    def scoring(self) -> ScoringParams:
        """The values the per-event scoring reads, as a compiled object's attributes."""
        return ScoringParams(self)

    def state_params(self) -> StateParams:
        return StateParams(
            self.half_life_days,
            self.wow_margin,
            self.grace_seconds,
            self.recovery_sla_days,
            tuple(sorted(self.risk.metric_importance.items())),
        )

    @classmethod
    def load(cls, path: Path | None) -> Rules:
        return cls() if path is None else cls.model_validate(read_rules_file(path))


def read_rules_file(path: Path) -> dict[str, Any]:
    """A rules file's own entries (TOML by its suffix, else YAML), before defaults."""
    text = path.read_text()
    if path.suffix == ".toml":
        return tomllib.loads(text)
    import yaml  # the worker's extra; a publisher's install reads TOML rules only

    return yaml.safe_load(text) or {}
