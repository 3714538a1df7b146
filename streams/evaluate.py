"""From a customer's state to metrics, scores and signals, at one moment of event time."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from touchstream.schemas import Attribution, Kind, Reason, Signal, SignalKind, TouchpointEvent
from touchstream.schemas.signal import Snapshot
from touchstream.streams.bgnbd import p_alive
from touchstream.streams.churn import PRIOR_GAPS, RiskModel, gap_spread
from touchstream.streams.rules import Rules
from touchstream.streams.scoring import (
    Score,
    clamp01,
    combined,
    decide,
    severity,
    signal_id,
    weighted,
    wow_severity,
)
from touchstream.streams.state import (
    CHANNELS,
    DAY,
    Applied,
    CustomerState,
    channel_spread,
    decay_to,
    silent_failures,
    streak,
    worst_miss_key,
)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(slots=True, init=False)  # not frozen: a frozen __init__ costs ~3 µs per event
class Metrics:
    now: float
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
    promises: float
    broken_promise_rate: float
    consecutive_misses: int
    worst_recent_miss: float
    mean_miss: float  # mean miss strength of the recent broken promises, in [0, 1]
    repeat_days: int  # active days after the first (BG/NBD's x)
    spend: float
    silence_z: float  # days silent past the usual gap, in spreads of the customer's gaps
    lapse: float
    involvement: float
    involvement_parts: tuple[float, ...]  # reach of feedback, channels, tenure, spend, referrals
    affinity: float
    revenue_at_risk: float
    bad_reviews: int
    p_leave: float  # P(no contact within the horizon), from the rhythm (`streams.churn`)
    horizon_days: float
    model_version: str

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        *,
        now: float,
        expectation_gap: float,
        worst_recent_gap: float,
        failed: float,
        met: float,
        exceeded: float,
        consistency: float,
        quality_mean: float,
        quality_stddev: float,
        met_or_better_share: float,
        channel_spread: float,
        streak: int,
        mean_interarrival_days: float | None,
        overdue_ratio: float,
        p_alive: float,
        rating: float | None,
        rating_trend: float,
        open_complaints: int,
        oldest_open_complaint_days: float,
        silent_failures: int,
        channels: int,
        promises: float,
        broken_promise_rate: float,
        consecutive_misses: int,
        worst_recent_miss: float,
        mean_miss: float,
        repeat_days: int,
        spend: float,
        silence_z: float,
        lapse: float,
        involvement: float = 0.0,
        involvement_parts: tuple[float, ...] = (),
        affinity: float = 0.5,
        revenue_at_risk: float = 0.0,
        bad_reviews: int = 0,
        p_leave: float = 0.0,
        horizon_days: float = 90.0,
        model_version: str = "default",
    ) -> None:
        self.now = now
        self.expectation_gap = expectation_gap
        self.worst_recent_gap = worst_recent_gap
        self.failed = failed
        self.met = met
        self.exceeded = exceeded
        self.consistency = consistency
        self.quality_mean = quality_mean
        self.quality_stddev = quality_stddev
        self.met_or_better_share = met_or_better_share
        self.channel_spread = channel_spread
        self.streak = streak
        self.mean_interarrival_days = mean_interarrival_days
        self.overdue_ratio = overdue_ratio
        self.p_alive = p_alive
        self.rating = rating
        self.rating_trend = rating_trend
        self.open_complaints = open_complaints
        self.oldest_open_complaint_days = oldest_open_complaint_days
        self.silent_failures = silent_failures
        self.channels = channels
        self.promises = promises
        self.broken_promise_rate = broken_promise_rate
        self.consecutive_misses = consecutive_misses
        self.worst_recent_miss = worst_recent_miss
        self.mean_miss = mean_miss
        self.repeat_days = repeat_days
        self.spend = spend
        self.silence_z = silence_z
        self.lapse = lapse
        self.involvement = involvement
        self.involvement_parts = involvement_parts
        self.affinity = affinity
        self.revenue_at_risk = revenue_at_risk
        self.bad_reviews = bad_reviews
        self.p_leave = p_leave
        self.horizon_days = horizon_days
        self.model_version = model_version


def usual_gap_days(state: CustomerState, rules: Rules) -> float:
    """Expected days between contacts: the customer's own mean, shrunk towards the default.

    Two early contacts a day apart must not make a week of quiet look like desertion.
    """
    x = max(0, state.active_days - 1)
    span = float(state.last_active_day - state.first_active_day)
    prior = rules.default_interarrival_days
    return max(1.0, (span + PRIOR_GAPS * prior) / (x + PRIOR_GAPS))


def lapse_strength(silence_z: float, p_alive: float, repeat_days: int, rules: Rules) -> float:
    """How clearly a silence is a lapse, in [0, 1].

    Beyond the customer's own rhythm: `silence_z` is the silence past their usual gap in
    units of *their* gaps' spread (`rhythm`), 0 below `lapse_from` spreads, 1 at `lapse_full`.
    A weekly customer who never missed a week has lapsed after five quiet weeks; one who buys
    at random moments (exponential gaps: spread = mean) only after ~7 times their mean gap,
    since a gap of 3-4 times the mean is a normal event for them (~5 % of gaps).
    And beyond what the population model expects: 1 − P(alive) (BG/NBD) weighs the silence
    against how often and how long ago they bought. For a one-time customer (x = 0) P(alive)
    is 1 by construction and says nothing: the silence alone counts. What the customer is
    worth does not make a lapse likelier: it makes it matter more, and goes into the
    severity (`at_stake`)."""
    r = rules.risk
    overdue = clamp01((silence_z - r.lapse_from) / (r.lapse_full - r.lapse_from))
    if overdue <= 0.0:
        return 0.0
    model = 1.0 - p_alive if repeat_days > 0 else 1.0
    return clamp01(overdue * model)


def involvement_parts(
    state: CustomerState, channels: int, tenure_days: float, rules: Rules
) -> tuple[float, ...]:
    """Each component's reach (weight x strength), in INVOLVEMENT_PARTS order: feedback given
    (more when it was answered), channels used, tenure, spend, referrals."""
    t = rules.involvement_terms
    given = state.feedback_given
    answered = min(1.0, state.feedback_answered / given) if given else 0.0
    return (
        t[0] * min(1.0, given / t[5]) * (0.6 + 0.4 * answered),
        t[1] * clamp01((channels - 1) / t[6]),
        t[2] * clamp01(tenure_days / t[7]),
        t[3] * clamp01(state.spend / t[8]),
        t[4] * clamp01(state.referrals / t[9]),
    )


INVOLVEMENT_PARTS = (
    "feedback {:.2f}, channels {:.2f}, tenure {:.2f}, spend {:.2f}, referrals {:.2f}"
)


def involvement_score(parts: tuple[float, ...]) -> float:
    """A noisy-OR of the parts: each reaches its weight alone, together they saturate."""
    survival = 1.0
    for reach in parts:
        survival *= 1.0 - clamp01(reach)
    return clamp01(1.0 - survival)


def affinity_score(
    state: CustomerState, rating: float | None, trend: float, trend_full: float
) -> float:
    """Attachment, 0.5 when nothing is known: ratings (0..1) and their trend, promoter
    moments, and public bad reviews, each a heavy blow (word of mouth)."""
    value = 0.5
    if rating is not None:
        value += 0.35 * (2.0 * rating - 1.0)
    value += 0.15 * max(-1.0, min(1.0, trend / trend_full))
    value += 0.1 * min(2, state.promoter_moments) / 2.0
    value -= 0.25 * min(2, state.bad_reviews)
    return clamp01(value)


def yearly_value(spend: float, known_days: float, pace_min_days: float) -> float:
    """Revenue at risk: the customer's spend a year at their own pace (over at least
    `loyalty.pace_min_days`)."""
    return spend * 365.0 / max(known_days, pace_min_days)


def _complaint_account(state: CustomerState) -> str:
    if not state.open_complaints:
        return ""
    oldest = min(state.open_complaints, key=lambda c: state.open_complaints[c][0])
    return state.complaint_where.get(oldest, "")


def measure(state: CustomerState, now: float, rules: Rules, model: RiskModel) -> Metrics:
    h = rules.half_life_days * DAY
    decay = decay_to(state, now, h)
    judged = state.w_judged
    if judged > 0:
        q_mean = state.s_quality / judged
        q_std = math.sqrt(max(0.0, state.s_quality_sq / judged - q_mean * q_mean))
        met_share = (state.met + state.exceeded) / judged
    else:
        q_mean, q_std, met_share = 0.0, 0.0, 1.0
    spread = channel_spread(state, now, h)
    run = streak(state)
    if judged > 0:
        steadiness, reliability, uniformity, recent, std_full, spread_full, run_full = (
            rules.consistency_terms
        )
        consistency = clamp01(
            steadiness * (1.0 - min(1.0, q_std / std_full))
            + reliability * met_share
            + uniformity * (1.0 - min(1.0, spread / spread_full))
            + recent * min(1.0, run / run_full)
        )
    else:
        consistency = 0.5  # nothing judged yet: neither steady nor erratic

    x = max(0, state.active_days - 1)
    t_x = float(state.last_active_day - state.first_active_day)
    age = max(t_x, now / DAY - state.first_active_day) if state.active_days else 0.0
    mean_ia = t_x / x if x > 0 else None
    since_last = max(0.0, now - (state.last_active or state.last_seen)) / DAY
    alive = p_alive(x, t_x, age, model.population) if state.active_days else 1.0
    leave = 0.0
    if state.active_days:
        # the spread of their gaps: for a learned model only (the default has no use for it)
        rhythm = gap_spread(state.recent_days, mean_ia) if model.learned and mean_ia else 0.0
        leave = model.p_no_contact(x, t_x, age, rules.risk.horizon_days, rhythm)

    rating = state.s_rating / state.w_rating if state.w_rating > 0 else None
    fast = state.s_rating_fast / state.w_rating_fast if state.w_rating_fast > 0 else None
    trend = (fast - rating) if rating is not None and fast is not None else 0.0
    oldest = min((case[0] for case in state.open_complaints.values()), default=None)
    usual = usual_gap_days(state, rules)
    overdue_ratio = since_last / usual
    # the spread of the gaps only matters past the usual gap (most evaluations follow the
    # customer's own event, at a silence of 0): computed then only
    silence_z = 0.0
    if since_last > usual:
        silence_z = (since_last - usual) / gap_spread(state.recent_days, usual)
    alive = clamp01(alive)
    channels = bin(state.channels_mask).count("1")
    tenure_days = max(0.0, state.last_seen - state.first_seen) / DAY
    parts = involvement_parts(state, channels, tenure_days, rules)
    return Metrics(
        now=now,
        expectation_gap=state.s_gap / state.w_gap if state.w_gap > 0 else 0.0,
        worst_recent_gap=state.worst_gap * decay,
        failed=state.failed * decay,
        met=state.met * decay,
        exceeded=state.exceeded * decay,
        consistency=consistency,
        quality_mean=max(-1.0, min(1.0, q_mean)),
        quality_stddev=q_std,
        met_or_better_share=clamp01(met_share),
        channel_spread=spread,
        streak=run,
        mean_interarrival_days=mean_ia,
        overdue_ratio=overdue_ratio,
        p_alive=alive,
        rating=rating,
        rating_trend=trend,
        open_complaints=len(state.open_complaints),
        oldest_open_complaint_days=max(0.0, (now - oldest) / DAY) if oldest else 0.0,
        silent_failures=silent_failures(state),
        channels=channels,
        promises=state.w_promises * decay,
        broken_promise_rate=clamp01(state.broken / state.w_promises)
        if state.w_promises > 0
        else 0.0,
        consecutive_misses=state.consecutive_misses,
        worst_recent_miss=state.worst_miss * decay,
        mean_miss=clamp01(state.s_miss / state.broken) if state.broken > 0 else 0.0,
        repeat_days=x,
        spend=state.spend,
        silence_z=silence_z,
        lapse=lapse_strength(silence_z, alive, x, rules),
        involvement=involvement_score(parts),
        involvement_parts=parts,
        affinity=affinity_score(state, rating, trend, rules.risk.trend_full),
        revenue_at_risk=yearly_value(state.spend, tenure_days, rules.loyalty.pace_min_days),
        bad_reviews=state.bad_reviews,
        p_leave=leave,
        horizon_days=rules.risk.horizon_days,
        model_version=model.version,
    )


def service_risk(m: Metrics, rules: Rules) -> Score:
    """What purchase models cannot see: broken promises, complaints, failures, ratings. A
    noisy-OR (`scoring.combined`), each weight the most that factor reaches alone, lessened
    by involvement and affinity (`protected`)."""
    r, w = rules.risk, rules.risk.weights
    consecutive = min(1.0, m.consecutive_misses / r.consecutive_full) ** 2
    # a high share of broken promises counts, the more the bigger the misses, but less than
    # a run of them: at most 0.8 of the factor
    rate = clamp01(m.broken_promise_rate / r.broken_rate_full) * (0.4 + 0.4 * m.mean_miss)
    complaints = (
        (
            1.0
            if m.oldest_open_complaint_days > r.complaint_sla_days
            else 0.5 * m.oldest_open_complaint_days / r.complaint_sla_days
        )
        if m.open_complaints
        else 0.0
    )
    detractor = clamp01((0.5 - m.rating) / 0.5) if m.rating is not None else 0.0
    detractor = max(detractor, clamp01(m.bad_reviews * rules.loyalty.bad_review_strength))
    raw = combined(
        SignalKind.about_to_defect,
        [
            (
                "broken_promises",
                m.broken_promise_rate,
                max(consecutive, rate),
                w.broken_promises,
                (
                    "{} broken promises in a row, {:.0%} of recent promises broken, "
                    "worst missed by {:.1f}x the promise",
                    (m.consecutive_misses, m.broken_promise_rate, m.worst_recent_miss),
                ),
            ),
            (
                "open_complaints",
                m.oldest_open_complaint_days,
                complaints,
                w.open_complaints,
                (
                    "{} open, oldest {:.1f} days (SLA {:.0f})",
                    (m.open_complaints, m.oldest_open_complaint_days, r.complaint_sla_days),
                ),
            ),
            (
                "silent_failures",
                m.silent_failures,
                clamp01(m.silent_failures / r.silent_failures_full),
                w.silent_failures,
                ("{} failures with no contact from the customer since", (m.silent_failures,)),
            ),
            (
                "detractor",
                m.rating if m.rating is not None else -1.0,
                detractor,
                w.detractor,
                ("low ratings; {} bad public reviews", (m.bad_reviews,)),
            ),
            (
                "inconsistency",
                m.consistency,
                # nothing judged yet is no evidence (its consistency is a neutral 0.5)
                1.0 - m.consistency if m.failed + m.met + m.exceeded > 0.0 else 0.0,
                w.inconsistency,
                ("consistency {:.2f}", (m.consistency,)),
            ),
            (
                "falling_trend",
                m.rating_trend,
                clamp01(-m.rating_trend / r.trend_full),
                w.falling_trend,
                ("recent ratings below the long-run mean", ()),
            ),
        ],
        None,
    )
    return protected(raw, m, rules)


def risk(m: Metrics, rules: Rules, model: RiskModel) -> Score:
    """About to defect: P(leave) = 1 - (1 - p_leave) * (1 - service), the customer leaves
    on their own rhythm (`Metrics.p_leave`, learned from the business's history) or is
    driven away by the service. Contributions add up to it: `lapse` is p_leave, the service
    factors share (1 - p_leave) * service by their shares of it."""
    service = service_risk(m, rules)
    keep = 1.0 - m.p_leave
    factors = [
        (name, value, keep * part, detail)
        for name, value, part, detail in service.factors
        if keep * part != 0.0  # nothing left to add once the rhythm alone is certain
    ]
    if m.p_leave > 0.0:
        factors.append(
            (
                "lapse",
                m.p_leave,
                m.p_leave,
                (
                    "P(no contact within {:.0f} days) {:.2f} from their rhythm: {} repeat "
                    "visits, silent {:.1f}x their usual gap, P(alive) {:.2f}; {}",
                    (
                        rules.risk.horizon_days,
                        m.p_leave,
                        m.repeat_days,
                        m.overdue_ratio,
                        m.p_alive,
                        model,  # str(model) is its description: made only for a signal
                    ),
                ),
            )
        )
    factors.sort(key=lambda f: -f[2])
    value = clamp01(m.p_leave + keep * service.value)
    return Score(SignalKind.about_to_defect, value, tuple(factors), None, service.value)


def raisable(m: Metrics, score: Score, rules: Rules, model: RiskModel) -> float:
    """The risk a signal is raised on. Where the model's P has been checked at this horizon
    against the business's own history (`RiskModel.recalibration`: past moments whose
    whole horizon was seen), the rhythm's part counts once the customer is late: silent
    past their usual gap. Before that P(leave) can be high, right after a first purchase
    where most buy once, true but no one to call yet. Where it has not (default BG/NBD
    parameters, or a horizon longer than the history has shown whole: an extrapolation),
    the silence must be clearly past the customer's own rhythm (`Metrics.lapse` at
    `risk.min_lapse`): a regular with random gaps has a long one now and then. And a
    customer whose expected loss (P x yearly value) is under `min_loss_share` of the
    business's typical yearly value is not raised by their rhythm alone."""
    r = rules.risk
    checked = model.recalibrated_at(m.horizon_days)
    if not (m.overdue_ratio > 1.0 if checked else m.lapse >= r.min_lapse):
        return score.service
    floor = r.min_loss_share * model.typical_value
    if floor > 0.0 and score.value * m.revenue_at_risk < floor:
        return score.service
    return score.value


def protected(raw: Score, m: Metrics, rules: Rules) -> Score:
    """Involvement and affinity take a share of the risk off (at most their two
    `protection_*` weights together): two reasons with negative contributions, so the
    contributions still add up to the score."""
    loyalty = rules.loyalty
    by_involvement = loyalty.protection_involvement * m.involvement
    by_affinity = loyalty.protection_affinity * clamp01(2.0 * (m.affinity - 0.5))
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
                    "an attached customer: affinity {:.2f} (mean rating {}, trend {:+.2f}, "
                    "{} bad public reviews)",
                    (
                        m.affinity,
                        "none" if m.rating is None else f"{m.rating:.2f}",
                        m.rating_trend,
                        m.bad_reviews,
                    ),
                ),
            )
        )
    return Score(raw.kind, raw.value - taken, tuple(factors), raw.suggested_action)


def _split_account(account: str) -> tuple[str, str, str]:
    """ "metric|channel|team" -> its three parts ("" where missing)."""
    metric, _, rest = account.partition("|")
    channel, _, team = rest.partition("|")
    return metric, channel, team


def _account_text(account: str) -> str:
    """ "metric|channel|team" -> words for a reason's detail."""
    if not account:
        return "none"
    metric, channel, team = _split_account(account)
    where = f"{metric} on {channel}" if channel else metric
    return f"{where} (team {team})" if team else where


def attribution(state: CustomerState) -> Attribution | None:
    """The worst metric, channel and team behind a risk: the account with the most broken
    promises, else the oldest open complaint's."""
    worst = worst_miss_key(state)
    if worst:
        metric, channel, team = _split_account(worst)
        return Attribution(metric=metric, channel=channel, team=team)
    complaint = _complaint_account(state)
    if complaint:
        channel, _, team = complaint.partition("|")
        return Attribution(metric="complaint", channel=channel, team=team)
    return None


def named_reasons(score: Score, state: CustomerState) -> list[Reason]:
    """A risk's reasons, the broken promises and the open complaints named by their metric,
    channel and team: looked up only when a signal is raised, not for every event."""
    reasons = score.reasons
    for i, reason in enumerate(reasons):
        if reason.factor == "broken_promises":
            where = _account_text(worst_miss_key(state) or "")
            reasons[i] = reason.model_copy(
                update={"detail": f"{reason.detail}; most broken: {where}"}
            )
        elif reason.factor == "open_complaints":
            where = _account_text("complaint|" + _complaint_account(state))
            reasons[i] = reason.model_copy(update={"detail": f"{reason.detail}, raised {where}"})
    return reasons


def silence_ceiling(state: CustomerState, now: float, rules: Rules, model: RiskModel) -> float:
    """The highest risk this customer can be raised at by silence alone, from `now` on.

    With no new event only silence and complaint age grow; every other factor is a ratio of
    anchored sums (constant) or shrinks (channel spread). Silence can take P(leave) to 1, so
    only a customer whose expected loss stays under the floor even then, and whose service
    risk with an overdue complaint stays below the threshold, can be skipped by the timer
    until their next event; the outcome is exactly that of checking them every day.
    """
    m = measure(state, now, rules, model)
    worst = replace(m, overdue_ratio=max(m.overdue_ratio, 1e9), oldest_open_complaint_days=1e9)
    service = service_risk(worst, rules).value
    floor = rules.risk.min_loss_share * model.typical_value
    if floor > 0.0 and m.revenue_at_risk < floor:
        return service
    return 1.0


Moment = tuple[float, str, str]  # strength, name, what happened (for the action)
NO_MOMENT: Moment = (0.0, "none", "")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _moment(event: TouchpointEvent, applied: Applied, rules: Rules, m: Metrics) -> Moment:
    """The strongest wow moment of this touchpoint: (strength, name, what happened).
    A promoter rating is an advocacy moment only for a customer ready to advocate:
    involved and attached (`loyalty.advocacy_min_*`); a referral is advocacy itself."""
    w = rules.wow
    candidates: list[Moment] = [NO_MOMENT]
    if applied.resolved_complaint_after is not None:
        days = applied.resolved_complaint_after / DAY
        if days < rules.recovery_sla_days:  # the moment of the resolution is a recovery
            what = f"their complaint was resolved in {days * 24:.0f} hours"
            return (clamp01(1.0 - days / rules.recovery_sla_days), "service_recovery", what)
    if applied.new_purchase_count in w.milestones:
        what = f"their {_ordinal(applied.new_purchase_count)} purchase"
        candidates.append((1.0, "milestone", what))
    assessed = applied.assessment
    loyalty = rules.loyalty
    ready = (
        m.involvement >= loyalty.advocacy_min_involvement
        and m.affinity >= loyalty.advocacy_min_affinity
    )
    if event.kind is Kind.referral:
        candidates.append((1.0, "advocacy", "they referred someone"))
    elif assessed is not None and assessed.promoter and ready:
        candidates.append((1.0, "advocacy", "a promoter rating"))
    if event.value is not None and event.value.amount >= w.high_value_amount:
        what = f"an order of {event.value.amount:,.0f} {event.value.currency}"
        candidates.append((0.7, "high_value", what))
    return max(candidates, key=lambda c: c[0])


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
    m: Metrics, risk_score: float, moment: Moment, rules: Rules, pre_incident: float = -1.0
) -> Score:
    """Consistency first: no wow on top of an erratic service, broken promises, a risk or a
    lapse. A service recovery is judged on the record *before* the incident it recovers."""
    w, weights = rules.wow, rules.wow.weights
    strength, name, what = moment
    consistency = m.consistency
    kept = 1.0 - m.broken_promise_rate if m.promises > 0.5 else 1.0
    if name == "service_recovery" and pre_incident >= 0.0:
        consistency, kept = pre_incident, 1.0
    if (
        consistency < w.min_consistency
        or kept < w.min_promises_kept
        or risk_score > w.max_risk
        or m.lapse > w.max_lapse
    ):
        return Score(SignalKind.wow_opportunity, 0.0, ())
    judged = m.failed + m.met + m.exceeded
    stealable = m.met / judged if judged > 0 else 0.0
    return weighted(
        SignalKind.wow_opportunity,
        [
            (
                "consistent_record",
                consistency,
                clamp01((consistency - w.min_consistency) / (1.0 - w.min_consistency + 1e-9)),
                weights.consistent_record,
                ("consistency {:.2f}, {:.0%} of recent promises kept", (consistency, kept)),
            ),
            ("moment:" + name, strength, strength, weights.moment, (what, ())),
            (
                "stealable",
                stealable,
                stealable,
                weights.stealable,
                ("satisfied (met) rather than already delighted: a competitor could win them", ()),
            ),
        ],
        None,
    )


def snapshot(state: CustomerState, m: Metrics, risk_score: float, wow_score: float) -> Snapshot:
    return Snapshot(
        customer_id=state.customer_id,
        as_of=_dt(m.now),
        event_count=state.event_count,
        first_seen=_dt(state.first_seen),
        last_seen=_dt(state.last_seen),
        expectation_gap=m.expectation_gap,
        worst_recent_gap=m.worst_recent_gap,
        failed=m.failed,
        met=m.met,
        exceeded=m.exceeded,
        consistency=m.consistency,
        quality_mean=m.quality_mean,
        quality_stddev=m.quality_stddev,
        met_or_better_share=m.met_or_better_share,
        channel_spread=m.channel_spread,
        streak=m.streak,
        mean_interarrival_days=m.mean_interarrival_days,
        overdue_ratio=m.overdue_ratio,
        p_alive=m.p_alive,
        rating=m.rating,
        rating_trend=m.rating_trend,
        open_complaints=m.open_complaints,
        oldest_open_complaint_days=m.oldest_open_complaint_days,
        silent_failures=m.silent_failures,
        channels=m.channels,
        feedback_given=state.feedback_given,
        referrals=state.referrals,
        promises=m.promises,
        broken_promise_rate=m.broken_promise_rate,
        consecutive_misses=m.consecutive_misses,
        worst_recent_miss=m.worst_recent_miss,
        lapse=m.lapse,
        spend=m.spend,
        involvement=m.involvement,
        affinity=m.affinity,
        revenue_at_risk=m.revenue_at_risk,
        risk_score=risk_score,
        wow_score=wow_score,
        expected_loss=m.revenue_at_risk * risk_score,
        horizon_days=m.horizon_days,
        risk_model=m.model_version,
    )


@dataclass(slots=True, init=False)
class Evaluation:
    metrics: Metrics
    risk: Score
    wow: Score
    signals: tuple[Signal, ...]

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self, metrics: Metrics, risk: Score, wow: Score, signals: tuple[Signal, ...]
    ) -> None:
        self.metrics, self.risk, self.wow, self.signals = metrics, risk, wow, signals

    def snapshot(self, state: CustomerState) -> Snapshot:
        return snapshot(state, self.metrics, self.risk.value, self.wow.value)


def evaluate(
    state: CustomerState,
    now: float,
    rules: Rules,
    model: RiskModel,
    event: TouchpointEvent | None = None,
    applied: Applied | None = None,
) -> Evaluation:
    """Score the customer at `now` and raise signals (mutates the signal bookkeeping).

    Risk: raised on crossing `raise_at`, re-armed below `clear_below`, with a cooldown.
    Wow: raised by the event's moment itself, once per moment kind per its cooldown and once
    per customer per `budget_days` (recovery excepted). Without an event this is the silence
    check of the event-time timer, which looks for risk only.
    """
    m = measure(state, now, rules, model)
    risk_score = risk(m, rules, model)
    moment = _moment(event, applied, rules, m) if event is not None and applied else NO_MOMENT
    # the service's part, not P(leave): in a business where most buy once, everyone's
    # P(leave) is high, and a steady customer's next moment must still get its wow
    wow_score = wow(m, risk_score.service, moment, rules, state.pre_incident)
    snap: Snapshot | None = None
    signals = []
    raised: list[Score] = []
    signal_state = state.signal_state
    active, last_raised = signal_state.get(SignalKind.about_to_defect.value, [False, None])
    trigger_value = raisable(m, risk_score, rules, model)
    decision = decide(active, last_raised, trigger_value, now, rules.risk.trigger)
    if decision == "clear":
        signal_state[SignalKind.about_to_defect.value] = [False, last_raised]
    elif decision == "raise":
        signal_state[SignalKind.about_to_defect.value] = [True, now]
        raised.append(risk_score)
    if (
        moment[1] != "none"
        and wow_score.value >= rules.wow.raise_at
        and _wow_allowed(signal_state, moment[1], now, rules)
    ):
        signal_state["wow:" + moment[1]] = [False, now]
        signal_state[SignalKind.wow_opportunity.value] = [False, now]
        raised.append(wow_score)
    for score in raised:
        snap = snap or snapshot(state, m, risk_score.value, wow_score.value)
        is_risk = score.kind is SignalKind.about_to_defect
        if is_risk:
            action, team, value = risk_action(score, state, event, rules), None, 0.0
        else:
            value = offer_value(m, model)
            channel = usual_channel(state) or (event.channel.value if event else "")
            action = wow_action(moment, value, channel, rules, model)
            team, value = rules.wow.owner(moment[1]), value * score.value
        version = f"{rules.version}|{model.version}" if is_risk else rules.version
        signals.append(
            Signal(
                signal_id=signal_id(state.customer_id, score.kind, now, version),
                kind=score.kind,
                customer_id=state.customer_id,
                score=score.value,
                severity=severity(score.value + at_stake(m, rules, model))
                if is_risk
                else wow_severity(score.value),
                raised_at=_dt(now),
                trigger="event" if event is not None else "timer",
                trigger_event_id=event.event_id if event is not None else None,
                channel=event.channel.value if event is not None else None,
                reasons=named_reasons(score, state) if is_risk else score.reasons,
                suggested_action=action,
                team=team,
                expected_value=value,
                metrics=snap.model(),
                rules_version=rules.version,
                attribution=attribution(state) if is_risk else None,
                revenue_at_risk=m.revenue_at_risk,
                expected_loss=m.revenue_at_risk * score.value if is_risk else 0.0,
                horizon_days=rules.risk.horizon_days,
                risk_model=model.version,
            )
        )
    return Evaluation(m, risk_score, wow_score, tuple(signals))


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


def risk_action(
    score: Score, state: CustomerState, event: TouchpointEvent | None, rules: Rules
) -> str:
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


def _talk_channel(event: TouchpointEvent | None) -> str:
    if event is None or event.channel.value == "delivery":
        return "their usual channel"
    return event.channel.value


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


def _wow_allowed(signal_state: dict[str, list], moment: str, now: float, rules: Rules) -> bool:
    """The moment's own cooldown, then the customer's wow budget (recovery is exempt)."""
    w = rules.wow
    last_moment = signal_state.get("wow:" + moment, [False, None])[1]
    cooldown = w.moment_cooldown_days.get(moment, w.budget_days) * DAY
    if last_moment is not None and now - last_moment < cooldown:
        return False
    if moment == "service_recovery":
        return True
    last_any = signal_state.get(SignalKind.wow_opportunity.value, [False, None])[1]
    return last_any is None or now - last_any >= w.budget_days * DAY
