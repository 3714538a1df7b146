"""Merging two states of one customer: each field by its declared rule, checked against one
state of all the events."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.streams.builders import delivery, touch
from touchstream.streams import state_schema as schema
from touchstream.streams.customer_state import OPEN_COMPLAINTS_KEEP, RECENT_KEEP, CustomerState
from touchstream.streams.merge import RULES, merge_states
from touchstream.streams.params import DAY
from touchstream.streams.rules import Rules
from touchstream.streams.state import apply_event

PARAMS = Rules(half_life_days=20.0, grace_seconds=2 * DAY).state_params()
CASE_RULES = {schema.OPEN_CASES, schema.CASES_RING, schema.CASE_PLACES}


def fold(customer: str, events: list[Any]) -> CustomerState:
    state = CustomerState(customer)
    for event in events:
        assert apply_event(state, event, PARAMS).status == "applied"
    return state


def on_anchor(state: CustomerState, anchor: float) -> CustomerState:
    copy = CustomerState.decode(state.encode())
    elapsed = anchor - copy.anchor
    h = PARAMS.half_life
    copy.reanchor_sums(2.0 ** (-elapsed / h), 2.0 ** (-4.0 * elapsed / h))
    copy.anchor = anchor
    return copy


def close(x: Any, y: Any) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(close(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple):
        return len(x) == len(y) and all(close(u, v) for u, v in zip(x, y, strict=True))
    return bool(x == y)


# one step of a history: (days after the previous step, what happened, on which key)
STEP = st.tuples(
    st.floats(0.05, 12.0),
    st.sampled_from(
        ["purchase", "store", "late", "on_time", "survey", "review", "referral", "complaint"]
    ),
    st.booleans(),
)


def history(steps: list[tuple[float, str, bool]]) -> list[tuple[Any, bool]]:
    """Events with the key each goes to. A complaint's resolution (a few days later, in or
    out of the SLA) goes to the key that opened it: a case lives in one system."""
    events: list[tuple[Any, bool]] = []
    day = 0.0
    for n, (wait, what, second_key) in enumerate(steps):
        day += wait
        team = "t1" if n % 2 else "t2"
        if what == "purchase":
            event = touch("p", day, kind="purchase", value={"amount": 10.0 + n, "currency": "EUR"})
        elif what == "store":
            event = touch("p", day, kind="visit", channel="store")
        elif what in ("late", "on_time"):
            event = delivery("p", day, 2, 5 if what == "late" else 2, team=team)
        elif what == "survey":
            event = touch("p", day, kind="survey", rating={"scale": "csat_5", "value": 1 + n % 5})
        elif what == "review":
            event = touch("p", day, kind="review", rating={"scale": "stars_5", "value": 1 + n % 5})
        elif what == "referral":
            event = touch("p", day, kind="referral")
        else:
            case = f"case{n}"
            events.append(
                (touch("p", day, kind="complaint", channel="phone", case_id=case), second_key)
            )
            day += 0.5 + (n % 3) * 4  # 0.5, 4.5 or 8.5 days: some past the SLA
            event = touch(
                "p",
                day,
                kind="complaint_resolved",
                channel="phone",
                case_id=case,
                outcome="success",
            )
        events.append((event, second_key))
    return events


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=40))
def test_a_merged_state_is_the_state_of_all_the_events(steps: list) -> None:
    events = history(steps)
    whole = fold("p", [event for event, _ in events])
    first = fold("a", [event for event, second in events if not second])
    second = fold("b", [event for event, second in events if second])
    merged = merge_states(first, second, PARAMS)
    assert merged.customer_id == "a" and merged.absorbed == ["b"]
    whole = on_anchor(whole, merged.anchor)
    splits_days = max(first.active_days, second.active_days) > RECENT_KEEP
    for field in schema.FIELDS:
        if field.merge in (schema.SURVIVOR, schema.FROM_LATER, schema.ABSORBED):
            continue
        mine, truth = getattr(merged, field.name), getattr(whole, field.name)
        if field.merge == schema.DISTINCT_DAYS and splits_days:
            assert truth <= mine <= first.active_days + second.active_days, field.name
            continue
        assert field.merge in schema.EXACT_MERGES | CASE_RULES | {schema.DISTINCT_DAYS}
        if field.merge == schema.CASES_RING:  # the same cases; which was resolved first is lost
            if len(first.resolved_cases) + len(second.resolved_cases) > OPEN_COMPLAINTS_KEEP:
                continue  # so is which of them the full ring dropped
            mine, truth = sorted(mine), sorted(truth)
        assert close(mine, truth), (field.name, mine, truth)


@settings(max_examples=100, deadline=None)
@given(st.lists(STEP, min_size=1, max_size=25))
def test_merging_either_way_differs_only_in_the_survivors_fields(steps: list) -> None:
    events = history(steps)
    first = fold("a", [event for event, second in events if not second])
    second = fold("b", [event for event, second in events if second])
    one, other = merge_states(first, second, PARAMS), merge_states(second, first, PARAMS)
    for field in schema.FIELDS:
        if field.merge in (schema.SURVIVOR, schema.ABSORBED):
            continue
        assert close(getattr(one, field.name), getattr(other, field.name)), field.name
    assert (one.customer_id, other.customer_id) == ("a", "b")
    assert (one.absorbed, other.absorbed) == (["b"], ["a"])


def test_every_field_declares_a_known_merge_rule() -> None:
    assert {field.merge for field in schema.FIELDS} <= RULES.keys()
    assert all(field.merge for field in schema.FIELDS)


def test_order_dependent_fields_come_from_the_state_with_the_later_last_event() -> None:
    early = fold("a", [delivery("p", 0, 2, 6), delivery("p", 1, 2, 6)])
    late = fold("b", [delivery("p", 5, 2, 2)])
    assert (early.consecutive_misses, late.consecutive_misses) == (2, 0)
    assert merge_states(early, late, PARAMS).consecutive_misses == 0
    assert merge_states(late, early, PARAMS).consecutive_misses == 0
    assert merge_states(early, CustomerState("b"), PARAMS).consecutive_misses == 2


def test_signals_stay_active_if_active_under_either_key_with_the_later_raise() -> None:
    a, b = CustomerState("a"), CustomerState("b")
    a.signal_state = {"about_to_defect": [False, 100.0], "wow:milestone": [True, 50.0]}
    b.signal_state = {"about_to_defect": [True, 70.0], "wow_opportunity": [False, None]}
    assert merge_states(a, b, PARAMS).signal_state == {
        "about_to_defect": [True, 100.0],
        "wow:milestone": [True, 50.0],
        "wow_opportunity": [False, None],
    }


def test_merging_changes_neither_input_and_an_empty_state_changes_nothing() -> None:
    events = [touch("p", d, kind="purchase") for d in (0, 3, 9)]
    state = fold("a", events)
    before = state.encode()
    merged = merge_states(state, CustomerState("b"), PARAMS)
    assert state.encode() == before and merged.absorbed == ["b"]
    merged.absorbed = []
    assert merged == state
    into_empty = merge_states(CustomerState("b"), state, PARAMS)
    assert into_empty.absorbed == ["a"]
    into_empty.absorbed = []
    assert into_empty.to_row()[1:] == state.to_row()[1:]


def test_absorbed_ids_accumulate_once_each_and_never_name_the_survivor() -> None:
    a, b, c = CustomerState("a"), CustomerState("b"), CustomerState("c")
    b.absorbed = ["x", "a"]
    merged = merge_states(merge_states(a, b, PARAMS), c, PARAMS)
    assert merged.absorbed == ["x", "b", "c"]
    assert merge_states(merged, b, PARAMS).absorbed == ["x", "b", "c"]
