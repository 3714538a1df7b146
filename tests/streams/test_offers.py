"""Wow offers within the teams' capacity: the ranking, the decisions, the actions' texts."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.factories import snapshot
from touchstream.schemas import Reason, Signal
from touchstream.streams.churn import RiskModel
from touchstream.streams.offers import (
    OVER_CAPACITY,
    PUBLISHED,
    Offer,
    allot,
    decidable_before,
    ranking_key,
)
from touchstream.streams.rules import Rules, WowRules
from touchstream.streams.wow import wow_action

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)  # an epoch day's midnight (UTC)


def offer(n: int, value: float, team: str = "support", day: int = 0, hour: int = 10) -> Offer:
    raised = DAY0 + timedelta(days=day, hours=hour)
    return Offer(
        Signal(
            signal_id=f"wow-{n:06d}",
            kind="wow_opportunity",
            customer_id=f"c{n}",
            score=0.8,
            severity="medium",
            raised_at=raised,
            trigger="event",
            reasons=[Reason(factor="moment:milestone", value=1.0, contribution=0.45)],
            metrics=snapshot(f"c{n}", raised),
            team=team,
            expected_value=value,
        )
    )


def test_the_most_valuable_offers_of_a_team_day_are_published_up_to_its_capacity() -> None:
    rules = WowRules(capacity_per_day={"support": 2, "marketing": 1})
    offers = [
        offer(1, 10.0),
        offer(2, 300.0),
        offer(3, 50.0),
        offer(4, 300.0),  # ties with 2: the signal id decides, never the arrival order
        offer(5, 80.0, team="marketing"),
        offer(6, 90.0, team="marketing"),
        offer(7, 5.0, day=1),  # another day: its own capacity
    ]
    decided = {o.signal.signal_id: o for o in allot(reversed(offers), rules)}
    assert {k for k, o in decided.items() if o.decision == PUBLISHED} == {
        "wow-000002",
        "wow-000004",
        "wow-000006",
        "wow-000007",
    }
    assert [decided[f"wow-00000{n}"].rank for n in (2, 4, 3, 1)] == [1, 2, 3, 4]
    assert decided["wow-000003"].decision == OVER_CAPACITY
    assert decided["wow-000003"].capacity == 2
    assert decided["wow-000005"].decision == OVER_CAPACITY


def test_a_team_without_a_capacity_of_its_own_gets_the_default_and_zero_means_none() -> None:
    rules = WowRules(capacity_per_day={"support": 0}, default_capacity_per_day=1)
    decided = allot(
        [offer(1, 5.0), offer(2, 9.0, team="stores"), offer(3, 1.0, team="stores")], rules
    )
    by_id = {o.signal.signal_id: o.decision for o in decided}
    assert by_id == {
        "wow-000001": OVER_CAPACITY,
        "wow-000002": PUBLISHED,
        "wow-000003": OVER_CAPACITY,
    }


def test_a_late_offer_for_a_decided_day_gets_what_capacity_is_left() -> None:
    rules = WowRules(capacity_per_day={"support": 2})
    late = [offer(8, 1_000.0), offer(9, 1.0)]
    decided = allot(late, rules, published={("support", late[0].day): 1})
    assert [(o.decision, o.rank) for o in decided] == [(PUBLISHED, 2), (OVER_CAPACITY, 3)]


def test_a_day_is_decided_only_once_event_time_is_past_it_by_the_grace() -> None:
    rules = WowRules(decide_after_hours=2.0)
    day = offer(1, 1.0).day
    end = (day + 1) * 86_400.0
    assert decidable_before(end + 3600.0, rules) == day  # 1 h past: not yet
    assert decidable_before(end + 2 * 3600.0, rules) == day + 1


offers_strategy = st.lists(
    st.tuples(
        st.floats(0, 10_000, allow_nan=False),
        st.sampled_from(["stores", "web", "field"]),  # teams the defaults do not name
        st.integers(0, 3),
    ),
    max_size=60,
)


@given(offers_strategy, st.integers(0, 5), st.randoms(use_true_random=False))
def test_capacity_holds_and_nothing_over_it_is_worth_more(
    drawn: list[tuple[float, str, int]], capacity: int, shuffle: random.Random
) -> None:
    rules = WowRules(capacity_per_day={}, default_capacity_per_day=capacity)
    offers = [offer(n, value, team, day) for n, (value, team, day) in enumerate(drawn)]
    decided = allot(offers, rules)
    assert len(decided) == len(offers)
    published = Counter((o.team, o.day) for o in decided if o.decision == PUBLISHED)
    assert all(n <= capacity for n in published.values())
    for o in decided:  # an offer left out means the team's day was full of better ones
        if o.decision == OVER_CAPACITY:
            assert published[(o.team, o.day)] == capacity
            assert all(
                ranking_key(p) < ranking_key(o)
                for p in decided
                if p.decision == PUBLISHED and (p.team, p.day) == (o.team, o.day)
            )
    shuffle.shuffle(offers)
    assert sorted((o.signal.signal_id, o.decision, o.rank) for o in allot(offers, rules)) == (
        sorted((o.signal.signal_id, o.decision, o.rank) for o in decided)
    )


def test_the_action_depends_on_the_moment_the_value_and_what_happened() -> None:
    rules = Rules()
    model = RiskModel(typical_value=200.0)
    moment = (1.0, "milestone", "their 10th purchase")
    usual = wow_action(moment, 150.0, "store", rules, model)
    top = wow_action(moment, 900.0, "store", rules, model)
    assert usual == "customer_success: a hand-written thank-you note for their 10th purchase"
    assert "upgrade" in top and "their 10th purchase" in top
    recovery = (0.8, "service_recovery", "their complaint was resolved in 5 hours")
    text = wow_action(recovery, 150.0, "phone", rules, model)
    assert "support" in text and "on phone" in text and "resolved in 5 hours" in text


def test_actions_are_checked_when_the_rules_are_loaded() -> None:
    with pytest.raises(
        ValidationError, match=re.escape("only {team}, {channel}, {what} and {value}")
    ):
        Rules.model_validate({"wow": {"actions": {"milestone": "a note for {customer}"}}})
    with pytest.raises(ValidationError, match=r"capacity_per_day\.support"):
        Rules.model_validate({"wow": {"capacity_per_day": {"support": -1}}})


def test_a_rules_file_names_only_what_it_changes() -> None:
    rules = Rules.model_validate(
        {"wow": {"actions": {"milestone": "cake for {what}"}, "capacity_per_day": {"support": 9}}}
    )
    assert rules.wow.actions["milestone"] == "cake for {what}"
    assert rules.wow.actions["advocacy"] == Rules().wow.actions["advocacy"]
    assert rules.wow.capacity("support") == 9
    assert rules.wow.capacity("marketing") == Rules().wow.capacity("marketing")
