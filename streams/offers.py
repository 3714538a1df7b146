"""Wow offers within the teams' capacity, company level: each team makes at most its daily
capacity of gestures (`wow.capacity_per_day`), so the day's offers of a team are ranked by
expected value (the customer's value x the wow score) and only the first ones are published;
the rest are kept with the decision `over_capacity`.

Pure: the offers come from wherever they are kept (ClickHouse live: sinks/offers.py; memory
in a replay), and a day is decided only once event time has left it behind, so the same
history gives the same decisions, with the same signal ids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from touchstream.schemas import Signal, SignalKind
from touchstream.streams.params import DAY
from touchstream.streams.rules import WowRules

PENDING, PUBLISHED, OVER_CAPACITY = "pending", "published", "over_capacity"


@dataclass(frozen=True, slots=True)
class Offer:
    """A wow opportunity the engine raised, and what became of it."""

    signal: Signal
    decision: str = PENDING
    rank: int = 0  # 1 = the team's most valuable offer of the day; 0 while pending
    capacity: int = 0  # the team's capacity that day, when decided

    @property
    def team(self) -> str:
        return self.signal.team or ""

    @property
    def day(self) -> int:
        """The epoch day (UTC, event time) the offer was raised on."""
        return math.floor(self.signal.raised_at.timestamp() / DAY)

    @property
    def moment(self) -> str:
        for reason in self.signal.reasons:
            if reason.factor.startswith("moment:"):
                return reason.factor.removeprefix("moment:")
        return ""


def is_offer(signal: Signal) -> bool:
    return signal.kind is SignalKind.wow_opportunity


def ranking_key(offer: Offer) -> tuple[float, str]:
    """Most valuable first; the signal id breaks ties, so the order never depends on
    arrival."""
    return (-offer.signal.expected_value, offer.signal.signal_id)


def decidable_before(watermark: float, rules: WowRules) -> int:
    """The first epoch day that cannot be decided yet when event time has reached
    `watermark` on every partition: days whose end is `decide_after_hours` behind it can."""
    return math.floor((watermark - rules.decide_after_hours * 3600.0) / DAY)


def allot(
    pending: Iterable[Offer],
    rules: WowRules,
    published: dict[tuple[str, int], int] | None = None,
) -> list[Offer]:
    """Decide pending offers, team by team and day by day: the most valuable ones up to the
    team's capacity are published, less those already `published` that team-day (offers
    decided in an earlier pass, when a late one comes in), the rest are over capacity."""
    groups: dict[tuple[str, int], list[Offer]] = defaultdict(list)
    for offer in pending:
        groups[(offer.team, offer.day)].append(offer)
    taken = published or {}
    decided = []
    for (team, day), offers in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        capacity = rules.capacity(team)
        already = taken.get((team, day), 0)
        for rank, offer in enumerate(sorted(offers, key=ranking_key), start=already + 1):
            decision = PUBLISHED if rank <= capacity else OVER_CAPACITY
            decided.append(replace(offer, decision=decision, rank=rank, capacity=capacity))
    return decided
