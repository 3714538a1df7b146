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
from typing import Any, Protocol

from touchstream.schemas import InputLimits
from touchstream.streams.identity import IdentityGraph
from touchstream.streams.resolve import Batch, Resolved, resolve_into
from touchstream.streams.runtime.faust_api import store_dict
from touchstream.streams.runtime.produce import BatchProducer, OutRecord, send_until_acked
from touchstream.streams.runtime.tables import END_KEY, StagedTable
from touchstream.streams.runtime.telemetry import Telemetry

log = logging.getLogger("touchstream.identity")

ResolvedBatch = list[tuple[Resolved, int]]  # each record's resolution and its rows' version
GraphRows = list[tuple[str, bytes | None]]  # the graph's changed entries (None: gone)
# the records with rows, and the graph's changed entries with their version
StoreIdentity = Callable[[ResolvedBatch, GraphRows, int], Awaitable[None]]


class GraphCopy(Protocol):
    """The graph's entries kept in ClickHouse (sinks/identity.py)."""

    async def load(self) -> tuple[GraphRows, int]:
        """The entries, and a row version above every row written."""

    async def empty(self) -> bool: ...


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
        copy: GraphCopy | None = None,
        telemetry: Telemetry | None = None,
        end_marker: bool = True,
    ) -> None:
        """`topic_of`: output name (touchpoints, identity, dead_letters) -> topic;
        `graph_table`: a one-partition table of raw bytes (the graph's changelog);
        `copy`: the graph's copy in ClickHouse, for when the changelog is lost."""
        self.new_graph, self.limits, self.table = new_graph, limits, graph_table
        self.producer, self.topic_of, self.store = producer, topic_of, store
        self.copy, self.telemetry, self.end_marker = copy, telemetry, end_marker
        self.graph: IdentityGraph | None = None

    def reset(self) -> None:
        """After a rebalance: the graph is read again from the table when next needed."""
        self.graph = None

    async def _loaded(self) -> IdentityGraph:
        if self.graph is None:
            graph = self.new_graph()
            entries = [
                (k, v) for k, v in store_dict(self.table.table).items() if k != END_KEY and v
            ]
            graph.load(entries)
            if self.copy is not None:
                if not entries:
                    await self._restore(graph, self.copy)
                elif await self.copy.empty():
                    graph.rewrite()  # older than its copy (before migration 012): copied now
            log.info(
                "identity graph loaded: %d customers, %d identifiers, %d aliases",
                len(graph.members),
                len(graph.owner),
                len(graph.alias),
            )
            self.graph = graph
        return self.graph

    async def _restore(self, graph: IdentityGraph, copy: GraphCopy) -> None:
        """An empty changelog while ClickHouse holds a graph: the broker forgot everything
        (the embedded one restarted without its data, or the topics were deleted). Without
        this, identifiers seen again would start new customers beside their old ones."""
        kept, version_base = await copy.load()
        if kept:
            restored = graph.restore(kept, version_base)
            log.warning(
                "the identity graph's changelog is empty while ClickHouse holds %d of its "
                "entries (the broker lost its data, or the topics were deleted): graph "
                "restored from ClickHouse, the identify topic read as a new log",
                restored,
            )

    async def run_batch(self, messages: list[Any]) -> tuple[Coroutine[Any, Any, None], ...]:
        graph = await self._loaded()
        done, base = graph.resolved_through, graph.version_base
        batch = Batch(self.topic_of, base)
        for start in range(0, len(messages), YIELD_EVERY):
            if start:
                await asyncio.sleep(0)
            resolve_into(batch, graph, self.limits, messages[start : start + YIELD_EVERY], done)
        if messages and messages[0].offset <= done:
            skipped = sum(1 for m in messages if m.offset <= done)
            log.info("%d records resolved before a restart skipped (through %d)", skipped, done)
        if messages:
            graph.resolved(max(done, messages[-1].offset))
        changes = graph.take_changes()
        for name, value in changes:
            if value is None:
                del self.table[name]
            else:
                self.table[name] = value
        self._count(batch.outcomes, batch.with_rows)
        version = base + (messages[-1].offset if messages else 0)
        publish = self.publish(batch.outgoing, batch.with_rows, changes, version)
        return publish, self.persist(self.table.take(self.end_marker))

    async def publish(
        self, outgoing: list[OutRecord], with_rows: ResolvedBatch, changes: GraphRows, version: int
    ) -> None:
        """Outputs and rows together: a record on the touchpoints topic may be handled by
        the keyed stage before its merge's row lands, never before the merge is decided.
        The graph's changed entries go to ClickHouse with the rows, its copy there."""
        stored = self.store(with_rows, changes, version)
        await asyncio.gather(send_until_acked(self.producer, outgoing), stored)

    async def persist(self, changes: list[list[OutRecord]]) -> None:
        await send_until_acked(self.producer, *changes)

    def _count(self, outcomes: dict[str, int], with_rows: ResolvedBatch) -> None:
        if self.telemetry is None:
            return
        counts = Counter(outcomes)
        for resolved, _ in with_rows:  # merges and refusals write rows
            counts["merged"] += len(resolved.merges)
            counts.update(f"refused:{r.reason}" for r in resolved.refusals)
        for what, n in counts.items():
            if n:
                self.telemetry.identity.labels(what).inc(n)
