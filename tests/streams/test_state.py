from __future__ import annotations

import hashlib
import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.streams.builders import at, delivery, touch
from touchstream.streams.customer_state import STATE_FIELDS, CustomerState
from touchstream.streams.params import DAY
from touchstream.streams.rules import Rules
from touchstream.streams.state import (
    apply_event,
    channel_spread,
    decay_to,
    event_key,
    silent_failures,
    streak,
)

PARAMS = Rules(half_life_days=30.0, grace_seconds=2 * DAY).state_params()


def fold(events, params=PARAMS) -> CustomerState:
    state = CustomerState("c1")
    for event in events:
        apply_event(state, event, params)
    return state


def decayed_failed(state: CustomerState, day: float) -> float:
    return state.failed * decay_to(state, at(day).timestamp(), PARAMS.half_life)


def test_counts_halve_after_one_half_life() -> None:
    state = fold([delivery("c1", 0, 2, 4)])
    assert decayed_failed(state, 0) == pytest.approx(1.0)
    assert decayed_failed(state, 30) == pytest.approx(0.5)
    assert decayed_failed(state, 90) == pytest.approx(0.125)


def test_decay_survives_reanchoring_over_years() -> None:
    events = [delivery("c1", d, 2, 4) for d in range(0, 3650 * 3, 30)]
    state = fold(events)
    # geometric series of one failure per half-life: sum 1 + 1/2 + 1/4 ... = 2
    assert decayed_failed(
        state, events[-1].occurred_at.timestamp() / DAY - at(0).timestamp() / DAY
    ) == pytest.approx(2.0, rel=1e-6)


def test_duplicate_event_ids_count_once() -> None:
    event = delivery("c1", 0, 2, 4, event_id="same")
    state = CustomerState("c1")
    assert apply_event(state, event, PARAMS).status == "applied"
    assert apply_event(state, event, PARAMS).status == "duplicate"
    assert state.event_count == 1 and state.failed == pytest.approx(1.0)


def test_events_older_than_grace_are_late_and_not_counted() -> None:
    state = fold([touch(day=10)])
    result = apply_event(state, touch(day=7), PARAMS)
    assert result.status == "late"
    assert state.event_count == 1 and state.late_events == 1


def test_out_of_order_within_grace_equals_in_order() -> None:
    events = [
        delivery("c1", 0.1 * i, 2, 2 + (i % 3), channel=["web", "app"][i % 2]) for i in range(10)
    ]
    shuffled = events[:]
    random.Random(4).shuffle(shuffled)
    ordered, mixed = fold(events), fold(shuffled)
    now, h = at(2).timestamp(), PARAMS.half_life
    for name in (
        "failed",
        "met",
        "exceeded",
        "s_quality",
        "s_quality_sq",
        "s_gap",
        "w_gap",
        "worst_gap",
    ):  # anchored sums: compare their decayed values
        assert getattr(mixed, name) * decay_to(mixed, now, h) == pytest.approx(
            getattr(ordered, name) * decay_to(ordered, now, h)
        ), name
    for name in ("first_seen", "last_seen", "active_days", "event_count"):
        assert getattr(mixed, name) == getattr(ordered, name), name
    assert streak(mixed) == streak(ordered)


@given(st.permutations(list(range(8))))
def test_decayed_sums_do_not_depend_on_arrival_order(order: list[int]) -> None:
    events = [delivery("c1", i * 0.2, 2, 2 + (i % 4) * 0.5) for i in range(8)]
    base = fold(events)
    other = fold([events[i] for i in order])
    now, h = at(3).timestamp(), PARAMS.half_life
    for name in ("s_quality", "failed", "w_judged"):
        assert getattr(other, name) * decay_to(other, now, h) == pytest.approx(
            getattr(base, name) * decay_to(base, now, h)
        ), name


def test_streak_and_silent_failures() -> None:
    state = fold(
        [
            delivery("c1", 0, 2, 2),
            delivery("c1", 1, 2, 2),
            delivery("c1", 2, 2, 5),
            delivery("c1", 3, 2, 5),
            delivery("c1", 4, 2, 2),
        ]
    )
    assert streak(state) == 1
    assert silent_failures(state) == 2  # deliveries are company-initiated: nobody complained
    apply_event(state, touch(day=5, kind="inquiry", channel="phone"), PARAMS)
    assert silent_failures(state) == 0


def test_fast_complaint_resolution_is_a_recovery() -> None:
    state = fold([touch(day=0, kind="complaint", case_id="k1", channel="phone")])
    assert state.failed > 0
    apply_event(
        state, touch(day=0.5, kind="complaint_resolved", case_id="k1", outcome="success"), PARAMS
    )
    assert state.failed == pytest.approx(0.0, abs=1e-12)
    assert state.open_complaints == {}


def test_slow_complaint_resolution_stays_a_failure() -> None:
    state = fold([touch(day=0, kind="complaint", case_id="k1")])
    apply_event(
        state, touch(day=5, kind="complaint_resolved", case_id="k1", outcome="success"), PARAMS
    )
    assert state.failed > 0.5


def test_channel_spread_zero_for_uniform_and_shrinks_single_outliers() -> None:
    now = at(1).timestamp()
    h = PARAMS.half_life
    uniform = fold(
        [
            touch(day=0.01 * i, channel=c, outcome="success")
            for i, c in enumerate(["web", "app", "phone"] * 4)
        ]
    )
    assert channel_spread(uniform, now, h) == pytest.approx(0.0)
    split = fold(
        [
            touch(day=0.01 * i, channel=c, outcome="success" if c == "web" else "failure")
            for i, c in enumerate(["web", "phone"] * 6)
        ]
    )
    one_bad = fold(
        [touch(day=0.01 * i, channel="web", outcome="success") for i in range(11)]
        + [touch(day=0.2, channel="phone", outcome="failure")]
    )
    assert channel_spread(split, now, h) > channel_spread(one_bad, now, h) > 0


def test_changelog_encoding_round_trips_is_smaller_and_reads_the_old_forms() -> None:
    """msgpack rows now; the JSON rows (0.1 to 0.9) and JSON objects (before) still read."""
    state = fold([delivery("c1", 0, 2, 3), touch(day=1, kind="complaint", case_id="x")])
    raw = state.encode()
    assert CustomerState.decode(raw) == state
    as_json = orjson.OPT_NON_STR_KEYS  # the JSON forms wrote channel indexes as strings
    old_row = orjson.dumps(state.to_row(), option=as_json)
    old_object = orjson.dumps(dict(zip(STATE_FIELDS, state.to_row(), strict=True)), option=as_json)
    assert b'"channel_quality":{"' in old_object
    assert CustomerState.decode(old_row) == state
    assert CustomerState.decode(old_object) == state
    assert len(raw) < len(old_row)


def test_a_row_written_before_a_field_was_added_reads_it_as_its_default() -> None:
    state = fold([delivery("c1", 0, 2, 3), touch(day=1, kind="complaint", case_id="x")])
    shorter = state.to_row()[: STATE_FIELDS.index("w_promises")]
    again = CustomerState.from_row(shorter)
    assert again.event_count == state.event_count and again.broken == 0.0
    assert again.miss_by == {} and again.pre_incident == -1.0


def test_a_stored_state_costs_its_own_size_not_the_encoders_buffer() -> None:
    """The table keeps one encoded state per customer for as long as the worker runs."""
    import tracemalloc

    state = fold([delivery("c1", 0, 2, 3), touch(day=1, kind="complaint", case_id="x")])
    tracemalloc.start()
    try:
        kept = [state.encode() for _ in range(1000)]
        per_state = tracemalloc.get_traced_memory()[0] / len(kept)
    finally:
        tracemalloc.stop()
    assert per_state < len(kept[0]) + 200, (per_state, len(kept[0]))


def test_every_field_survives_the_positional_row() -> None:
    """The row is positional: a field in a different place in the generated reader and
    writer would land in another field's slot."""
    collections = {
        "channel_quality": {3: [1.5, 0.25]},
        "recent": [(1.0, 2, True)],
        "recent_days": [7],
        "open_complaints": {"case": [1.0, -0.5, 2.0]},
        "seen": {"abc": 9.0},
        "signal_state": {"about_to_defect": [True, 3.0]},
        "resolved_cases": ["case-0"],
        "miss_by": {"delivery_days|delivery|courier-a": 1.5},
        "complaint_where": {"case": "phone|support"},
        "absorbed": ["c-absorbed"],
        "parked": [[12, b'{"after":[]}', 1.5]],
    }
    values: dict[str, object] = {"customer_id": "c-distinct"}
    state = CustomerState("c-distinct")
    for i, name in enumerate(STATE_FIELDS[1:], start=1):
        default = getattr(state, name)
        scalar = float(i) + 0.25 if isinstance(default, float) else i
        values[name] = collections.get(name, f"s{i}" if isinstance(default, str) else scalar)
        setattr(state, name, values[name])
    assert state.to_row() == list(values.values())
    again = CustomerState.decode(state.encode())
    assert [getattr(again, name) for name in STATE_FIELDS] == list(values.values())
    assert again == state and again is not state


@given(st.text(max_size=80))
def test_the_dedup_key_of_an_event_id_never_changes(event_id: str) -> None:
    """Stored states remember their events by this key: a new digest would count every
    redelivery of an event they already hold once more."""
    expected = hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()
    assert event_key(event_id) == expected
    assert event_key("order-1") == "2599000e8c1b023d"  # what stored states hold
