"""streams/customer_state.py is what streams/state_schema.py declares, and the declaration
is what the engine does with the state."""

from __future__ import annotations

from tests.streams.builders import delivery, touch
from touchstream.streams import state_schema
from touchstream.streams.customer_state import STATE_FIELDS, CustomerState
from touchstream.streams.params import DAY
from touchstream.streams.rules import Rules
from touchstream.streams.state import _REANCHOR_HALF_LIVES, apply_event


def test_the_generated_state_is_up_to_date() -> None:
    assert state_schema.TARGET.read_text() == state_schema.render(), (
        "streams/customer_state.py differs from streams/state_schema.py: run `make schemas`"
    )
    assert tuple(field.name for field in state_schema.FIELDS) == STATE_FIELDS


def test_new_states_share_no_container() -> None:
    """Defaults are evaluated per state (a class-level `{}` would be one dict for all)."""
    a, b = CustomerState("a"), CustomerState("b")
    a.seen["k"] = 1.0
    a.recent.append((1.0, 1, True))
    assert b.seen == {} and b.recent == []


def test_every_decayed_sum_is_declared_so() -> None:
    """Re-anchoring far in the future (what `reanchor_sums` does for the declared fields)
    changes no decayed value: a sum missing from the declaration would jump by 2^100."""
    params = Rules().state_params()
    h = params.half_life
    state = CustomerState("c")
    for day, event in enumerate(
        [
            delivery("c", 0, 2, 5, team="courier"),
            touch(day=1, kind="survey", rating={"scale": "csat_5", "value": 2}),
            touch(day=2, kind="complaint", case_id="k", channel="phone"),
            touch(day=3, kind="complaint_resolved", case_id="k", channel="phone"),
        ]
    ):
        assert apply_event(state, event, params).status == "applied", day
    later = state.anchor + (_REANCHOR_HALF_LIVES + 1) * h
    moved = CustomerState.decode(state.encode())
    moved.anchor = state.anchor
    apply_event(moved, touch("c", day=(later - state.anchor) / DAY + 2, kind="visit"), params)
    assert moved.anchor > state.anchor + _REANCHOR_HALF_LIVES * h

    def at(s: CustomerState, name: str) -> float:
        return getattr(s, name) * 2.0 ** (-(later - s.anchor) / h)

    decayed = [f.name for f in state_schema.FIELDS if f.decay == state_schema.SLOW]
    assert decayed and all(getattr(state, name) for name in ("w_judged", "broken", "s_miss"))
    for name in decayed:
        if name not in ("w_judged", "w_promises"):  # the visit judged and promised nothing
            assert abs(at(moved, name) - at(state, name)) <= 1e-9 * abs(at(state, name)) + 1e-300
