"""From a customer's state to metrics, scores and signals, at one moment of event time."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from touchstream.schemas import Kind, Signal, SignalKind, TouchpointEvent
from touchstream.schemas.signal import Snapshot
from touchstream.streams.bgnbd import BGNBDParams, p_alive
from touchstream.streams.rules import Rules
from touchstream.streams.scoring import Score, clamp01, decide, severity, signal_id, weighted
from touchstream.streams.state import (
    DAY,
    Applied,
    CustomerState,
    channel_spread,
    decay_to,
    silent_failures,
    streak,
)

CONSISTENCY_WEIGHTS = {
    "steadiness": 0.35,
    "met_share": 0.35,
    "channel_uniformity": 0.2,
    "streak": 0.1,
}
_STEADINESS, _MET_SHARE, _UNIFORMITY, _STREAK = (
    CONSISTENCY_WEIGHTS[k] for k in ("steadiness", "met_share", "channel_uniformity", "streak")
)
STDDEV_FULL = 0.6  # quality stddev at which steadiness is 0
SPREAD_FULL = 0.5  # channel spread at which uniformity is 0
STREAK_FULL = 5


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


PRIOR_GAPS = 2.0  # pseudo-observations of the population's usual gap between contacts


def usual_gap_days(state: CustomerState, rules: Rules) -> float:
    """Expected days between contacts: the customer's own mean, shrunk towards the default.

    Two early contacts a day apart must not make a week of quiet look like desertion.
    """
    x = max(0, state.active_days - 1)
    span = float(state.last_active_day - state.first_active_day)
    prior = rules.default_interarrival_days
    return max(1.0, (span + PRIOR_GAPS * prior) / (x + PRIOR_GAPS))


def measure(state: CustomerState, now: float, rules: Rules, population: BGNBDParams) -> Metrics:
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
        consistency = clamp01(
            _STEADINESS * (1.0 - min(1.0, q_std / STDDEV_FULL))
            + _MET_SHARE * met_share
            + _UNIFORMITY * (1.0 - min(1.0, spread / SPREAD_FULL))
            + _STREAK * min(1.0, run / STREAK_FULL)
        )
    else:
        consistency = 0.5  # nothing judged yet: neither steady nor erratic

    x = max(0, state.active_days - 1)
    t_x = float(state.last_active_day - state.first_active_day)
    age = max(t_x, now / DAY - state.first_active_day) if state.active_days else 0.0
    mean_ia = t_x / x if x > 0 else None
    since_last = max(0.0, now - (state.last_active or state.last_seen)) / DAY
    alive = p_alive(x, t_x, age, population) if state.active_days else 1.0

    rating = state.s_rating / state.w_rating if state.w_rating > 0 else None
    fast = state.s_rating_fast / state.w_rating_fast if state.w_rating_fast > 0 else None
    trend = (fast - rating) if rating is not None and fast is not None else 0.0
    oldest = min((case[0] for case in state.open_complaints.values()), default=None)
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
        overdue_ratio=since_last / usual_gap_days(state, rules),
        p_alive=clamp01(alive),
        rating=rating,
        rating_trend=trend,
        open_complaints=len(state.open_complaints),
        oldest_open_complaint_days=max(0.0, (now - oldest) / DAY) if oldest else 0.0,
        silent_failures=silent_failures(state),
        channels=bin(state.channels_mask).count("1"),
    )


def risk(m: Metrics, rules: Rules) -> Score:
    r, w = rules.risk, rules.risk.weights
    overdue = clamp01((m.overdue_ratio - 1.0) / (r.overdue_full - 1.0))
    silence = max(overdue, 1.0 - m.p_alive)
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
    return weighted(
        SignalKind.about_to_defect,
        [
            (
                "silence",
                m.overdue_ratio,
                silence,
                w.silence,
                (
                    "{:.1f}x the usual gap between contacts, P(alive) {:.2f}",
                    (m.overdue_ratio, m.p_alive),
                ),
            ),
            (
                "expectation_gap",
                m.expectation_gap,
                clamp01(-m.expectation_gap / r.gap_full),
                w.expectation_gap,
                ("promises missed by {:.1f} tolerances on average", (-m.expectation_gap,)),
            ),
            (
                "inconsistency",
                m.consistency,
                1.0 - m.consistency,
                w.inconsistency,
                ("consistency {:.2f}", (m.consistency,)),
            ),
            (
                "silent_failures",
                m.silent_failures,
                clamp01(m.silent_failures / r.silent_failures_full),
                w.silent_failures,
                ("{} failures with no contact from the customer since", (m.silent_failures,)),
            ),
            (
                "open_complaints",
                m.oldest_open_complaint_days,
                complaints,
                w.open_complaints,
                ("{} open, oldest {:.1f} days", (m.open_complaints, m.oldest_open_complaint_days)),
            ),
            (
                "detractor",
                m.rating if m.rating is not None else -1.0,
                detractor,
                w.detractor,
                ("low ratings", ()),
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


def silence_ceiling(
    state: CustomerState, now: float, rules: Rules, population: BGNBDParams
) -> float:
    """The highest risk this customer can reach by silence alone, from `now` on.

    With no new event only silence and complaint age grow; every other factor is a ratio of
    anchored sums (constant) or shrinks (channel spread). So if even full silence and an
    overdue complaint stay below the threshold, the timer can skip the customer until their
    next event, and the outcome is exactly the same as checking them every day.
    """
    m = measure(state, now, rules, population)
    worst = replace(
        m, overdue_ratio=max(m.overdue_ratio, 1e9), p_alive=0.0, oldest_open_complaint_days=1e9
    )
    return risk(worst, rules).value


RECOVERY = "service-recovery gesture: personal thank-you call and a goodwill credit"
MILESTONE = "milestone surprise: hand-written note and an unexpected upgrade"
ADVOCACY = "advocacy invite: referral programme or a public review request"
HIGH_VALUE = "VIP touch: priority service on the next order"


def _moment(event: TouchpointEvent, applied: Applied, rules: Rules) -> tuple[float, str, str]:
    """The strongest wow moment of this touchpoint: (strength, name, suggested action)."""
    w = rules.wow
    candidates: list[tuple[float, str, str]] = [(0.0, "none", "")]
    if applied.resolved_complaint_after is not None:
        days = applied.resolved_complaint_after / DAY
        candidates.append(
            (clamp01(1.0 - days / rules.recovery_sla_days), "service_recovery", RECOVERY)
        )
    if applied.new_purchase_count in w.milestones:
        candidates.append((1.0, "milestone", MILESTONE))
    assessed = applied.assessment
    if (assessed is not None and assessed.promoter) or event.kind is Kind.referral:
        candidates.append((1.0, "advocacy", ADVOCACY))
    if event.value is not None and event.value.amount >= w.high_value_amount:
        candidates.append((0.7, "high_value", HIGH_VALUE))
    return max(candidates, key=lambda c: c[0])


def wow(
    m: Metrics,
    risk_score: float,
    event: TouchpointEvent | None,
    applied: Applied | None,
    rules: Rules,
) -> Score:
    """Consistency first: below `min_consistency` or above `max_risk` there is no wow."""
    w, weights = rules.wow, rules.wow.weights
    if m.consistency < w.min_consistency or risk_score > w.max_risk:
        return Score(SignalKind.wow_opportunity, 0.0, ())
    strength, name, action = (0.0, "none", "")
    if event is not None and applied is not None:
        strength, name, action = _moment(event, applied, rules)
    judged = m.failed + m.met + m.exceeded
    stealable = m.met / judged if judged > 0 else 0.0
    return weighted(
        SignalKind.wow_opportunity,
        [
            (
                "consistent_record",
                m.consistency,
                clamp01((m.consistency - w.min_consistency) / (1.0 - w.min_consistency + 1e-9)),
                weights.consistent_record,
                ("consistency {:.2f}", (m.consistency,)),
            ),
            ("moment:" + name, strength, strength, weights.moment, (action, ())),
            (
                "stealable",
                stealable,
                stealable,
                weights.stealable,
                ("satisfied (met) rather than already delighted: a competitor could win them", ()),
            ),
        ],
        action or None,
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
        risk_score=risk_score,
        wow_score=wow_score,
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
    population: BGNBDParams,
    event: TouchpointEvent | None = None,
    applied: Applied | None = None,
) -> Evaluation:
    """Score the customer at `now` and raise signals on transitions (mutates signal state).

    Without an event this is the silence check of the event-time timer.
    """
    m = measure(state, now, rules, population)
    risk_score = risk(m, rules)
    wow_score = wow(m, risk_score.value, event, applied, rules)
    snap: Snapshot | None = None
    signals = []
    for score, trigger in ((risk_score, rules.risk.trigger), (wow_score, rules.wow.trigger)):
        if event is None and score.kind is SignalKind.wow_opportunity:
            continue  # wow needs a moment; the timer only looks for silence
        active, last_raised = state.signal_state.get(score.kind.value, [False, None])
        cooling_from = last_raised
        if score.suggested_action == RECOVERY and rules.wow.recovery_ignores_cooldown:
            cooling_from = None
        decision = decide(active, cooling_from, score.value, now, trigger)
        if decision == "clear":
            state.signal_state[score.kind.value] = [False, last_raised]
        elif decision == "raise":
            state.signal_state[score.kind.value] = [True, now]
            snap = snap or snapshot(state, m, risk_score.value, wow_score.value)
            signals.append(
                Signal(
                    signal_id=signal_id(state.customer_id, score.kind, now, rules.version),
                    kind=score.kind,
                    customer_id=state.customer_id,
                    score=score.value,
                    severity=severity(score.value),
                    raised_at=_dt(now),
                    trigger="event" if event is not None else "timer",
                    trigger_event_id=event.event_id if event is not None else None,
                    channel=event.channel.value if event is not None else None,
                    reasons=score.reasons,
                    suggested_action=score.suggested_action,
                    metrics=snap.model(),
                    rules_version=rules.version,
                )
            )
    return Evaluation(m, risk_score, wow_score, tuple(signals))
