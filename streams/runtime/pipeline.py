"""One batch of touchpoint records -> the engine -> its writes, in three ordered stages.

`run_batch` runs the per-record step (streams/records.py) over the batch and returns, not yet
started, the batch's write stages for `CommittedBatches.run` (`STAGES`, ordered by `AFTER`):

1. `send`: the outputs (signals, snapshots, dead letters) to the broker;
2. `store`: the rows into ClickHouse, then the batch's signals to the webhooks (after they
   are stored: the outbox resends from there);
3. `persist`: the state changelog, then the partition clocks, once the batch's `send` and
   `store` are done.

`send` and `store` each follow their own stage of the previous batch, not each other: a
batch's signals reach the broker as soon as it is handled and the previous batch's outputs
are acknowledged, without waiting for earlier batches' ClickHouse inserts (an embedded
chDB insert costs tens of milliseconds a table, whatever its size).

Where rows go is not known here: `store` and `alerts` are given by the application
(touchstream/app.py), so this module depends on the engine and Faust only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from touchstream.schemas import InputLimits, Signal
from touchstream.streams.engine import Engine
from touchstream.streams.records import Processed, Record, process_records
from touchstream.streams.runtime.produce import BatchProducer, OutRecord, send_until_acked
from touchstream.streams.runtime.tables import StagedTable
from touchstream.streams.runtime.telemetry import Progress

Batch = list[tuple[Processed, int, int]]  # what each record asked for, its partition and offset
Store = Callable[[Batch], Awaitable[None]]
Alerts = Callable[[list[Signal]], Awaitable[None]]
Prepare = Callable[[list[Any]], Awaitable[None]]  # before a batch, given its messages

YIELD_EVERY = 10  # records handled between two turns of the event loop (~1 ms)
STAGES = 3  # send, store, persist
AFTER = ((), (), (0, 1))  # for each stage, the batch's own stages it waits for


class Pipeline:
    def __init__(
        self,
        engine: Engine,
        limits: InputLimits,
        states: StagedTable,
        clocks: StagedTable,
        producer: BatchProducer,
        topic_of: dict[str, str],
        store: Store,
        *,
        alerts: Alerts | None = None,
        prepare: Prepare | None = None,
        progress: Progress | None = None,
        end_marker: bool = True,
    ) -> None:
        """`topic_of`: output name (dead_letters, metrics, signals) -> topic; `prepare`:
        awaited with a batch's partitions before it is handled (the state rebuild)."""
        self.engine, self.limits = engine, limits
        self.states, self.clocks = states, clocks
        self.producer, self.topic_of = producer, topic_of
        self.store, self.alerts, self.prepare = store, alerts, prepare
        self.progress, self.end_marker = progress, end_marker
        self._unstored: deque[Batch] = deque()  # handled, rows not stored yet, in order

    async def run_batch(self, messages: list[Any]) -> tuple[Coroutine[Any, Any, None], ...]:
        """Handle a batch now; returns its writes in three stages, not started (`send`,
        `store`, `persist`). Each stage starts after the same stage of the previous batch (a
        changelog write must not overtake an older one of the same key) and `persist` after
        the batch's own `send` and `store`; the batch's offsets are committed when all are
        done.
        Yields to the loop every YIELD_EVERY records, so earlier batches' writes (acks, the
        ClickHouse insert's result) move on meanwhile."""
        if self.prepare is not None:
            await self.prepare(messages)
        batch: Batch = []
        tables = (self.states, self.clocks)
        for start in range(0, len(messages), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            chunk = messages[start : start + YIELD_EVERY]
            process_records(self.engine, self.limits, chunk, tables, batch)
        records = [record for handled, _, _ in batch for record in handled.records]
        if self.progress is not None:
            self.progress.add(batch, records)
        self._unstored.append(batch)
        return (
            self.send(records),
            self.store_rows(batch),
            self.persist(self.states.take(self.end_marker), self.clocks.take(self.end_marker)),
        )

    async def send(self, records: list[Record]) -> None:
        """The outputs to the broker."""
        topic_of = self.topic_of
        outgoing: list[OutRecord] = [(topic_of[n], None, k, v) for n, k, v in records]
        await send_until_acked(self.producer, outgoing)

    async def store_rows(self, batch: Batch) -> None:
        """The rows into ClickHouse; then the signals to the webhooks. When the inserts fall
        behind, the batches handled meanwhile go in the same insert as this one (their own
        `store_rows` then finds their rows stored): an insert's cost is mostly per table,
        not per row, so the store stage catches up instead of holding every later batch's
        commit back."""
        if any(unstored is batch for unstored in self._unstored):
            # in batch order, earlier batches are stored; one whose stage never ran (its
            # writes cancelled with the loop on a rebalance) goes too, never blocks the rest
            together = list(self._unstored)
            self._unstored.clear()
            await self.store([item for each in together for item in each])
        if self.alerts is not None:
            signals = [signal for handled, _, _ in batch for signal in handled.signals]
            if signals:
                await self.alerts(signals)

    async def persist(self, state: list[list[OutRecord]], clocks: list[list[OutRecord]]) -> None:
        """The state, after the batch's outputs and rows (`send`, `store`): a state on the broker
        is never ahead of what it produced, or a restart would take the events it covers for
        redeliveries and their rows and snapshots would be lost. Every customer's state is
        on the broker before the partition clock says its silence checks are done (the
        changelogs are different topics: one after the other; a crash between them repeats
        checks, which is harmless, instead of skipping them)."""
        await send_until_acked(self.producer, *state)
        await send_until_acked(self.producer, *clocks)
