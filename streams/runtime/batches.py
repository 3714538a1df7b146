"""Batches of a topic whose offsets touchstream commits itself, in order and without holes.

Why not Faust's acks: faust-streaming 0.15 acks the messages a stream *skips* while flow
control is suspended (recovery, rebalance), and when recovery's `perform_seek` resets the
read offset while the fetcher is still handing out records fetched before the seek, the
consumer files the offsets in between as a "gap" and counts them as acked as well. Measured
on the embedded broker after a restart: ~350 offsets per partition never reached the agent
and were committed anyway. So the topics our batch loops read have `acks=False` (and reach
us through `feed.py`, past Faust's streams), and this guard:

- knows, for every assigned partition, the next offset to process (the committed offset,
  or the log start for a new group);
- passes on exactly that offset and the ones after it, in order. A record beyond it means
  records went missing on the way in: it seeks back and waits for them. A hole seen three
  times in a row after seeking is a real one (transaction markers, compaction) and is
  accepted;
- commits the next offset only after the batch's writes are done (outputs acknowledged,
  state flushed, rows in ClickHouse) and every earlier batch's: at-least-once, never past
  unfinished work;
- overlaps the writes of batches with each other and with handling: the handler runs on
  batch N+1 while batch N's outputs and batch N-1's state are acknowledged; each stage of
  the writes goes out strictly in batch order;
- holds a revocation until the batches in hand are written, so a partition's next owner
  does not race this worker's writes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP

from touchstream.streams.runtime.faust_api import commit_offsets, committed_offset
from touchstream.streams.runtime.feed import feed_for
from touchstream.streams.runtime.telemetry import Telemetry

log = logging.getLogger("touchstream.offsets")

# run_batch(records) -> the batch's writes, in stages, none started
Handler = Callable[[list[Any]], Awaitable[Sequence[Coroutine[Any, Any, None]]]]


def _stage_order(
    stages: int, after: Sequence[Sequence[int]] | None = None
) -> list[tuple[int, ...]]:
    """For each of `stages` stages and the commit after them: the batch's own stages it
    waits for. By default a chain (stage k after k-1); the commit waits for every stage."""
    if after is None:
        after = [(k - 1,) if k else () for k in range(stages)]
    if len(after) != stages or any(not 0 <= j < k for k, deps in enumerate(after) for j in deps):
        raise ValueError(f"after: one tuple of earlier stages for each of {stages} stages")
    return [tuple(deps) for deps in after] + [tuple(range(stages))]


SEEK_EVERY_SECONDS = 0.5  # how often a partition that is waiting for its records re-seeks
REAL_HOLE_AFTER = 3  # the same hole seen this many times after seeking is accepted


@dataclass
class _Partition:
    next: int | None = None  # the next offset to process; None until looked up
    committed: int | None = None  # the last offset committed for it
    waiting: bool = False  # records went missing: sought back, waiting for them
    sought_at: float = -SEEK_EVERY_SECONDS
    hole_to: int = -1  # where the last hole jumped to, and how many seeks in a row saw it
    hole_seen: int = 0
    hole_counted: bool = False  # one observation per seek


class Cursors:
    """The next offset of every assigned partition, and what to do with each record. Pure."""

    def __init__(self) -> None:
        self._partitions: dict[Any, _Partition] = {}
        self.assignments = 0  # how many assignments so far: a lookup belongs to one

    def assign(self, tps: Iterable[Any]) -> None:
        """A new assignment: every offset is looked up again (another worker may have
        moved them meanwhile)."""
        self._partitions = {tp: _Partition() for tp in tps}
        self.assignments += 1

    def revoke(self, tps: Iterable[Any]) -> None:
        for tp in tps:
            self._partitions.pop(tp, None)

    def unknown(self, tps: Iterable[Any]) -> set[Any]:
        """Assigned partitions among `tps` whose start offset is still to be looked up."""
        return {tp for tp in tps if (p := self._partitions.get(tp)) and p.next is None}

    def start(self, tp: Any, offset: int, assignment: int | None = None) -> None:
        """Where a partition starts. A lookup that took a rebalance to answer (the
        partition revoked meanwhile, or assigned again: its offset may have moved) is
        dropped: the partition is looked up again when its records come."""
        part = self._partitions.get(tp)
        if part is not None and assignment in (None, self.assignments):
            part.next = offset

    def admit(self, tp: Any, offset: int) -> bool:
        """Process this record now? Only the next offset of a partition of ours."""
        part = self._partitions.get(tp)
        if part is None or part.next is None:  # not ours (any more): its owner reads it
            return False
        if offset < part.next:
            return False  # done before (a redelivery, or a stale fetch)
        if offset > part.next and not self._hole_is_real(tp, part, offset):
            return False
        part.next, part.waiting = offset + 1, False
        return True

    def _hole_is_real(self, tp: Any, part: _Partition, offset: int) -> bool:
        """Only the first jump after each seek counts: records after it in the same run
        (or still in flight from before the seek) say nothing new."""
        if part.hole_counted:
            return False
        part.hole_counted = True
        part.hole_seen = part.hole_seen + 1 if offset == part.hole_to else 1
        part.hole_to = offset
        if part.hole_seen >= REAL_HOLE_AFTER:
            log.info("%s: offsets %d..%d do not exist; going on", tp, part.next, offset - 1)
            part.hole_seen, part.hole_to, part.hole_counted = 0, -1, False
            return True
        if not part.waiting:
            log.warning(
                "%s: got offset %d while %d is next; seeking back for the records between",
                tp,
                offset,
                part.next,
            )
        part.waiting = True
        return False

    def positions(self) -> dict[Any, int]:
        return {tp: p.next for tp, p in self._partitions.items() if p.next is not None}

    def to_commit(self) -> dict[Any, int]:
        return {
            tp: p.next
            for tp, p in self._partitions.items()
            if p.next is not None and p.next != p.committed
        }

    def committed(self, offsets: dict[Any, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._partitions:
                self._partitions[tp].committed = offset

    def seek_targets(self, now: float) -> dict[Any, int]:
        """Partitions waiting for missing records, at most one seek each per interval."""
        targets = {}
        for tp, part in self._partitions.items():
            due = now - part.sought_at >= SEEK_EVERY_SECONDS
            if part.waiting and part.next is not None and due:
                part.sought_at, part.hole_counted = now, False
                targets[tp] = part.next
        return targets


class CommittedBatches:
    """The records of one topic in batches, each committed once its writes are done:
    `await CommittedBatches(app, topic, n, s).run(run_batch)`.

    Records arrive through a `Feed` (streams/runtime/feed.py), not a Faust stream."""

    def __init__(
        self,
        app: faust.App,
        topic: faust.TopicT,
        size: int,
        within: float,
        telemetry: Telemetry | None = None,
        revoke_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.topic = topic.get_topic_name()
        self.size, self.within = size, within
        self.revoke_timeout = revoke_timeout
        self.feed = feed_for(app, topic, high_water=4 * size)
        self.cursors = Cursors()
        self.resumed: dict[int, int | None] = {}  # partition -> committed offset at start
        self._busy = asyncio.Lock()  # held while a batch is handled
        self._in_flight: asyncio.Future[None] | None = None  # the latest batch's commit
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

        async def reseek() -> None:  # a waiting partition may have no traffic to wake us
            if not self._busy.locked():  # else the batch in hand seeks when it is handled
                async with self._busy:
                    await self._seek_waiting()

        reseek.__name__ = reseek.__qualname__ = f"reseek_{self.topic}"
        app.timer(interval=1.0)(reseek)

    async def run(
        self,
        run_batch: Handler,
        stages: int = 1,
        in_flight: int | None = None,
        after: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """Forever: `await run_batch(records)` for each batch of admissible records, one batch
        at a time (the CPU part; it should yield to the loop now and then, so the writes of
        earlier batches move on meanwhile). It returns the batch's writes as `stages`
        coroutines *not yet started* (not tasks or a gather, which start at once). Stage k
        of a batch runs after stage k of the previous batch, and after the batch's own
        stages listed in `after[k]` (default: its stage k-1), so each stage sees the
        batches in order while different stages of consecutive batches overlap with each
        other and with the handling of the next batch. A batch's offsets are committed
        after all its stages and the previous batch's commit. Neither the handler nor a
        stage may raise (it ends the loop). At most `in_flight` batches (default: `stages`)
        are being written while the next one is handled.
        """
        depth = stages if in_flight is None else in_flight
        order = _stage_order(stages, after)
        previous: list[asyncio.Future[None]] = []  # the previous batch's stages, then commit
        writing: deque[asyncio.Future[None]] = deque()
        while True:
            messages = await self.feed.take(self.size, self.within)
            await self.app.flow_control.acquire()  # no work during a rebalance or recovery
            # outside the lock: the lookup needs the group coordinator
            tps = {p: TP(self.topic, p) for p in {m.partition for m in messages}}
            for tp in self.cursors.unknown(tps.values()):
                assignment = self.cursors.assignments
                self.cursors.start(tp, await self._start_offset(tp), assignment)
            async with self._busy:
                admit = self.cursors.admit
                ready = [m for m in messages if admit(tps[m.partition], m.offset)]
                writes = list(await run_batch(ready)) if ready else [None] * stages
                if len(writes) != stages or any(
                    w is not None and inspect.getcoroutinestate(w) != inspect.CORO_CREATED
                    for w in writes
                ):
                    raise TypeError(f"run_batch() must return {stages} coroutines, not started")
                offsets = self.cursors.to_commit()
                await self._seek_waiting()
                previous = self._chain(previous, [*writes, self._commit(offsets)], order)
                self._in_flight = previous[-1]
                writing.append(self._in_flight)
            while len(writing) > depth:
                await writing.popleft()

    @staticmethod
    def _chain(
        previous: list[asyncio.Future[None]],
        stages: list[Coroutine[Any, Any, None] | None],
        order: Sequence[Sequence[int]],
    ) -> list[asyncio.Future[None]]:
        """Start a batch's stages, each after the same stage of the previous batch and after
        the batch's own stages `order[k]` (`_stage_order`)."""

        async def stage(
            same_stage_before: asyncio.Future[None] | None,
            earlier_stages: list[asyncio.Future[None]],
            writes: Coroutine[Any, Any, None] | None,
        ) -> None:
            if same_stage_before is not None:
                await same_stage_before
            for earlier in earlier_stages:
                await earlier
            if writes is not None:
                await writes

        started: list[asyncio.Future[None]] = []
        for k, writes in enumerate(stages):
            before = previous[k] if previous else None
            earlier = [started[j] for j in order[k]]
            started.append(asyncio.ensure_future(stage(before, earlier, writes)))
        return started

    async def _commit(self, offsets: dict[Any, int]) -> None:
        if offsets and await commit_offsets(self.app, offsets):
            self.cursors.committed(offsets)
        self._report_lag()

    def _report_lag(self) -> None:
        if self.telemetry is None:
            return
        consumer = self.app.consumer
        behind = 0
        for tp, offset in self.cursors.positions().items():
            try:
                behind += max(0, (consumer.highwater(tp) or 0) - offset)
            except (AssertionError, KeyError, ValueError):  # not (or no longer) assigned
                continue
        self.telemetry.lag.labels(self.topic).set(behind)

    async def _seek_waiting(self) -> None:
        targets = self.cursors.seek_targets(time.monotonic())
        if targets:
            await self.app.consumer.seek_wait(targets)

    async def _start_offset(self, tp: TP) -> int:
        """The committed offset, or the log start for a new group (`earliest`)."""
        committed = await committed_offset(self.app, tp)
        if committed is not None and committed >= 0:
            self.resumed[tp.partition] = int(committed)
            return int(committed)
        self.resumed[tp.partition] = None  # a new group, or a broker that forgot it
        earliest = await self.app.consumer.earliest_offsets(tp)
        return int(earliest.get(tp) or 0)

    async def _on_assigned(self, app: Any, assigned: Any, **kwargs: Any) -> None:
        self.cursors.assign(tp for tp in assigned if tp.topic == self.topic)

    async def _on_revoked(self, app: Any, revoked: Any, **kwargs: Any) -> None:
        """Wait for the batches in hand: their writes land before the next owner starts."""
        deadline = time.monotonic() + self.revoke_timeout
        try:
            await asyncio.wait_for(self._busy.acquire(), self.revoke_timeout)
        except TimeoutError:
            log.warning("%s: a batch is still being handled at revocation", self.topic)
            return
        try:
            if self._in_flight is not None:
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    await asyncio.wait_for(asyncio.shield(self._in_flight), remaining)
                except TimeoutError:
                    log.warning("%s: a batch is still being written at revocation", self.topic)
            self.cursors.revoke(revoked)
        finally:
            self._busy.release()
