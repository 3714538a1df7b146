"""A customer's metrics at one moment of event time: consistency, the promise record,
rhythm and the learned probability of no contact, involvement, affinity, value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from touchstream.streams.bgnbd import p_alive
from touchstream.streams.churn import PRIOR_GAPS, RiskModel, gap_spread
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.params import DAY, ScoringParams
from touchstream.streams.rules import Rules
from touchstream.streams.scoring import clamp01
from touchstream.streams.state import channel_spread, decay_to, silent_failures, streak


def as_datetime(ts: float) -> datetime:
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
    silent_days: float  # since the last active day
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
        silent_days: float = 0.0,
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
        self.silent_days = silent_days
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


def usual_gap_days(state: CustomerState, p: ScoringParams) -> float:
    """Expected days between contacts: the customer's own mean, shrunk towards the default.

    Two early contacts a day apart must not make a week of quiet look like desertion.
    """
    x = max(0, state.active_days - 1)
    span = float(state.last_active_day - state.first_active_day)
    prior = p.default_interarrival_days
    return max(1.0, (span + PRIOR_GAPS * prior) / (x + PRIOR_GAPS))


def lapse_strength(silence_z: float, p_alive: float, repeat_days: int, p: ScoringParams) -> float:
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
    overdue = clamp01((silence_z - p.lapse_from) / (p.lapse_full - p.lapse_from))
    if overdue <= 0.0:
        return 0.0
    model = 1.0 - p_alive if repeat_days > 0 else 1.0
    return clamp01(overdue * model)


def involvement_parts(
    state: CustomerState, channels: int, tenure_days: float, p: ScoringParams
) -> tuple[float, ...]:
    """Each component's reach (weight x strength), in INVOLVEMENT_PARTS order: feedback given
    (more when it was answered), channels used, tenure, spend, referrals."""
    given = state.feedback_given
    answered = min(1.0, state.feedback_answered / given) if given else 0.0
    return (
        p.feedback_reach * min(1.0, given / p.feedback_full) * (0.6 + 0.4 * answered),
        p.channels_reach * clamp01((channels - 1) / p.channels_past_first_full),
        p.tenure_reach * clamp01(tenure_days / p.tenure_full_days),
        p.spend_reach * clamp01(state.spend / p.spend_full),
        p.referrals_reach * clamp01(state.referrals / p.referrals_full),
    )


INVOLVEMENT_PARTS: Final = (
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


def _bits(mask: int) -> int:
    """Set bits (channels used): bin().count() is two generic calls."""
    count = 0
    while mask:
        count += mask & 1
        mask >>= 1
    return count


def measure(state: CustomerState, now: float, rules: Rules, model: RiskModel) -> Metrics:
    p = rules.scoring
    h = p.half_life_days * DAY
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
            p.steadiness * (1.0 - min(1.0, q_std / p.stddev_full))
            + p.met_share * met_share
            + p.channel_uniformity * (1.0 - min(1.0, spread / p.spread_full))
            + p.streak * min(1.0, run / p.streak_full)
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
        leave = model.p_no_contact(x, t_x, age, p.horizon_days, rhythm)

    rating = state.s_rating / state.w_rating if state.w_rating > 0 else None
    fast = state.s_rating_fast / state.w_rating_fast if state.w_rating_fast > 0 else None
    trend = (fast - rating) if rating is not None and fast is not None else 0.0
    oldest = math.inf  # none open
    for case in state.open_complaints.values():
        oldest = min(oldest, case[0])
    usual = usual_gap_days(state, p)
    overdue_ratio = since_last / usual
    # the spread of the gaps only matters past the usual gap (most evaluations follow the
    # customer's own event, at a silence of 0): computed then only
    silence_z = 0.0
    if since_last > usual:
        silence_z = (since_last - usual) / gap_spread(state.recent_days, usual)
    alive = clamp01(alive)
    channels = _bits(state.channels_mask)
    tenure_days = max(0.0, state.last_seen - state.first_seen) / DAY
    parts = involvement_parts(state, channels, tenure_days, p)
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
        silent_days=since_last,
        p_alive=alive,
        rating=rating,
        rating_trend=trend,
        open_complaints=len(state.open_complaints),
        oldest_open_complaint_days=max(0.0, (now - oldest) / DAY)
        if oldest != math.inf and oldest
        else 0.0,
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
        lapse=lapse_strength(silence_z, alive, x, p),
        involvement=involvement_score(parts),
        involvement_parts=parts,
        affinity=affinity_score(state, rating, trend, p.trend_full),
        revenue_at_risk=yearly_value(state.spend, tenure_days, p.pace_min_days),
        bad_reviews=state.bad_reviews,
        p_leave=leave,
        horizon_days=p.horizon_days,
        model_version=model.version,
    )
