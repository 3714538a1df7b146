"""Wow opportunities: the moment a touchpoint makes, its score, value, action and budget."""

from __future__ import annotations

from touchstream.schemas.decoder import Touchpoint
from touchstream.streams.assessment import REFERRAL
from touchstream.streams.churn import RiskModel
from touchstream.streams.measure import Metrics
from touchstream.streams.params import DAY, ScoringParams
from touchstream.streams.rules import Rules
from touchstream.streams.scoring import (
    WOW,
    WOW_KEY,
    Score,
    clamp01,
    weighted,
)
from touchstream.streams.state import Applied

Moment = tuple[float, str, str]  # strength, name, what happened (for the action)


NO_MOMENT: Moment = (0.0, "none", "")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def moment_of(event: Touchpoint, applied: Applied, p: ScoringParams, m: Metrics) -> Moment:
    """The strongest wow moment of this touchpoint: (strength, name, what happened).
    A promoter rating is an advocacy moment only for a customer ready to advocate:
    involved and attached (`loyalty.advocacy_min_*`); a referral is advocacy itself."""
    candidates: list[Moment] = [NO_MOMENT]
    if applied.resolved_complaint_after is not None:
        days = applied.resolved_complaint_after / DAY
        if days < p.recovery_sla_days:  # the moment of the resolution is a recovery
            what = f"their complaint was resolved in {days * 24:.0f} hours"
            return (clamp01(1.0 - days / p.recovery_sla_days), "service_recovery", what)
    if applied.new_purchase_count is not None and applied.new_purchase_count in p.milestones:
        what = f"their {_ordinal(applied.new_purchase_count)} purchase"
        candidates.append((1.0, "milestone", what))
    assessed = applied.assessment
    ready = m.involvement >= p.advocacy_min_involvement and m.affinity >= p.advocacy_min_affinity
    if event.kind is REFERRAL:
        candidates.append((1.0, "advocacy", "they referred someone"))
    elif assessed is not None and assessed.promoter and ready:
        candidates.append((1.0, "advocacy", "a promoter rating"))
    value = event.value
    if value is not None and value.amount >= p.high_value_amount:
        what = f"an order of {value.amount:,.0f} {value.currency}"
        candidates.append((0.7, "high_value", what))
    best = candidates[0]
    for candidate in candidates[1:]:  # the first of the strongest, as max() picks
        if candidate[0] > best[0]:
            best = candidate
    return best


def offer_value(m: Metrics, model: RiskModel) -> float:
    """What a customer is worth for ranking their wow offer: their yearly value, or the
    business's typical one while their spend is unknown (a prospect, a service business)."""
    if m.revenue_at_risk > 0.0:
        return m.revenue_at_risk
    return model.typical_value if model.typical_value > 0.0 else 1.0


def wow_action(moment: Moment, value: float, channel: str, rules: Rules, model: RiskModel) -> str:
    """The moment's action from the rules (`moment@top` for a customer worth
    `top_value_share` x the typical one), with the team, channel, what happened and value."""
    w = rules.wow
    _, name, what = moment
    top = model.typical_value > 0.0 and value >= w.top_value_share * model.typical_value
    text = (w.actions.get(name + "@top") if top else None) or w.actions.get(name, "")
    return text.format(team=w.owner(name), channel=channel, what=what, value=f"{value:,.0f}")


def wow(
    m: Metrics, risk_score: float, moment: Moment, p: ScoringParams, pre_incident: float = -1.0
) -> Score:
    """Consistency first: no wow on top of an erratic service, broken promises, a risk or a
    lapse. A service recovery is judged on the record *before* the incident it recovers."""
    strength, name, what = moment
    consistency = m.consistency
    kept = 1.0 - m.broken_promise_rate if m.promises > 0.5 else 1.0
    if name == "service_recovery" and pre_incident >= 0.0:
        consistency, kept = pre_incident, 1.0
    if (
        consistency < p.wow_min_consistency
        or kept < p.wow_min_promises_kept
        or risk_score > p.wow_max_risk
        or m.lapse > p.wow_max_lapse
    ):
        return Score(WOW, 0.0, ())
    judged = m.failed + m.met + m.exceeded
    stealable = m.met / judged if judged > 0 else 0.0
    return weighted(
        WOW,
        [
            (
                "consistent_record",
                consistency,
                clamp01(
                    (consistency - p.wow_min_consistency) / (1.0 - p.wow_min_consistency + 1e-9)
                ),
                p.wow_consistent_record,
                ("consistency {:.2f}, {:.0%} of recent promises kept", (consistency, kept)),
            ),
            ("moment:" + name, strength, strength, p.wow_moment, (what, ())),
            (
                "stealable",
                stealable,
                stealable,
                p.wow_stealable,
                ("satisfied (met) rather than already delighted: a competitor could win them", ()),
            ),
        ],
        None,
    )


def wow_allowed(signal_state: dict[str, list], moment: str, now: float, p: ScoringParams) -> bool:
    """The moment's own cooldown, then the customer's wow budget (recovery is exempt)."""
    last_moment = signal_state.get("wow:" + moment, [False, None])[1]
    cooldown = p.moment_cooldown_days.get(moment, p.wow_budget_days) * DAY
    if last_moment is not None and now - last_moment < cooldown:
        return False
    if moment == "service_recovery":
        return True
    last_any = signal_state.get(WOW_KEY, [False, None])[1]
    return last_any is None or now - last_any >= p.wow_budget_days * DAY
