"""Two states of one customer made one, field by field by the declared rule.

When two keys turn out to be one customer (identity resolution), each key has a state built
from its own events. `merge_states` combines them by the `merge` rule each field declares in
streams/state_schema.py: counts add, anchored sums are put on one anchor and added, rings
merge by time, the first contact is the earlier one. Where a rule is exact, the merged field
is what one state of all the events would hold; the others are named in the declaration.
Pure: no I/O. Merges are rare, so the rules are read from the declaration at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from touchstream.streams import state_schema as schema
from touchstream.streams.customer_state import (
    ABSORBED_KEEP,
    MISS_BY_KEEP,
    OPEN_COMPLAINTS_KEEP,
    RECENT_KEEP,
    SEEN_KEEP,
    CustomerState,
)
from touchstream.streams.params import StateParams

Rule = Callable[[CustomerState, CustomerState, str], Any]  # (survivor, other, field) -> value


def _copy(state: CustomerState) -> CustomerState:
    return CustomerState.decode(state.encode())


def _sum(a: CustomerState, b: CustomerState, name: str) -> Any:
    return getattr(a, name) + getattr(b, name)


def _sum_pairs(a: CustomerState, b: CustomerState, name: str) -> dict[Any, list[float]]:
    merged = {key: list(pair) for key, pair in getattr(a, name).items()}
    for key, (weight, total) in getattr(b, name).items():
        pair = merged.setdefault(key, [0.0, 0.0])
        pair[0] += weight
        pair[1] += total
    return merged


def _sum_values(a: CustomerState, b: CustomerState, name: str) -> dict[str, float]:
    merged = dict(getattr(a, name))
    for key, value in getattr(b, name).items():
        merged[key] = merged.get(key, 0.0) + value
    heaviest = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:MISS_BY_KEEP]
    return dict(heaviest)


def _present(state: CustomerState, counter: str) -> bool:
    return getattr(state, counter) > 0


def _extreme(pick: Callable[..., Any], counter: str) -> Rule:
    """min or max over the states that have any (a day of a state with no active day is 0)."""

    def rule(a: CustomerState, b: CustomerState, name: str) -> Any:
        values = [getattr(s, name) for s in (a, b) if _present(s, counter)]
        return pick(values) if values else getattr(a, name)

    return rule


def _ring_by_time(a: CustomerState, b: CustomerState, name: str) -> list[Any]:
    return sorted([*getattr(a, name), *getattr(b, name)], key=lambda r: r[0])[-RECENT_KEEP:]


def _days_ring(a: CustomerState, b: CustomerState, name: str) -> list[int]:
    return sorted({*getattr(a, name), *getattr(b, name)})[-RECENT_KEEP:]


def _seen_ids(a: CustomerState, b: CustomerState, name: str) -> dict[str, float]:
    both = {**getattr(b, name), **getattr(a, name)}
    return dict(sorted(both.items(), key=lambda kv: kv[1])[-SEEN_KEEP:])


def _signals(a: CustomerState, b: CustomerState, name: str) -> dict[str, list[Any]]:
    merged = {kind: list(value) for kind, value in getattr(a, name).items()}
    for kind, (active, raised) in getattr(b, name).items():
        mine = merged.setdefault(kind, [False, None])
        raises = [r for r in (mine[1], raised) if r is not None]
        merged[kind] = [bool(mine[0] or active), max(raises) if raises else None]
    return merged


def _distinct_days(a: CustomerState, b: CustomerState, name: str) -> int:
    both = set(a.recent_days) & set(b.recent_days)
    return int(getattr(a, name) + getattr(b, name) - len(both))


def _open_cases(a: CustomerState, b: CustomerState, name: str) -> dict[str, list[float]]:
    both = {**getattr(b, name), **getattr(a, name)}
    newest = sorted(both.items(), key=lambda kv: kv[1][0])[-OPEN_COMPLAINTS_KEEP:]
    return {case: list(value) for case, value in newest}


def _cases_ring(a: CustomerState, b: CustomerState, name: str) -> list[str]:
    earlier, later = (b, a) if _later(a, b) else (a, b)
    cases = [*getattr(earlier, name), *getattr(later, name)]  # in order of resolution
    last_of_each = list(dict.fromkeys(reversed(cases)))  # a case resolved twice: the later
    return last_of_each[:OPEN_COMPLAINTS_KEEP][::-1]


def _case_places(a: CustomerState, b: CustomerState, name: str) -> dict[str, str]:
    still_open = _open_cases(a, b, "open_complaints")
    both = {**getattr(b, name), **getattr(a, name)}
    return {case: place for case, place in both.items() if case in still_open}


def _absorbed(a: CustomerState, b: CustomerState, name: str) -> list[str]:
    merged = dict.fromkeys([*a.absorbed, *b.absorbed, b.customer_id])
    merged.pop(a.customer_id, None)
    return list(merged)[-ABSORBED_KEEP:]


def _later(a: CustomerState, b: CustomerState) -> bool:
    """Whether `a`'s last event is after `b`'s (a tie goes to `a`, the survivor)."""
    return a.last_seen >= b.last_seen


def _from_later(a: CustomerState, b: CustomerState, name: str) -> Any:
    return getattr(a if _later(a, b) else b, name)


RULES: dict[str, Rule] = {
    schema.SURVIVOR: lambda a, b, name: getattr(a, name),
    schema.SUM: _sum,
    schema.SUM_PAIRS: _sum_pairs,
    schema.SUM_VALUES: _sum_values,
    schema.MIN: lambda a, b, name: min(getattr(a, name), getattr(b, name)),
    schema.MAX: lambda a, b, name: max(getattr(a, name), getattr(b, name)),
    schema.BITS: lambda a, b, name: getattr(a, name) | getattr(b, name),
    schema.EARLIEST: _extreme(min, "event_count"),
    schema.LATEST_TIME: lambda a, b, name: max(getattr(a, name), getattr(b, name)),
    schema.EARLIEST_DAY: _extreme(min, "active_days"),
    schema.LATEST_DAY: _extreme(max, "active_days"),
    schema.RING_BY_TIME: _ring_by_time,
    schema.DAYS_RING: _days_ring,
    schema.SEEN_IDS: _seen_ids,
    schema.SIGNALS: _signals,
    schema.DISTINCT_DAYS: _distinct_days,
    schema.OPEN_CASES: _open_cases,
    schema.CASES_RING: _cases_ring,
    schema.FROM_LATER: _from_later,
    schema.CASE_PLACES: _case_places,
    schema.ABSORBED: _absorbed,
}


def _put_on_anchor(state: CustomerState, anchor: float, half_life: float) -> None:
    """Re-anchor the sums of `state` to `anchor` (not earlier than its own)."""
    if state.anchor == 0.0 or state.anchor == anchor:
        state.anchor = anchor
        return
    elapsed = anchor - state.anchor
    state.reanchor_sums(2.0 ** (-elapsed / half_life), 2.0 ** (-4.0 * elapsed / half_life))
    state.anchor = anchor


def merge_states(
    survivor: CustomerState, other: CustomerState, params: StateParams
) -> CustomerState:
    """One state of both customers' events, keyed as `survivor`. Neither input changes."""
    a, b = _copy(survivor), _copy(other)
    anchor = max(a.anchor, b.anchor)
    _put_on_anchor(a, anchor, params.half_life)
    _put_on_anchor(b, anchor, params.half_life)
    merged = CustomerState(a.customer_id)
    for field in schema.FIELDS:
        setattr(merged, field.name, RULES[field.merge](a, b, field.name))
    horizon = merged.last_seen - params.grace_seconds
    merged.seen = {key: t for key, t in merged.seen.items() if t >= horizon}
    return merged
