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
from typing import NamedTuple, TypeVar

from touchstream.schemas import Signal, SignalKind
from touchstream.streams.params import DAY
from touchstream.streams.rules import WowRules

PENDING, PUBLISHED, OVER_CAPACITY = "pending", "published", "over_capacity"
T = TypeVar("T")


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
        return OfferKey.of(self.signal).day

    @property
    def moment(self) -> str:
        for reason in self.signal.reasons:
            if reason.factor.startswith("moment:"):
                return reason.factor.removeprefix("moment:")
        return ""


def is_offer(signal: Signal) -> bool:
    return signal.kind is SignalKind.wow_opportunity


def ranking_key(offer: Offer) -> tuple[float, str]:
    return OfferKey.of(offer.signal).ranking


class OfferKey(NamedTuple):
    """What an offer is decided on: its team's day, and its place in the ranking."""

    team: str
    day: int
    expected_value: float
    signal_id: str

    @classmethod
    def of(cls, signal: Signal) -> OfferKey:
        day = math.floor(signal.raised_at.timestamp() / DAY)
        return cls(signal.team or "", day, signal.expected_value, signal.signal_id)

    @property
    def ranking(self) -> tuple[float, str]:
        """Most valuable first; the signal id breaks ties, so the order never depends on
        arrival."""
        return (-self.expected_value, self.signal_id)


def decidable_before(watermark: float, rules: WowRules) -> int:
    """The first epoch day that cannot be decided yet when event time has reached
    `watermark` on every partition: days whose end is `decide_after_hours` behind it can."""
    return math.floor((watermark - rules.decide_after_hours * 3600.0) / DAY)


def decide(
    pending: Iterable[tuple[OfferKey, T]],
    rules: WowRules,
    published: dict[tuple[str, int], int] | None = None,
) -> list[tuple[T, str, int, int]]:
    """Decide pending offers, team by team and day by day: the most valuable ones up to the
    team's capacity are published, less those already `published` that team-day (offers
    decided in an earlier pass, when a late one comes in), the rest are over capacity.
    Each item with its decision, rank and the team's capacity, in that order (days, then
    teams, then ranks)."""
    groups: dict[tuple[str, int], list[tuple[OfferKey, T]]] = defaultdict(list)
    for key, item in pending:
        groups[(key.team, key.day)].append((key, item))
    taken = published or {}
    decided = []
    for (team, day), offers in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        capacity = rules.capacity(team)
        already = taken.get((team, day), 0)
        ranked = sorted(offers, key=lambda pair: pair[0].ranking)
        for rank, (_, item) in enumerate(ranked, start=already + 1):
            decided.append((item, PUBLISHED if rank <= capacity else OVER_CAPACITY, rank, capacity))
    return decided


def allot(
    pending: Iterable[Offer],
    rules: WowRules,
    published: dict[tuple[str, int], int] | None = None,
) -> list[Offer]:
    """`decide` for offers: each with its decision, rank and capacity."""
    return [
        replace(offer, decision=decision, rank=rank, capacity=capacity)
        for offer, decision, rank, capacity in decide(
            ((OfferKey.of(offer.signal), offer) for offer in pending), rules, published
        )
    ]
