"""Planted customer stories shared by the pure engine tests and the live-worker tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from touchstream.generator import delivery_expectation

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SLIPPER = "slipper"
RECOVERED = "recovered"
ERRATIC = "erratic"
STEADY = "steady"
BACKGROUND = [f"bg-{i:02d}" for i in range(16)]  # keep event time moving on every partition
DAYS = 120


def _event(customer: str, day: float, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"{customer}-{n:04d}",
        "customer_id": customer,
        "occurred_at": (T0 + timedelta(days=day)).isoformat(),
        "channel": fields.pop("channel", "web"),
        "kind": fields.pop("kind", "purchase"),
        "source": "scenario",
        **fields,
    }


def _delivery(promised: float, actual: float) -> list[dict[str, Any]]:
    return [delivery_expectation(promised, actual)]


def story() -> list[dict[str, Any]]:
    """All events, sorted by event time."""
    events: list[dict[str, Any]] = []

    def add(customer: str, day: float, **fields: Any) -> None:
        events.append(
            _event(customer, day, sum(e["customer_id"] == customer for e in events), **fields)
        )

    for day in range(0, 40, 5):  # good start
        add(SLIPPER, day, outcome="success")
        add(SLIPPER, day + 2, channel="delivery", kind="delivery", expectations=_delivery(2, 2))
    for day in range(40, 60, 5):  # deliveries slip by three days...
        add(SLIPPER, day, outcome="success")
        add(SLIPPER, day + 4, channel="delivery", kind="delivery", expectations=_delivery(1, 4))
    # ...and then the customer says nothing at all.

    for day in range(0, 56, 7):  # consistent record
        add(RECOVERED, day, channel="app", outcome="success")
        add(RECOVERED, day + 1, channel="delivery", kind="delivery", expectations=_delivery(2, 2))
    add(RECOVERED, 57, channel="phone", kind="complaint", case_id="case-1", sentiment=-0.7)
    add(
        RECOVERED,
        57.25,
        channel="chat",
        kind="complaint_resolved",
        case_id="case-1",
        outcome="success",
    )

    for i, day in enumerate(range(0, 80, 2)):  # same mean quality 0.4, different spread
        channel = ["web", "phone"][i % 2]
        add(ERRATIC, day, channel=channel, kind="inquiry", sentiment=0.9 if i % 2 else -0.1)
        add(STEADY, day, channel=channel, kind="inquiry", sentiment=0.4)

    for index, customer in enumerate(BACKGROUND):
        for day in range(index % 3, DAYS, 3):
            add(customer, day + 0.5, channel="app", kind="visit")
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return events
