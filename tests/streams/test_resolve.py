"""The resolver's step and the keyed stage's two halves of a merge, without a broker.

Records are routed between the two stages as the topics would: by the partition Kafka's
default partitioner gives their key.
"""

from __future__ import annotations

import random
from collections import deque
from datetime import timedelta
from typing import Any

import msgspec
import orjson
import pytest

from tests.streams.builders import at
from touchstream.schemas import InputLimits
from touchstream.schemas.control import (
    FORGET_KEY,
    absorb_request,
    after_merges,
    forget_marker,
    merge_request,
    parse_marker,
    sent_on,
)
from touchstream.schemas.decoder import decode_within
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine, partition_for
from touchstream.streams.identity import IdentityGraph
from touchstream.streams.records import process_record
from touchstream.streams.resolve import resolve_record
from touchstream.streams.rules import IdentityRules, Rules
from touchstream.streams.state import event_key

PARTITIONS = 4
LIMITS = InputLimits(max_future_skew=timedelta(days=365 * 100))
DAY = 86_400.0


def identified(n: int, day: float, identifiers: list[tuple[str, str]], **fields: Any) -> bytes:
    """An identify-topic record: a touchpoint named by identifiers only."""
    return orjson.dumps(
        {
            "event_id": f"e{n}",
            "occurred_at": at(day).isoformat(),
            "channel": fields.pop("channel", "web"),
            "kind": fields.pop("kind", "purchase"),
            "identifiers": [{"type": t, "value": v} for t, v in identifiers],
            **fields,
        }
    )


class Topics:
    """The identify topic's resolver and the keyed stage, connected as the broker would."""

    def __init__(self) -> None:
        self.graph = IdentityGraph(IdentityRules())
        self.engine = Engine(Rules(), RiskModel(), {}, {}, PARTITIONS)
        self.offsets = [0] * PARTITIONS
        self.identify_offset = 0
        self.merges: list[str] = []
        self.dead: list[str] = []
        self.outcomes: list[str] = []
        self.forgotten: list[bytes] = []  # forget markers sent on to the keyed stage
        self.snapshots: list[dict[str, Any]] = []  # metrics snapshots, in the order made

    def identify(self, raw: bytes, key: bytes | None = None) -> None:
        resolved = resolve_record(self.graph, LIMITS, key, raw, "identify", 0, self.identify_offset)
        self.identify_offset += 1
        self.merges += [m.merge_id for m in resolved.merges]
        self.dead += [d.error_kind for d in resolved.dead_letters]
        self.forgotten += [v for name, _, v in resolved.records if v.startswith(b'{"forget"')]
        self.deliver([(k, v) for name, k, v in resolved.records if name == "touchpoints"])

    def deliver(self, records: list[tuple[bytes | None, bytes]], repeat: bool = False) -> None:
        """Each record to its partition, and what that produces on the touchpoints topic
        after it (in order); `repeat`: every record is handled twice (a redelivery)."""
        queue = deque(records)
        while queue:
            assert len(self.outcomes) < 10_000, "records going round in circles"
            key, value = queue.popleft()
            assert key is not None
            partition = partition_for(key.decode(), PARTITIONS)
            offset = self.offsets[partition]
            self.offsets[partition] += 1
            for _ in range(2 if repeat else 1):
                first = process_record(
                    self.engine, LIMITS, key, value, "touchpoints", partition, offset
                )
                for handled in (first, *(released for released, _ in first.released)):
                    self.outcomes.append(handled.outcome)
                    self.dead += handled.dead_reasons
                    self.snapshots += [
                        orjson.loads(v) for n, _, v in handled.records if n == "metrics"
                    ]
                    queue.extend((k, v) for n, k, v in handled.records if n == "touchpoints")

    def live(self) -> dict[str, Any]:
        return {k: s for k, s in self.engine.states.items() if not s.merged_into}


def test_identifiers_seen_together_make_one_customer_and_one_state() -> None:
    topics = Topics()
    topics.identify(identified(1, 0, [("email", "h1:" + "a" * 32)], value=_money(10)))
    topics.identify(identified(2, 1, [("phone", "h1:" + "b" * 32)], value=_money(20)))
    topics.identify(identified(3, 2, [("phone", "h1:" + "b" * 32)], channel="phone"))
    assert len(topics.live()) == 2
    topics.identify(identified(4, 3, [("email", "h1:" + "a" * 32), ("phone", "h1:" + "b" * 32)]))
    live = topics.live()
    assert len(live) == 1 and len(topics.merges) == 1
    (state,) = live.values()
    assert state.event_count == 4 and state.purchases == 4 and state.spend == 30.0
    assert state.channels_mask.bit_count() == 2
    # the absorbed key is a redirect now: a late touchpoint sent under it goes on
    absorbed = next(k for k, s in topics.engine.states.items() if s.merged_into)
    topics.deliver([(absorbed.encode(), _under(absorbed, 5, 4))])
    assert "redirected" in topics.outcomes
    assert next(iter(topics.live().values())).event_count == 5
    # a touchpoint the absorbed key had counted, sent again (the resolver after a crash):
    # the redirect knows its id, though the survivor may have forgotten it by now
    again = orjson.loads(identified(2, 1, [("phone", "h1:" + "b" * 32)], value=_money(20)))
    topics.outcomes.clear()
    topics.deliver([(absorbed.encode(), orjson.dumps({**again, "customer_id": absorbed}))])
    assert topics.outcomes == ["duplicate"]
    assert next(iter(topics.live().values())).event_count == 5


@pytest.mark.parametrize("by", ["phone:h1:" + "b" * 32, "the survivor", "the alias"])
def test_forgetting_any_identifier_forgets_the_customer_and_every_alias(by: str) -> None:
    topics = Topics()
    topics.identify(identified(1, 0, [("email", "h1:" + "a" * 32)]))
    topics.identify(identified(2, 1, [("phone", "h1:" + "b" * 32)]))
    topics.identify(identified(3, 2, [("email", "h1:" + "a" * 32), ("phone", "h1:" + "b" * 32)]))
    (survivor,) = topics.live()
    (alias,) = (k for k, s in topics.engine.states.items() if s.merged_into)
    target = {"the survivor": survivor, "the alias": alias}.get(by, by)
    topics.identify(forget_marker(target, at(5)), FORGET_KEY)
    markers = sorted(parse_marker(m) for m in topics.forgotten)
    keys = ("email:h1:" + "a" * 32, "phone:h1:" + "b" * 32)
    assert sorted((c, set(k)) for c, _, k in markers) == sorted(
        [(survivor, set(keys)), (alias, set(keys))]
    )
    assert topics.engine.states == {} and topics.graph.members == {}
    assert topics.graph.customer_of(keys[0]) is None
    # the identifiers seen again: a new customer, with nothing of the old
    topics.identify(identified(4, 6, [("email", "h1:" + "a" * 32)]))
    assert [s.event_count for s in topics.live().values()] == [1]


def test_merges_and_redeliveries_count_every_event_once() -> None:
    """The same traffic, each record handled once or twice (a crash before the commit):
    the same states. A merge's halves repeated merge once (the state remembers)."""
    rng = random.Random(7)
    people = [[("email", f"h1:{p:032x}"), ("phone", f"h1:{p + 100:032x}")] for p in range(6)]
    records = []
    for n in range(120):
        person = people[rng.randrange(len(people))]
        shown = rng.sample(person, rng.choice((1, 2)))
        records.append(identified(n, n / 4, shown, value=_money(1 + n % 5)))

    def run(repeat: bool) -> dict[str, tuple[int, float]]:
        topics = Topics()
        for raw in records:
            resolved = resolve_record(topics.graph, LIMITS, None, raw, "identify", 0, 0)
            out = [(k, v) for name, k, v in resolved.records if name == "touchpoints"]
            topics.deliver(out, repeat=repeat)
        assert not topics.dead
        return {k: (s.event_count, round(s.spend, 6)) for k, s in topics.live().items()}

    once, twice = run(False), run(True)
    assert once == twice
    assert len(once) == len(people)
    assert sum(n for n, _ in once.values()) == len(records)


def test_a_merge_request_for_a_key_without_state_leaves_a_redirect_only() -> None:
    topics = Topics()
    topics.deliver([(b"ghost", merge_request("ghost", "real", "m-1"))])
    assert topics.engine.states["ghost"].merged_into == "real" and "real" not in topics.live()


def test_a_touchpoint_without_a_usable_identifier_is_a_dead_letter_with_the_reason() -> None:
    topics = Topics()
    topics.identify(identified(1, 0, [("email", "null"), ("device", "undefined")]))
    topics.identify(b'{"event_id": "x", ')
    topics.deliver([(b"c", identified(2, 0, [("email", "h1:" + "c" * 32)]))])
    assert topics.dead == ["unresolved_identity", "invalid_json", "unresolved_identity"]
    assert topics.live() == {}


def test_the_graph_comes_back_from_its_changelog_and_resolves_on_the_same() -> None:
    rng = random.Random(11)
    kinds = ["email", "phone", "device", "loyalty_card", "crm_id", "order_id"]
    history = [
        ([f"{rng.choice(kinds)}:{rng.randrange(30)}" for _ in range(rng.choice((1, 2, 3)))], t)
        for t in range(400)
    ]
    original = IdentityGraph(IdentityRules())
    changelog: dict[str, bytes | None] = {}
    for n, (keys, t) in enumerate(history[:300]):
        original.resolve(keys, t * DAY / 3, f"e{n}")
        if n % 7 == 0:  # a batch ends
            changelog.update(original.take_changes())
    changelog.update(original.take_changes())
    restored = IdentityGraph(IdentityRules())
    restored.load((k, v) for k, v in changelog.items() if v is not None)
    for name in ("owner", "members", "first_seen", "shared", "pending", "confirmed", "aliases"):
        assert getattr(restored, name) == getattr(original, name), name
    assert {a: restored.canonical(a) for a in restored.alias} == {
        a: original.canonical(a) for a in original.alias
    }
    assert {k: {original.canonical(c) for c in v} for k, v in original.seen_with.items()} == {
        k: {restored.canonical(c) for c in v} for k, v in restored.seen_with.items()
    }
    merges = 0
    for n, (keys, t) in enumerate(history[300:]):
        a = original.resolve(keys, t * DAY / 3, f"f{n}")
        b = restored.resolve(keys, t * DAY / 3, f"f{n}")
        assert (a.customer, a.merges, a.refusals) == (b.customer, b.merges, b.refusals)
        merges += len(a.merges)
    assert merges > 0 and len(original.shared) > 0


@pytest.mark.parametrize("forgotten", ["phone:2", "email:1"])
def test_forgetting_tombstones_every_entry_of_the_customer(forgotten: str) -> None:
    graph = IdentityGraph(IdentityRules())
    graph.resolve(["email:1"], 0.0)
    graph.resolve(["phone:2"], DAY)
    graph.resolve(["email:1", "phone:2"], 2 * DAY)
    changelog = dict(graph.take_changes())
    graph.forget(forgotten)
    changelog.update(graph.take_changes())
    assert {k: v for k, v in changelog.items() if v is not None} == {}


def _money(amount: float) -> dict[str, Any]:
    return {"amount": amount, "currency": "EUR"}


def _under(customer: str, n: int, day: float) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"late{n}",
            "customer_id": customer,
            "occurred_at": at(day).isoformat(),
            "channel": "store",
            "kind": "purchase",
        }
    )


def test_the_offset_resolved_is_persisted_with_the_graph() -> None:
    """A record redelivered after the graph was persisted is known as resolved."""
    graph = IdentityGraph(IdentityRules())
    graph.resolve(["email:1"], 0.0)
    graph.resolved(41)
    again = IdentityGraph(IdentityRules())
    again.load((k, v) for k, v in graph.take_changes() if v is not None)
    assert again.resolved_through == 41 and again.customer_of("email:1") is not None


def test_the_touchpoint_goes_on_under_its_customer_without_its_identifiers() -> None:
    """The keyed stage needs the customer only: pseudonyms stay on the identify topic."""
    graph = IdentityGraph(IdentityRules())
    raw = identified(1, 0, [("email", "h1:" + "a" * 32), ("phone", "h1:" + "b" * 32)])
    resolved = resolve_record(graph, LIMITS, None, raw, "identify", 0, 0)
    ((name, key, value),) = resolved.records
    sent = orjson.loads(value)
    assert name == "touchpoints" and key is not None and sent["customer_id"] == key.decode()
    assert "identifiers" not in sent and b"h1:" not in value
    expected = msgspec.structs.replace(
        decode_within(raw, LIMITS), customer_id=key.decode(), identifiers=[]
    )
    assert decode_within(value, LIMITS) == expected


def test_the_touchpoint_that_links_two_customers_is_judged_on_both_histories() -> None:
    """It waits on the survivor's partition until the absorbed state has arrived there, so
    its snapshot counts both customers' touchpoints, as a replay does."""
    topics = Topics()
    for n in range(3):
        topics.identify(identified(n, n, [("email", "h1:" + "a" * 32)], value=_money(10)))
    for n in range(3, 5):
        topics.identify(identified(n, n, [("phone", "h1:" + "b" * 32)], channel="phone"))
    topics.snapshots.clear()
    linking = identified(9, 9, [("email", "h1:" + "a" * 32), ("phone", "h1:" + "b" * 32)])
    topics.identify(linking)
    # the merge's snapshot (both histories), then the touchpoint's own: never a fragment's
    assert [s["event_count"] for s in topics.snapshots] == [5, 6]
    assert topics.outcomes[-3:] == ["parked", "control", "applied"] and len(topics.merges) == 1


def _with_states(topics: Topics) -> tuple[str, str]:
    """Two customers known by e-mail and by phone: (survivor, absorbed) once linked."""
    topics.identify(identified(1, 0, [("email", "h1:" + "a" * 32)], value=_money(10)))
    topics.identify(identified(2, 1, [("phone", "h1:" + "b" * 32)], channel="phone"))
    first, second = (k for k in topics.live())
    return first, second


def test_what_comes_for_a_customer_waiting_for_a_merge_waits_behind_in_order() -> None:
    topics = Topics()
    survivor, absorbed = _with_states(topics)
    linking = after_merges([absorbed], _under(survivor, 1, 3))
    # the linking touchpoint, a redelivery of it, and the customer's next touchpoint arrive
    # before the absorbed state does
    topics.deliver([(survivor.encode(), linking)])
    topics.deliver([(survivor.encode(), linking)], repeat=True)
    topics.deliver([(survivor.encode(), _under(survivor, 2, 4))])
    assert topics.outcomes[-4:] == ["parked", "parked", "duplicate", "parked"]
    assert topics.engine.states[survivor].event_count == 1  # nothing applied yet
    topics.outcomes.clear()
    topics.deliver([(absorbed.encode(), merge_request(absorbed, survivor, "m-1"))])
    assert topics.outcomes == ["control", "control", "applied", "duplicate", "applied"]
    state = topics.live()[survivor]
    assert state.event_count == 4 and not state.parked
    assert list(state.seen)[-2:] == [event_key("late1"), event_key("late2")]


def test_a_merge_that_brings_no_state_still_releases_what_waits_for_it() -> None:
    topics = Topics()
    survivor, _ = _with_states(topics)
    topics.deliver([(survivor.encode(), after_merges(["ghost"], _under(survivor, 1, 3)))])
    assert topics.outcomes[-1] == "parked"
    topics.deliver([(b"ghost", merge_request("ghost", survivor, "m-1"))])
    assert topics.outcomes[-1] == "applied" and topics.live()[survivor].event_count == 2


def test_records_waiting_on_a_customer_merged_on_follow_it() -> None:
    topics = Topics()
    survivor, absorbed = _with_states(topics)
    topics.deliver([(absorbed.encode(), after_merges(["ghost"], _under(absorbed, 1, 3)))])
    topics.deliver([(absorbed.encode(), _under(absorbed, 2, 4))])
    assert topics.outcomes[-2:] == ["parked", "parked"]
    # the waiting customer is absorbed itself; its records follow its state, in order
    topics.deliver([(absorbed.encode(), merge_request(absorbed, survivor, "m-1"))])
    assert topics.live()[survivor].event_count == 2  # still waiting for "ghost"
    topics.deliver([(b"ghost", merge_request("ghost", survivor, "m-2"))])
    state = topics.live()[survivor]
    assert state.event_count == 4 and not state.parked and absorbed not in topics.live()


def test_a_merge_that_never_comes_holds_a_customer_back_for_a_bounded_number_of_records() -> None:
    topics = Topics()
    topics.engine.park_limit = 3
    survivor, _ = _with_states(topics)
    topics.deliver([(survivor.encode(), after_merges(["never"], _under(survivor, 0, 3)))])
    topics.deliver([(survivor.encode(), _under(survivor, n, 3 + n)) for n in range(1, 4)])
    assert topics.outcomes[-8:] == ["parked"] * 3 + ["released"] + ["applied"] * 4
    state = topics.live()[survivor]
    assert state.event_count == 5 and not state.parked


def test_a_device_that_becomes_shared_leaves_its_customer_in_the_identity_map() -> None:
    """Its map row said whose it was; from then on it says it is shared (and names no one)."""
    graph = IdentityGraph(IdentityRules())
    device = ("device", "h1:" + "d" * 32)
    rows: list[tuple[str, str, str]] = []
    for n in range(8):
        email = ("email", f"h1:{n:032d}")
        raw = identified(n, n, [email, device] if n else [device, email])
        resolved = resolve_record(graph, LIMITS, None, raw, "identify", 0, n)
        rows += [(i, kind, c) for i, kind, c, _ in resolved.mapped if i == "device:" + device[1]]
    first = rows[0]
    assert first[1] == "identifier" and first[2] != ""
    assert rows[-1] == ("device:" + device[1], "shared", "")
    assert "device:" + device[1] in graph.shared


def test_a_customer_whose_first_touchpoint_waits_is_not_judged_silent_meanwhile() -> None:
    topics = Topics()
    topics.deliver([(b"new", after_merges(["ghost"], _under("new", 1, 60)))])
    assert topics.outcomes == ["parked"] and topics.engine.states["new"].event_count == 0
    # the partition's clock moves on by weeks before that touchpoint's time (another
    # customer of the same partition): no snapshot or signal of a customer with no event yet
    part = partition_for("new", 4)
    other = next(f"o{n}" for n in range(100) if partition_for(f"o{n}", 4) == part)
    topics.deliver([(other.encode(), _under(other, n, 7.0 * n)) for n in range(2, 8)])
    assert all(s["customer_id"] != "new" for s in topics.snapshots)
    assert topics.engine.states[other].event_count == 6
    topics.deliver([(b"ghost", merge_request("ghost", "new", "m-1"))])
    assert topics.engine.states["new"].event_count == 1


def test_merge_requests_that_form_a_loop_end_in_dead_letters_not_in_circles() -> None:
    """The resolver never makes a loop; merge requests written by someone else can (A into
    B, B into A). What is sent on through the merged-away keys carries the keys it came
    through, so each kind of record stops at the first key seen twice, kept as a dead
    letter that names the loop. A chain of real merges is still followed to its end."""
    topics = Topics()
    topics.deliver([(b"chain-1", merge_request("chain-1", "chain-2", "m-c1"))])
    topics.deliver([(b"chain-2", merge_request("chain-2", "chain-3", "m-c2"))])
    topics.deliver([(b"chain-1", _under("chain-1", 0, 1))])
    assert topics.live()["chain-3"].event_count == 1 and topics.dead == []

    topics.deliver([(b"loop-a", merge_request("loop-a", "loop-b", "m-1"))])
    # the second request closes the loop: its own state hand-over is the first to go round
    topics.deliver([(b"loop-b", merge_request("loop-b", "loop-a", "m-2"))])
    assert topics.dead == ["merge_loop"]
    topics.deliver([(b"loop-a", _under("loop-a", 1, 1))])
    topics.deliver([(b"loop-a", after_merges(["ghost"], _under("loop-a", 2, 2)))])
    topics.deliver([(b"loop-b", absorb_request("ghost", "loop-b", "m-3", None))])
    assert topics.dead == ["merge_loop"] * 4
    assert "loop-a" not in topics.live() and "loop-b" not in topics.live()


def test_a_sent_on_record_inside_another_is_refused() -> None:
    topics = Topics()
    inner = sent_on(["x"], _under("x", 0, 1))
    topics.deliver([(b"y", sent_on(["z"], inner))])
    assert topics.dead == ["invalid_control_record"]


def test_a_copy_older_than_an_aliases_memory_is_late_there_not_counted_again() -> None:
    """After a crash the resolver sends a batch again, resolved anew from the graph it had
    persisted: a touchpoint of an absorbed customer comes again to their old key, now a
    redirect. Its id may be forgotten there (past the grace, as the state had forgotten it
    before the merge): sent on, the survivor stored it a second time under its own id (a
    second row, outside the first one's key). It is late at the alias, as it was there."""
    email, phone = ("email", "h1:" + "e" * 32), ("phone", "h1:" + "f" * 32)
    topics = Topics()
    topics.identify(identified(0, 0.0, [phone]))  # the survivor: known first
    first = identified(1, 1.0, [email])
    resolved = resolve_record(topics.graph, LIMITS, None, first, "identify", 0, 0)
    ((alias_key, copy),) = [(k, v) for n, k, v in resolved.records if n == "touchpoints"]
    topics.deliver([(alias_key, copy)])
    topics.identify(identified(2, 2.5, [email]))  # a day and a half on: e1's id forgotten
    topics.identify(identified(3, 2.6, [email, phone]))  # the two are one
    alias = alias_key.decode()
    assert topics.engine.states[alias].merged_into
    assert event_key("e1") not in topics.engine.states[alias].seen
    survivor = topics.engine.states[alias].merged_into
    before = topics.engine.states[survivor].event_count

    partition = partition_for(alias, PARTITIONS)
    again = process_record(topics.engine, LIMITS, alias_key, copy, "touchpoints", partition, 99)
    assert again.outcome == "late"
    assert [d.error_kind for d in again.dead_letters] == ["late_event"]
    assert not [r for r in again.records if r[0] == "touchpoints"], "not sent on"
    assert again.row is not None and again.row[1] == alias, "its row keyed as the first"
    assert topics.engine.states[survivor].event_count == before == 4

    # a touchpoint the alias cannot have seen yet (within its memory) still goes on
    fresh = msgspec.json.encode(
        {**orjson.loads(copy), "event_id": "e9", "occurred_at": at(2.2).isoformat()}
    )
    on = process_record(topics.engine, LIMITS, alias_key, fresh, "touchpoints", partition, 100)
    assert on.outcome == "redirected"
