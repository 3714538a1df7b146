"""Valid touchpoints to start tests from; override what a test is about."""

from __future__ import annotations

from typing import Any


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
