"""The about-to-defect score from the metrics: the service factors, the learned lapse,
what loyalty takes off, whether it may be raised, and what to do about it."""

from __future__ import annotations

from typing import Final

from touchstream.schemas.decoder import Touchpoint
from touchstream.streams.attribution import attribution
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.measure import INVOLVEMENT_PARTS, Metrics, measure
from touchstream.streams.params import ScoringParams
from touchstream.streams.rules import Rules
from touchstream.streams.scoring import (
    RISK,
    Detail,
    Score,
    clamp01,
    combined,
    reaches,
)
from touchstream.streams.state import CHANNELS


def service_risk(m: Metrics, p: ScoringParams) -> Score:
    """What purchase models cannot see: broken promises, complaints, failures, ratings. A
    noisy-OR (`scoring.combined`), each weight the most that factor reaches alone, lessened
    by involvement and affinity (`protected`)."""
    consecutive = min(1.0, m.consecutive_misses / p.consecutive_full) ** 2
    # a high share of broken promises counts, the more the bigger the misses, but less than
    # a run of them: at most 0.8 of the factor
    rate = clamp01(m.broken_promise_rate / p.broken_rate_full) * (0.4 + 0.4 * m.mean_miss)
    complaints = (
        (
            1.0
            if m.oldest_open_complaint_days > p.complaint_sla_days
            else 0.5 * m.oldest_open_complaint_days / p.complaint_sla_days
        )
        if m.open_complaints
        else 0.0
    )
    detractor = clamp01((0.5 - m.rating) / 0.5) if m.rating is not None else 0.0
    detractor = max(detractor, clamp01(m.bad_reviews * p.bad_review_strength))
    broken = max(consecutive, rate)
    silent = clamp01(m.silent_failures / p.silent_failures_full)
    # nothing judged yet is no evidence (its consistency is a neutral 0.5)
    inconsistent = 1.0 - m.consistency if m.failed + m.met + m.exceeded > 0.0 else 0.0
    falling = clamp01(-m.rating_trend / p.trend_full)
    # only the factors that reach anything are built (`combined` would drop the others):
    # most touchpoints have one or two
    factors: list[tuple[str, float, float, float, Detail]] = []
    if reaches(broken, p.broken_promises):
        detail: Detail = (
            "{} broken promises in a row, {:.0%} of recent promises broken, "
            "worst missed by {:.1f}x the promise",
            (m.consecutive_misses, m.broken_promise_rate, m.worst_recent_miss),
        )
        factors.append(
            ("broken_promises", m.broken_promise_rate, broken, p.broken_promises, detail)
        )
    if reaches(complaints, p.open_complaints):
        detail = (
            "{} open, oldest {:.1f} days (SLA {:.0f})",
            (m.open_complaints, m.oldest_open_complaint_days, p.complaint_sla_days),
        )
        factors.append(
            (
                "open_complaints",
                m.oldest_open_complaint_days,
                complaints,
                p.open_complaints,
                detail,
            )
        )
    if reaches(silent, p.silent_failures):
        detail = ("{} failures with no contact from the customer since", (m.silent_failures,))
        factors.append(("silent_failures", m.silent_failures, silent, p.silent_failures, detail))
    if reaches(detractor, p.detractor):
        rating = m.rating if m.rating is not None else -1.0
        detail = ("low ratings; {} bad public reviews", (m.bad_reviews,))
        factors.append(("detractor", rating, detractor, p.detractor, detail))
    if reaches(inconsistent, p.inconsistency):
        detail = ("consistency {:.2f}", (m.consistency,))
        factors.append(("inconsistency", m.consistency, inconsistent, p.inconsistency, detail))
    if reaches(falling, p.falling_trend):
        detail = ("recent ratings below the long-run mean", ())
        factors.append(("falling_trend", m.rating_trend, falling, p.falling_trend, detail))
    raw = combined(RISK, factors, None)
    return protected(raw, m, p)


def risk(m: Metrics, p: ScoringParams, model: RiskModel) -> Score:
    """About to defect: P(leave) = 1 - (1 - p_leave) * (1 - service), the customer leaves
    on their own rhythm (`Metrics.p_leave`, learned from the business's history) or is
    driven away by the service. Contributions add up to it: `lapse` is p_leave, the service
    factors share (1 - p_leave) * service by their shares of it."""
    service = service_risk(m, p)
    horizon = p.horizon_days
    keep = 1.0 - m.p_leave
    factors = [
        (name, value, keep * part, detail)
        for name, value, part, detail in service.factors
        if keep * part != 0.0  # nothing left to add once the rhythm alone is certain
    ]
    if m.p_leave > 0.0:
        gap = model.one_time_gap(m.repeat_days)
        if gap:  # no rhythm of their own: the business's gap says what is late
            detail: Detail = (
                "P(no contact within {:.0f} days) {:.2f}: one visit, {:.0f} days ago; "
                "the business's customers typically come back within {:.1f} days; {}",
                (horizon, m.p_leave, m.silent_days, gap, model),
            )
        else:
            detail = (
                "P(no contact within {:.0f} days) {:.2f} from their rhythm: {} repeat "
                "visits, silent {:.1f}x their usual gap, P(alive) {:.2f}; {}",
                (
                    horizon,
                    m.p_leave,
                    m.repeat_days,
                    m.overdue_ratio,
                    m.p_alive,
                    model,  # str(model) is its description: made only for a signal
                ),
            )
        factors.append(("lapse", m.p_leave, m.p_leave, detail))
    factors.sort(key=lambda f: -f[2])
    value = clamp01(m.p_leave + keep * service.value)
    return Score(RISK, value, tuple(factors), None, service.value)


def raisable(m: Metrics, score: Score, p: ScoringParams, model: RiskModel) -> float:
    """The risk a signal is raised on. Where the model's P has been checked at this horizon
    against the business's own history (`RiskModel.recalibration`: past moments whose
    whole horizon was seen), the rhythm's part counts once the customer is late (`late`).
    Before that P(leave) can be high, right after a first purchase where most buy once,
    true but no one to call yet. Where it has not (default BG/NBD
    parameters, or a horizon longer than the history has shown whole: an extrapolation),
    the silence must be clearly past the customer's own rhythm (`Metrics.lapse` at
    `risk.min_lapse`): a regular with random gaps has a long one now and then. And a
    customer whose expected loss (P x yearly value) is under `min_loss_share` of the
    business's typical yearly value is not raised by their rhythm alone."""
    checked = model.recalibrated_at(m.horizon_days)
    if not (late(m, model) if checked else m.lapse >= p.min_lapse):
        return score.service
    floor = p.min_loss_share * model.typical_value
    if floor > 0.0 and score.value * m.revenue_at_risk < floor:
        return score.service
    return score.value


def late(m: Metrics, model: RiskModel) -> bool:
    """Silent past their usual gap. A one-time buyer has no rhythm of their own: they are
    late once silent past the business's typical gap (learned with the model), a week or
    two in a grocery, months at a music shop; until one is learned, past the default gap."""
    gap = model.one_time_gap(m.repeat_days)
    return m.silent_days > gap if gap else m.overdue_ratio > 1.0


_ATTACHED: Final = (
    "an attached customer: affinity {:.2f} (mean rating {:.2f}, trend {:+.2f}, "
    "{} bad public reviews)"
)
_ATTACHED_UNRATED: Final = _ATTACHED.replace("{:.2f} (mean rating {:.2f}", "{:.2f} (mean rating {}")


def protected(raw: Score, m: Metrics, p: ScoringParams) -> Score:
    """Involvement and affinity take a share of the risk off (at most their two
    `protection_*` weights together): two reasons with negative contributions, so the
    contributions still add up to the score."""
    by_involvement = p.protection_involvement * m.involvement
    by_affinity = p.protection_affinity * clamp01(2.0 * (m.affinity - 0.5))
    protection = by_involvement + by_affinity
    if raw.value <= 0.0 or protection <= 0.0:
        return raw
    taken = raw.value * protection
    factors = list(raw.factors)
    if by_involvement > 0.0:
        factors.append(
            (
                "involvement",
                m.involvement,
                -taken * by_involvement / protection,
                (
                    "an involved customer forgives more: involvement {:.2f} from "
                    + INVOLVEMENT_PARTS,
                    (m.involvement, *m.involvement_parts),
                ),
            )
        )
    if by_affinity > 0.0:
        factors.append(
            (
                "affinity",
                m.affinity,
                -taken * by_affinity / protection,
                (
                    _ATTACHED_UNRATED if m.rating is None else _ATTACHED,
                    (
                        m.affinity,
                        "none" if m.rating is None else m.rating,  # formatted for a signal only
                        m.rating_trend,
                        m.bad_reviews,
                    ),
                ),
            )
        )
    return Score(raw.kind, raw.value - taken, tuple(factors), raw.suggested_action)


def silence_ceiling(
    state: CustomerState, now: float, rules: Rules, model: RiskModel
) -> tuple[float, Metrics]:
    """The highest risk this customer can be raised at by silence alone, from `now` on, and
    the customer's metrics at `now` (the check that follows reuses them).

    With no new event only silence and complaint age grow; every other factor is a ratio of
    anchored sums (constant) or shrinks (channel spread). Silence can take P(leave) to 1, so
    only a customer whose expected loss stays under the floor even then, and whose service
    risk with an overdue complaint stays below the threshold, can be skipped by the timer
    until their next event; the outcome is exactly that of checking them every day.
    """
    m = measure(state, now, rules, model)
    # the worst silence and complaint age, set on the measure itself and put back after
    # (dataclasses.replace copied all its fields in Python, ~20 µs a silence check)
    overdue, oldest = m.overdue_ratio, m.oldest_open_complaint_days
    m.overdue_ratio = max(overdue, 1e9)
    m.oldest_open_complaint_days = 1e9
    service = service_risk(m, rules.scoring).value
    m.overdue_ratio, m.oldest_open_complaint_days = overdue, oldest
    floor = rules.scoring.min_loss_share * model.typical_value
    if floor > 0.0 and m.revenue_at_risk < floor:
        return service, m
    return 1.0, m


def at_stake(m: Metrics, rules: Rules, model: RiskModel) -> float:
    """What a defect would cost, added to the risk for its severity (up to 0.2): an
    established rhythm (10 repeat visits), and the yearly value against the business's
    typical customer's (twice the typical value counts fully; `wow.high_value_amount` until
    a model has learned what is typical). A risk is raised when it crosses the threshold,
    so its score alone would make every timer-raised signal 'low'."""
    tenure = 0.1 * min(1.0, m.repeat_days / 10.0)
    typical = model.typical_value
    if typical > 0.0:
        value = 0.1 * min(1.0, m.revenue_at_risk / (2.0 * typical))
    else:
        value = 0.1 * min(1.0, m.spend / rules.wow.high_value_amount)
    return tenure + value


def usual_channel(state: CustomerState, to_talk: bool = False) -> str:
    """The channel of most of the customer's recent judged touchpoints ("" if none); to
    talk to them, not the delivery: no one checks in on a customer through a parcel."""
    counts = state.channel_quality
    candidates = [c for c in counts if not (to_talk and CHANNELS[c] == "delivery")]
    if candidates:
        return CHANNELS[max(candidates, key=lambda c: (counts[c][0], -c))]
    if to_talk:  # judged only on deliveries: a channel they have used, in the schema's order
        for index, name in enumerate(CHANNELS):
            if state.channels_mask >> index & 1 and name != "delivery":
                return name
    return ""


def risk_action(score: Score, state: CustomerState, event: Touchpoint | None, rules: Rules) -> str:
    """What to do follows from what drives the risk most (`risk.actions` of the rules):
    the owning team fixes a broken promise, a lapse gets a personal check-in on the
    customer's usual channel, an open complaint is escalated past its SLA."""
    actions = rules.risk.actions
    driver = score.factors[0][0] if score.factors else "lapse"
    where = attribution(state)
    text = actions.get(driver) or actions.get("lapse", "")
    return text.format(
        team=(where.team if where and where.team else "the owning team"),
        channel=usual_channel(state, to_talk=True) or _talk_channel(event),
        metric=(where.metric if where and where.metric else "the promise"),
    )


def _talk_channel(event: Touchpoint | None) -> str:
    if event is None or event.channel.value == "delivery":
        return "their usual channel"
    return event.channel.value
