"""Realistic, reproducible multi-channel traffic with planted customer cohorts.

Used by the demo, the benchmark and the tests. The same seed gives the same events, byte for
byte, so planted cohorts can be checked against the signals the rules raise.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COHORTS = ("steady", "slipping_then_silent", "erratic", "recovery", "promoter")
DEFAULT_MIX = {
    "steady": 0.6,
    "slipping_then_silent": 0.1,
    "erratic": 0.1,
    "recovery": 0.1,
    "promoter": 0.1,
}
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    cohort: str
    cadence_days: float  # mean days between purchases


def plant_customers(count: int, seed: int, mix: dict[str, float] | None = None) -> list[Customer]:
    rng = random.Random(f"customers-{seed}")
    weights = mix or DEFAULT_MIX
    names = list(weights)
    cumulative = [sum(list(weights.values())[: i + 1]) for i in range(len(names))]
    customers = []
    for index in range(count):
        # deterministic proportions: spread cohorts evenly, then shuffle cadence
        share = (index + 0.5) / count * cumulative[-1]
        cohort = next(name for name, edge in zip(names, cumulative, strict=True) if share <= edge)
        customers.append(Customer(f"c{seed}-{index:06d}", cohort, rng.uniform(6.0, 14.0)))
    rng.shuffle(customers)
    return customers


def delivery_expectation(promised: float, actual: float) -> dict[str, Any]:
    """A delivery promise in days, on time within half a day."""
    return {
        "metric": "delivery_days",
        "unit": "days",
        "promised": promised,
        "actual": actual,
        "direction": "lower_is_better",
        "tolerance": {"kind": "absolute", "value": 0.5},
    }


def response_expectation(promised_min: float, actual_min: float) -> dict[str, Any]:
    """A response-time promise in minutes, on time within 15."""
    return {
        "metric": "response_minutes",
        "unit": "minutes",
        "promised": promised_min,
        "actual": actual_min,
        "direction": "lower_is_better",
        "tolerance": {"kind": "absolute", "value": 15},
    }


REGIONS = ("north", "south", "east")
# who delivers what (the organisation's view): couriers by region, support by channel
SUPPORT_TEAMS = {"phone": "support-phone", "chat": "support-chat", "web": "support-web"}


class _CustomerStory:
    """Writes one customer's events; each cohort changes a few dials of the same story."""

    def __init__(self, customer: Customer, start: datetime, end: datetime, seed: int) -> None:
        self.c = customer
        # from the id, not the generator's random stream: the events of a seed stay the same
        self.region = REGIONS[zlib.crc32(customer.customer_id.encode()) % len(REGIONS)]
        self.agent = f"agent-{zlib.crc32(customer.customer_id.encode()) % 17:02d}"
        self.start = start
        self.end = end
        self.rng = random.Random(f"{seed}-{customer.customer_id}")
        self.events: list[dict[str, Any]] = []

    def add(self, at: datetime, channel: str, kind: str, **fields: Any) -> None:
        number = len(self.events)
        self.events.append(
            {
                "event_id": f"{self.c.customer_id}-{number:04d}",
                "customer_id": self.c.customer_id,
                "occurred_at": at.isoformat().replace("+00:00", "Z"),
                "channel": channel,
                "kind": kind,
                "source": "generator",
                **{k: v for k, v in fields.items() if v is not None},
            }
        )

    def late_days(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        progress = (at - self.start).total_seconds() / span
        cohort = self.c.cohort
        if cohort == "slipping_then_silent" and progress > 0.3:
            return self.rng.uniform(2.0, 5.0)
        return self.rng.choice([0.0, 0.0, 0.0, -0.5, 0.25])

    def silent_from(self) -> datetime:
        if self.c.cohort == "slipping_then_silent":
            return self.start + (self.end - self.start) * 0.55
        return self.end

    def write(self) -> list[dict[str, Any]]:
        rng, cohort = self.rng, self.c.cohort
        at = self.start + timedelta(days=rng.uniform(0, self.c.cadence_days))
        stop = self.silent_from()
        purchases = 0
        complained = False
        while at < stop:
            purchases += 1
            channel = rng.choice(
                ["web", "app", "store"] if cohort != "erratic" else ["web", "phone"]
            )
            amount = round(rng.uniform(20, 250), 2)
            self.add(
                at,
                channel,
                "purchase",
                value={"amount": amount, "currency": "EUR"},
                outcome="success",
                site=f"store-{self.region}" if channel == "store" else None,
            )
            promised = rng.choice([1.0, 2.0, 3.0])
            late = self.late_days(at)
            delivered = at + timedelta(days=promised + late)
            if delivered < stop:
                self.add(
                    delivered,
                    "delivery",
                    "delivery",
                    expectations=[delivery_expectation(promised, max(0.0, promised + late))],
                    outcome="success" if late <= 0.5 else "partial",
                    team=f"courier-{self.region}",
                )
            if cohort == "erratic" and rng.random() < 0.7:
                # same company, two experiences: fast on the web, slow on the phone
                wait = rng.uniform(55.0, 80.0) if channel == "phone" else rng.uniform(2.0, 8.0)
                self.add(
                    at + timedelta(hours=2),
                    channel,
                    "inquiry",
                    expectations=[response_expectation(30.0, wait)],
                    outcome="success" if wait < 45 else "failure",
                    team=SUPPORT_TEAMS.get(channel, "support-web"),
                    agent=self.agent,
                )
            if rng.random() < 0.25 and delivered < stop:
                score = self._survey_score(late)
                self.add(
                    delivered + timedelta(days=1),
                    "email",
                    "survey",
                    rating={"scale": "csat_5", "value": score},
                )
            if cohort == "recovery" and not complained and purchases >= 4:
                complained = True
                opened = at + timedelta(days=1)
                case = f"case-{self.c.customer_id}"
                self.add(
                    opened,
                    "phone",
                    "complaint",
                    case_id=case,
                    sentiment=-0.6,
                    team="support-phone",
                    agent=self.agent,
                )
                resolved = opened + timedelta(hours=rng.uniform(2, 20))
                self.add(
                    resolved,
                    "chat",
                    "complaint_resolved",
                    case_id=case,
                    outcome="success",
                    expectations=[
                        response_expectation(24 * 60.0, (resolved - opened).total_seconds() / 60)
                    ],
                    team="care-chat",
                )
            if cohort == "promoter" and purchases % 3 == 0:
                self.add(
                    at + timedelta(days=2),
                    "email",
                    "survey",
                    rating={"scale": "nps_10", "value": rng.choice([9, 10])},
                )
                if purchases % 6 == 0:
                    self.add(at + timedelta(days=3), "social", "referral")
            at += timedelta(days=rng.expovariate(1.0 / self.c.cadence_days) + 0.5)
        return sorted(self.events, key=lambda e: e["occurred_at"])

    def _survey_score(self, late: float) -> int:
        if late > 1.5:
            return self.rng.choice([1, 2])
        return self.rng.choice([4, 5, 5])


def generate(
    customers: int = 1000,
    months: float = 6.0,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    mix: dict[str, float] | None = None,
) -> tuple[list[Customer], list[dict[str, Any]]]:
    """All events of all planted customers, sorted by event time."""
    end = start + timedelta(days=30.4 * months)
    planted = plant_customers(customers, seed, mix)
    events: list[dict[str, Any]] = []
    for customer in planted:
        events.extend(_CustomerStory(customer, start, end, seed).write())
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return planted, events


def iter_events(*args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    yield from generate(*args, **kwargs)[1]
