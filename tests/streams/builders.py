"""Compact constructors for touchpoints in domain tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from touchstream.generator import delivery_expectation
from touchstream.schemas import TouchpointEvent
from touchstream.schemas.decoder import Touchpoint

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
_ids = itertools.count()


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def event_of(data: dict[str, Any], now: datetime = FAR_FUTURE) -> Touchpoint:
    """A touchpoint from its JSON form, validated by the reference model (domain tests live in
    event time: years of history may lie "ahead" of today's clock)."""
    return Touchpoint.from_event(TouchpointEvent.model_validate(data, context={"now": now}))


def touch(customer: str = "c1", day: float = 0.0, **fields: Any) -> Touchpoint:
    data: dict[str, Any] = {
        "event_id": fields.pop("event_id", f"e{next(_ids)}"),
        "customer_id": customer,
        "occurred_at": at(day),
        "channel": fields.pop("channel", "web"),
        "kind": fields.pop("kind", "purchase"),
        **fields,
    }
    return event_of(data)


def delivery(customer: str, day: float, promised: float, actual: float, **fields: Any):
    fields.setdefault("channel", "delivery")
    return touch(
        customer,
        day,
        kind="delivery",
        expectations=[delivery_expectation(promised, actual)],
        **fields,
    )
