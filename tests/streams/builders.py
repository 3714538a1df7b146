"""Compact constructors for touchpoints in domain tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from touchstream.generator import delivery_expectation
from touchstream.schemas import TouchpointEvent

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
_ids = itertools.count()


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def touch(customer: str = "c1", day: float = 0.0, **fields: Any) -> TouchpointEvent:
    data: dict[str, Any] = {
        "event_id": fields.pop("event_id", f"e{next(_ids)}"),
        "customer_id": customer,
        "occurred_at": at(day),
        "channel": fields.pop("channel", "web"),
        "kind": fields.pop("kind", "purchase"),
        **fields,
    }
    # domain tests live in event time: years of history may lie "ahead" of today's clock
    return TouchpointEvent.model_validate(data, context={"now": FAR_FUTURE})


def delivery(customer: str, day: float, promised: float, actual: float, **fields: Any):
    fields.setdefault("channel", "delivery")
    return touch(
        customer,
        day,
        kind="delivery",
        expectations=[delivery_expectation(promised, actual)],
        **fields,
    )
