"""The identity resolver's loop: batches of the identify topic -> touchpoints under their
customer, merges, and the graph's changelog.

The identify topic has one partition: the identity graph (streams/identity.py) is one, so
the worker that owns that partition resolves for every worker, and its graph is a Faust table
of one partition (recovered from its changelog like the customer states). Each batch's
writes go in the two ordered stages of `CommittedBatches` (streams/runtime/batches.py):
`publish` (the re-keyed touchpoints, the merge requests, merges on the identity topic, the
rows) and then `persist` (the graph's changed entries). A crash before `persist` resolves
the batch again from the same graph: the same customers, merges and ids (deterministic), and
the keyed stage absorbs the repeats (event ids, merge ids). A crash after it and before the
commit redelivers records the graph has resolved (it persists the last offset it resolved
with its changes): they are skipped, their outputs were published before the graph was.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from touchstream.schemas import InputLimits
from touchstream.streams.identity import IdentityGraph
from touchstream.streams.resolve import Resolved, resolve_record
from touchstream.streams.runtime.faust_api import store_dict
from touchstream.streams.runtime.produce import BatchProducer, OutRecord, send_until_acked
from touchstream.streams.runtime.tables import END_KEY, StagedTable
from touchstream.streams.runtime.telemetry import Telemetry

log = logging.getLogger("touchstream.identity")

ResolvedBatch = list[tuple[Resolved, int]]  # each record's resolution and its offset
StoreIdentity = Callable[[ResolvedBatch], Awaitable[None]]

YIELD_EVERY = 50  # records resolved between two turns of the event loop


class Resolver:
    def __init__(
        self,
        new_graph: Callable[[], IdentityGraph],
        limits: InputLimits,
        graph_table: StagedTable,
        producer: BatchProducer,
        topic_of: dict[str, str],
        store: StoreIdentity,
        *,
        telemetry: Telemetry | None = None,
        end_marker: bool = True,
    ) -> None:
        """`topic_of`: output name (touchpoints, identity, dead_letters) -> topic;
        `graph_table`: a one-partition table of raw bytes (the graph's changelog)."""
        self.new_graph, self.limits, self.table = new_graph, limits, graph_table
        self.producer, self.topic_of, self.store = producer, topic_of, store
        self.telemetry, self.end_marker = telemetry, end_marker
        self.graph: IdentityGraph | None = None

    def reset(self) -> None:
        """After a rebalance: the graph is read again from the table when next needed."""
        self.graph = None

    def _loaded(self) -> IdentityGraph:
        if self.graph is None:
            graph = self.new_graph()
            entries = store_dict(self.table.table).items()
            graph.load((k, v) for k, v in entries if k != END_KEY and v is not None)
            log.info(
                "identity graph loaded: %d customers, %d identifiers, %d aliases",
                len(graph.members),
                len(graph.owner),
                len(graph.alias),
            )
            self.graph = graph
        return self.graph

    async def run_batch(self, messages: list[Any]) -> tuple[Coroutine[Any, Any, None], ...]:
        graph = self._loaded()
        batch: ResolvedBatch = []
        done = graph.resolved_through
        for n, message in enumerate(messages):
            if n and n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if message.offset <= done:  # resolved, persisted and published before a crash
                continue
            resolved = resolve_record(
                graph,
                self.limits,
                message.key,
                message.value,
                message.topic,
                message.partition,
                message.offset,
            )
            batch.append((resolved, message.offset))
        if messages and messages[0].offset <= done:
            skipped = sum(1 for m in messages if m.offset <= done)
            log.info("%d records resolved before a restart skipped (through %d)", skipped, done)
        if messages:
            graph.resolved(max(done, messages[-1].offset))
        for name, value in graph.take_changes():
            if value is None:
                del self.table[name]
            else:
                self.table[name] = value
        self._count(batch)
        return self.publish(batch), self.persist(self.table.take(self.end_marker))

    async def publish(self, batch: ResolvedBatch) -> None:
        """Outputs and rows together: a record on the touchpoints topic may be handled by
        the keyed stage before its merge's row lands, never before the merge is decided."""
        topic_of = self.topic_of
        outgoing: list[OutRecord] = [
            (topic_of[name], None, key, value)
            for resolved, _ in batch
            for name, key, value in resolved.records
        ]
        await asyncio.gather(send_until_acked(self.producer, outgoing), self.store(batch))

    async def persist(self, changes: list[list[OutRecord]]) -> None:
        await send_until_acked(self.producer, *changes)

    def _count(self, batch: ResolvedBatch) -> None:
        if self.telemetry is None:
            return
        counts = Counter(resolved.outcome for resolved, _ in batch)
        for resolved, _ in batch:
            if resolved.merges or resolved.refusals:  # (most have neither)
                counts["merged"] += len(resolved.merges)
                counts.update(f"refused:{r.reason}" for r in resolved.refusals)
        for what, n in counts.items():
            if n:
                self.telemetry.identity.labels(what).inc(n)
