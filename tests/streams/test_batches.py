"""The offset cursors behind CommittedBatches: in order, no holes, commits only what is done;
and its write stages: in batch order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from touchstream.streams.runtime.batches import (
    SEEK_EVERY_SECONDS,
    CommittedBatches,
    Cursors,
    _stage_order,
)
from touchstream.streams.runtime.pipeline import AFTER

TP = ("touchpoints", 0)


def cursors(start: int = 10) -> Cursors:
    c = Cursors()
    c.assign([TP])
    c.start(TP, start)
    return c


def admitted(c: Cursors, offsets: list[int]) -> list[int]:
    return [o for o in offsets if c.admit(TP, o)]


def test_in_order_records_pass_and_the_next_offset_is_committed() -> None:
    c = cursors()
    assert admitted(c, [10, 11, 12]) == [10, 11, 12]
    assert c.to_commit() == {TP: 13}
    c.committed({TP: 13})
    assert c.to_commit() == {}


def test_redeliveries_below_the_next_offset_are_dropped() -> None:
    c = cursors()
    admitted(c, [10, 11])
    assert admitted(c, [10, 11, 12]) == [12]


def test_unassigned_or_unlooked_up_partitions_pass_nothing() -> None:
    c = Cursors()
    assert not c.admit(TP, 0)
    c.assign([TP])
    assert c.unknown([TP, ("other", 1)]) == {TP}
    assert not c.admit(TP, 0)
    c.start(TP, 0)
    c.revoke([TP])
    assert not c.admit(TP, 0)
    assert c.to_commit() == {}


def test_a_start_offset_looked_up_across_a_rebalance_is_dropped() -> None:
    """The lookup awaits the group coordinator: the partition may be revoked meanwhile (a
    sink crashed with a KeyError in the fault suite), or revoked and assigned again."""
    c = Cursors()
    c.assign([TP])
    looked_up_in = c.assignments
    c.revoke([TP])
    c.start(TP, 5, looked_up_in)  # revoked meanwhile: nothing to start, no error
    assert not c.admit(TP, 5)
    c.assign([TP])
    c.start(TP, 5, looked_up_in)  # assigned again: the old answer may be stale
    assert c.unknown([TP]) == {TP} and not c.admit(TP, 5)
    c.start(TP, 7, c.assignments)
    assert c.admit(TP, 7)


def test_a_hole_is_not_skipped_it_seeks_back_and_waits_for_the_records() -> None:
    """What faust did after a restart: records 11..19 never reached the agent."""
    c = cursors()
    assert admitted(c, [10, 20, 21, 22]) == [10]
    assert c.to_commit() == {TP: 11}  # never past the hole
    assert c.seek_targets(now=100.0) == {TP: 11}
    assert c.seek_targets(now=100.0) == {}  # at most once per interval
    assert admitted(c, [23, 24]) == []  # still in flight from before the seek
    assert admitted(c, list(range(11, 25))) == list(range(11, 25))
    assert c.seek_targets(now=200.0) == {}  # no longer waiting
    assert c.to_commit() == {TP: 25}


def test_a_real_hole_is_accepted_after_the_same_jump_is_seen_after_three_seeks() -> None:
    """Offsets that do not exist (transaction markers, compaction) must not stall us."""
    c = cursors()
    now = 0.0
    results = []
    for _ in range(3):
        results.append(admitted(c, [15, 16]))
        now += SEEK_EVERY_SECONDS
        c.seek_targets(now)
    assert results == [[], [], [15, 16]]
    assert c.to_commit() == {TP: 17}


def test_a_changing_jump_is_never_taken_for_a_real_hole() -> None:
    c = cursors()
    now = 0.0
    for jump in (30, 40, 30, 40, 30, 40):
        assert admitted(c, [jump]) == []
        now += SEEK_EVERY_SECONDS
        assert c.seek_targets(now) == {TP: 10}


@given(
    st.lists(st.integers(min_value=0, max_value=60), max_size=200),
)
def test_whatever_arrives_offsets_pass_once_in_order_and_the_commit_follows_the_last(
    arrivals: list[int],
) -> None:
    c = cursors(start=0)
    got = []
    for i, offset in enumerate(arrivals):
        if c.admit(TP, offset):
            got.append(offset)
        c.seek_targets(now=float(i))
    assert got == sorted(set(got))
    commit = c.to_commit().get(TP, 0)
    assert commit == (got[-1] + 1 if got else 0)


CHAIN = ((), (0,), (1,))  # the default: each stage after the batch's previous one


@given(
    st.lists(st.tuples(*[st.integers(0, 3)] * 3), min_size=1, max_size=6),
    st.sampled_from([None, CHAIN, AFTER]),
)
def test_write_stages_run_in_batch_order_and_after_the_batch_s_stages_they_follow(
    delays: list[tuple[int, int, int]], after: tuple[tuple[int, ...], ...] | None
) -> None:
    """Stage k of batch N starts only after stage k of batch N-1 and the stages of batch N
    it follows (`after`; by default stage k-1) have ended, whatever each takes; the commit
    after them all. Stages of different batches do overlap."""
    log: list[tuple[str, int, int]] = []
    order = _stage_order(3, after)
    assert order[:3] == list(after or CHAIN)

    async def stage(batch: int, k: int, ticks: int) -> None:
        log.append(("start", batch, k))
        for _ in range(ticks):
            await asyncio.sleep(0)
        log.append(("end", batch, k))

    async def run() -> None:
        previous: list[asyncio.Future[None]] = []
        for batch, ticks in enumerate(delays):
            stages = [stage(batch, k, t) for k, t in enumerate(ticks)]
            previous = CommittedBatches._chain(previous, [*stages, stage(batch, 3, 0)], order)
        await previous[-1]

    asyncio.run(run())
    at = {entry: i for i, entry in enumerate(log)}
    assert len(at) == 2 * 4 * len(delays)  # every stage and commit ran, once
    for batch in range(len(delays)):
        for k in range(4):
            start = at[("start", batch, k)]
            if batch:
                assert start > at[("end", batch - 1, k)]
            for j in order[k]:
                assert start > at[("end", batch, j)]


def test_a_batch_s_outputs_go_out_while_an_earlier_batch_is_still_being_stored() -> None:
    """The pipeline's order: a slow ClickHouse insert of batch 0 does not hold batch 1's
    signals back, and holds batch 1's rows and every later changelog write."""
    log: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def write(name: str, wait: asyncio.Event | None = None) -> None:
            if wait is not None:
                await wait.wait()
            log.append(name)

        order = _stage_order(3, AFTER)
        stages = ("send", "store", "persist", "commit")
        first = CommittedBatches._chain(
            [], [write(f"{name} 0", release if name == "store" else None) for name in stages], order
        )
        second = CommittedBatches._chain(first, [write(f"{name} 1") for name in stages], order)
        for _ in range(5):
            await asyncio.sleep(0)
        assert log == ["send 0", "send 1"]
        release.set()
        await second[-1]

    asyncio.run(scenario())
    at = {name: i for i, name in enumerate(log)}
    assert len(at) == 8
    assert at["store 0"] < at["persist 0"] < at["commit 0"] < at["commit 1"]
    assert at["store 0"] < at["store 1"] < at["persist 1"] < at["commit 1"]
    assert at["persist 0"] < at["persist 1"]


def test_a_stage_can_only_follow_an_earlier_stage() -> None:
    with pytest.raises(ValueError):
        _stage_order(2, ((1,), ()))
    with pytest.raises(ValueError):
        _stage_order(3, ((), ()))
