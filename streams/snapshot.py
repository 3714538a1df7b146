"""The metrics snapshot of a customer, as the engine writes it."""

from __future__ import annotations

from touchstream.schemas.signal import Snapshot
from touchstream.streams.measure import Metrics, as_datetime
from touchstream.streams.state import CustomerState


def snapshot(state: CustomerState, m: Metrics, risk_score: float, wow_score: float) -> Snapshot:
    return Snapshot(
        customer_id=state.customer_id,
        as_of=as_datetime(m.now),
        event_count=state.event_count,
        first_seen=as_datetime(state.first_seen),
        last_seen=as_datetime(state.last_seen),
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
