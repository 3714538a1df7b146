"""Hand-made customer histories, one per case a customer-success manager judges signals by.

Each builds plain event dicts (the wire format), so the same history runs through the
replay (unit tests) and through a real worker (end-to-end tests).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from touchstream.generator import delivery_expectation, response_expectation

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class History:
    def __init__(self, customer: str) -> None:
        self.customer = customer
        self.events: list[dict[str, Any]] = []

    def add(self, day: float, kind: str = "purchase", channel: str = "web", **fields: Any) -> str:
        event_id = f"{self.customer}-{len(self.events):04d}"
        self.events.append(
            {
                "event_id": event_id,
                "customer_id": self.customer,
                "occurred_at": (T0 + timedelta(days=day)).isoformat(),
                "channel": channel,
                "kind": kind,
                "source": "history",
                **fields,
            }
        )
        return event_id

    def order(self, day: float, promised: float, actual: float, amount: float = 40.0) -> str:
        """A purchase, then its delivery `actual` days later against `promised`."""
        self.add(day, value={"amount": amount, "currency": "EUR"}, outcome="success")
        return self.add(
            day + actual,
            kind="delivery",
            channel="delivery",
            expectations=[delivery_expectation(promised, actual)],
        )

    @property
    def last_day(self) -> float:
        last = max(datetime.fromisoformat(e["occurred_at"]) for e in self.events)
        return (last - T0).total_seconds() / 86_400


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)


def steady_then_silent() -> History:
    """12 weeks of weekly purchases, every delivery as promised, then nothing."""
    h = History("lapser")
    for week in range(12):
        h.order(7 * week, promised=2, actual=2)
    return h


def unresolved_complaint() -> History:
    """A regular customer complains, and the complaint is never resolved."""
    h = History("unheard")
    for week in range(6):
        h.order(7 * week, promised=2, actual=2)
    h.add(43, kind="complaint", channel="phone", case_id="case-9", sentiment=-0.6)
    for week in range(7, 9):  # still buying for a while
        h.order(7 * week, promised=2, actual=2)
    return h


def three_late_deliveries() -> tuple[History, list[str]]:
    """Good deliveries, then three in a row three days late, then silence."""
    h = History("slipping")
    for week in range(6):
        h.order(7 * week, promised=2, actual=2)
    late = [h.order(7 * week, promised=2, actual=5) for week in range(6, 9)]
    return h, late


def miss_of(promised: float, actual: float, customer: str) -> History:
    h = History(customer)
    for week in range(4):
        h.order(7 * week, promised=2, actual=2)
    h.order(28, promised=promised, actual=actual)
    return h


def always_early_then(actual: float, customer: str) -> History:
    """Always early (a pleasant surprise each time), then a delivery promised in 2 days that
    takes `actual` days."""
    h = History(customer)
    for week in range(10):
        h.order(7 * week, promised=4, actual=1)
    h.order(70, promised=2, actual=actual)
    return h


def early_then_late() -> History:
    return always_early_then(4, "spoiled")


def early_then_on_time() -> History:
    return always_early_then(2, "on-time")


def steady_every_promise_met(weeks: int = 30) -> History:
    h = History("steady")
    for week in range(weeks):
        h.order(7 * week, promised=2, actual=2)
    return h


def erratic_deliveries(weeks: int = 14) -> History:
    """Half the deliveries two days late, half two days early: the same mean, no consistency."""
    h = History("erratic")
    for week in range(weeks):
        h.order(7 * week, promised=3, actual=5 if week % 2 else 1)
    return h


def fast_complaint_fix() -> tuple[History, str]:
    """A consistent record, one bad delivery and a complaint, fixed in five hours, CSAT 5."""
    h = History("recovered")
    for week in range(8):
        h.order(7 * week, promised=2, actual=2)
    h.order(56, promised=2, actual=4)  # delivered on day 60
    h.add(60.1, kind="complaint", channel="phone", case_id="case-1", sentiment=-0.8)
    fixed = h.add(
        60.1 + 5 / 24,
        kind="complaint_resolved",
        channel="phone",
        case_id="case-1",
        outcome="success",
        rating={"scale": "csat_5", "value": 5},
    )
    return h, fixed


def phone_fails_chat_excels(customer: str = "caller") -> History:
    """Chat answers in minutes, three weeks running; then the phone line, three times, an
    hour and a half for a promised half hour."""
    h = History(customer)
    for week in range(6):
        h.add(7 * week, value={"amount": 60.0, "currency": "EUR"}, outcome="success")
    for week in range(6):
        channel, minutes = ("chat", 3) if week < 3 else ("phone", 90)
        expectations = [response_expectation(30, minutes)]
        h.add(
            7 * week + 1, "inquiry", channel, expectations=expectations, team=f"support-{channel}"
        )
    return h


def one_failure(customer: str, involved: bool) -> History:
    """Ten weeks of good orders, then one delivery five days late. The involved customer also
    answered surveys (and was answered), used four channels and referred two friends."""
    h = History(customer)
    for week in range(10):
        h.order(7 * week, promised=2, actual=2, amount=80.0)
        if involved and week % 2 == 0:
            h.add(7 * week + 3, "survey", "email", rating={"scale": "csat_5", "value": 5})
            h.add(7 * week + 4, "notification", "email", case_id=f"{customer}-fb{week}")
    if involved:
        h.add(20, "inquiry", "chat")
        h.add(30, "visit", "store")
        h.add(40, "referral", "social")
        h.add(50, "referral", "social")
    h.order(70, promised=2, actual=7, amount=80.0)
    h.events.sort(key=lambda e: e["occurred_at"])
    return h


def deliveries_by_team(customers: int, late_share: float, weeks: int = 4) -> list[History]:
    """`customers` weekly orders delivered by one courier team; in the third week
    `late_share` of the customers get theirs three days late."""
    late_from = int(customers * (1.0 - late_share))
    stories = []
    for i in range(customers):
        h = History(f"team-{i:03d}")
        for week in range(weeks):
            late = week == 2 and i >= late_from
            h.add(7 * week, value={"amount": 40.0, "currency": "EUR"}, outcome="success")
            h.add(
                7 * week + 2 + i / 1000,  # one after the other, not all at one instant
                "delivery",
                "delivery",
                expectations=[delivery_expectation(2, 5 if late else 2)],
                team="courier-west",
            )
        stories.append(h)
    return stories


IDENTITY_SECRET = "identity-secret-for-tests-0123"


def one_person_on_three_channels() -> list[dict[str, Any]]:
    """Ana by e-mail on the web, by phone at the call centre, by loyalty card in the store;
    a login (phone + e-mail) and a card payment by phone link the three. Then a placeholder
    device that names no one, and someone else named by customer_id only. Phone numbers
    without a country code are read in region DE."""

    def event(n: int, day: float, identifiers: list[dict], **fields: Any) -> dict[str, Any]:
        return {
            "event_id": f"id-{n}",
            "occurred_at": (T0 + timedelta(days=day)).isoformat(),
            "channel": fields.pop("channel", "web"),
            "kind": fields.pop("kind", "purchase"),
            "identifiers": identifiers,
            **fields,
        }

    email = {"type": "email", "value": "  Ana.Silva@Example.com"}
    phone = {"type": "phone", "value": "0171 234 5678"}
    card = {"type": "loyalty_card", "value": "4711 0815"}
    return [
        event(1, 0, [email], value={"amount": 40, "currency": "EUR"}),
        event(2, 1, [phone], channel="phone", kind="inquiry"),
        event(3, 2, [card], channel="store", value={"amount": 12, "currency": "EUR"}),
        event(4, 3, [phone, {"type": "email", "value": "ana.silva@example.com"}], kind="visit"),
        event(5, 4, [card, {"type": "phone", "value": "+49 171 2345678"}], channel="store"),
        event(6, 5, [{"type": "device", "value": "undefined"}]),  # a placeholder: no one
        {**event(7, 5, []), "customer_id": "someone-else"},  # straight to the touchpoints
    ]
