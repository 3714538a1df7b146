"""The rules the per-event scoring reads, as attributes of a compiled object.

A pydantic attribute read from compiled code goes through the model's `__getattr__` hook,
~500 instructions (callgrind); the measure, the risk, the wow and the signals' gates read
~60 rule values an event. `Rules.scoring` builds this once per rules object; the values
are the rules' own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

DAY: Final = 86_400.0


@dataclass(frozen=True, slots=True)
class StateParams:
    """What the state update needs of the rules (`Rules.state_params()`; no defaults of its
    own, so a number lives in the rules only)."""

    half_life_days: float
    wow_margin: float
    grace_seconds: float
    recovery_sla_days: float
    importance: tuple[tuple[str, float], ...]  # per-metric weight of a promise

    @property
    def half_life(self) -> float:
        return self.half_life_days * DAY


class TriggerParams:
    """A trigger of the rules (`streams.rules.Trigger`), for `scoring.decide`."""

    def __init__(self, trigger: Any) -> None:
        self.raise_at: float = float(trigger.raise_at)
        self.clear_below: float = float(trigger.clear_below)
        self.cooldown_days: float = float(trigger.cooldown_days)


class ScoringParams:
    def __init__(self, rules: Any) -> None:
        risk, loyalty, wow = rules.risk, rules.loyalty, rules.wow
        self.half_life_days: float = float(rules.half_life_days)
        self.default_interarrival_days: float = float(rules.default_interarrival_days)
        self.horizon_days: float = float(risk.horizon_days)
        self.lapse_from: float = float(risk.lapse_from)
        self.lapse_full: float = float(risk.lapse_full)
        self.min_lapse: float = float(risk.min_lapse)
        self.min_loss_share: float = float(risk.min_loss_share)
        self.trend_full: float = float(risk.trend_full)
        self.pace_min_days: float = float(loyalty.pace_min_days)
        # consistency (rules.consistency)
        weights = rules.consistency.weights
        self.steadiness: float = float(weights.steadiness)
        self.met_share: float = float(weights.met_share)
        self.channel_uniformity: float = float(weights.channel_uniformity)
        self.streak: float = float(weights.streak)
        self.stddev_full: float = float(rules.consistency.stddev_full)
        self.spread_full: float = float(rules.consistency.spread_full)
        self.streak_full: float = float(rules.consistency.streak_full)
        # involvement (rules.loyalty.involvement and involvement_full)
        reach, full = loyalty.involvement, loyalty.involvement_full
        self.feedback_reach: float = float(reach.feedback)
        self.channels_reach: float = float(reach.channels)
        self.tenure_reach: float = float(reach.tenure)
        self.spend_reach: float = float(reach.spend)
        self.referrals_reach: float = float(reach.referrals)
        self.feedback_full: float = float(full.feedback)
        self.channels_past_first_full: float = float(full.channels) - 1.0
        self.tenure_full_days: float = float(full.tenure_days)
        self.spend_full: float = float(rules.wow.high_value_amount)
        self.referrals_full: float = float(full.referrals)
        # the service factors (rules.risk.weights and their full points), and loyalty's part
        ceiling = risk.weights
        self.broken_promises: float = float(ceiling.broken_promises)
        self.open_complaints: float = float(ceiling.open_complaints)
        self.silent_failures: float = float(ceiling.silent_failures)
        self.detractor: float = float(ceiling.detractor)
        self.inconsistency: float = float(ceiling.inconsistency)
        self.falling_trend: float = float(ceiling.falling_trend)
        self.consecutive_full: float = float(risk.consecutive_full)
        self.broken_rate_full: float = float(risk.broken_rate_full)
        self.complaint_sla_days: float = float(risk.complaint_sla_days)
        self.silent_failures_full: float = float(risk.silent_failures_full)
        self.bad_review_strength: float = float(loyalty.bad_review_strength)
        self.protection_involvement: float = float(loyalty.protection_involvement)
        self.protection_affinity: float = float(loyalty.protection_affinity)
        # the signals' gates: the risk's trigger, the wow's moments, gates and budget
        self.risk_trigger: TriggerParams = TriggerParams(risk.trigger)
        self.snapshot_every: float = float(rules.snapshot_every_days) * DAY
        self.recovery_sla_days: float = float(rules.recovery_sla_days)
        self.advocacy_min_involvement: float = float(loyalty.advocacy_min_involvement)
        self.advocacy_min_affinity: float = float(loyalty.advocacy_min_affinity)
        self.milestones: frozenset[int] = frozenset(int(n) for n in wow.milestones)
        self.high_value_amount: float = float(wow.high_value_amount)
        self.wow_raise_at: float = float(wow.raise_at)
        self.wow_min_consistency: float = float(wow.min_consistency)
        self.wow_min_promises_kept: float = float(wow.min_promises_kept)
        self.wow_max_risk: float = float(wow.max_risk)
        self.wow_max_lapse: float = float(wow.max_lapse)
        self.wow_consistent_record: float = float(wow.weights.consistent_record)
        self.wow_moment: float = float(wow.weights.moment)
        self.wow_stealable: float = float(wow.weights.stealable)
        self.wow_budget_days: float = float(wow.budget_days)
        self.moment_cooldown_days: dict[str, float] = {
            name: float(days) for name, days in wow.moment_cooldown_days.items()
        }
