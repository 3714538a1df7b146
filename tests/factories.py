"""Valid touchpoints to start tests from; override what a test is about."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from touchstream.schemas import MetricsSnapshot


def event_dict(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "evt-1",
        "customer_id": "cust-1",
        "occurred_at": "2026-03-01T10:00:00+01:00",
        "channel": "delivery",
        "kind": "delivery",
        "expectations": [
            {
                "metric": "delivery_days",
                "unit": "days",
                "promised": 2,
                "actual": 3,
                "direction": "lower_is_better",
            }
        ],
        "rating": {"scale": "csat_5", "value": 4},
        "outcome": "success",
        "sentiment": 0.2,
        "value": {"amount": 49.9, "currency": "EUR"},
        "source": "tests",
        "attributes": {"region": "north", "vip": True, "items": 3},
    }
    event.update(overrides)
    return event


def snapshot(customer_id: str, as_of: datetime, **overrides: Any) -> MetricsSnapshot:
    """A plausible at-risk customer's metrics; override what a test is about."""
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "as_of": as_of,
        "event_count": 3,
        "first_seen": as_of - timedelta(days=30),
        "last_seen": as_of,
        "expectation_gap": -1.5,
        "worst_recent_gap": -4.0,
        "failed": 1.2,
        "met": 0.8,
        "exceeded": 0.0,
        "consistency": 0.4,
        "quality_mean": -0.2,
        "quality_stddev": 0.5,
        "met_or_better_share": 0.4,
        "channel_spread": 0.3,
        "streak": 0,
        "mean_interarrival_days": 7.5,
        "overdue_ratio": 1.1,
        "p_alive": 0.8,
        "rating": 0.25,
        "rating_trend": -0.1,
        "open_complaints": 1,
        "oldest_open_complaint_days": 2.0,
        "silent_failures": 1,
        "channels": 2,
        "feedback_given": 1,
        "referrals": 0,
        "risk_score": 0.7,
        "wow_score": 0.0,
        **overrides,
    }
    return MetricsSnapshot(**values)
