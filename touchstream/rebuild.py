"""State survives the loss of its changelog: rebuilt from ClickHouse by the same engine.

The embedded broker keeps everything in memory: after it restarts, the changelog of the
customer-state table is gone while ClickHouse still holds every touchpoint. Without this,
each customer would start again from nothing, without a word (`event_count` 10 where 20
were seen). So the first time a worker handles a partition (after start or a rebalance,
once Faust's own recovery is done), it asks ClickHouse which customers of that partition it
knows; those without a state are replayed from their stored touchpoints (the JSON as
received, in event-time order) through a fresh `Engine`, exactly as `touchstream replay`
does, and their states and the partition's watermark are written before the batch is
handled. Signals and snapshots of the replay were raised the first time and are dropped.

Not every customer without a state lost it: after a crash, the rows of the batch in hand are
in ClickHouse while its state was never written, and the batch is read again. So when the
group resumes from a committed offset, only rows before it count as history (the later ones
are read again and applied as usual), and a rebuilt state remembers the highest of their
offsets, so a redelivery is known as one. With no committed offset, every row is history:
a new group on the same log (a crash before the first commit) if the batch in hand holds
the very events ClickHouse has at those offsets, and then the offsets are remembered too;
else a broker that forgot everything, and offsets start afresh.

Merged customers (docs/identity.md), when the log is new: an id merged away (an alias in
identity_map) is rebuilt as the redirect a merge leaves, and its touchpoints, wherever their
partition, join its survivor's history, as the merge had put them together. (On the same
log the merge's halves are still there to be read: states are rebuilt as they were.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from touchstream.schemas import TouchpointRejected
from touchstream.schemas.decoder import decode_touchpoint
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import ABSORBED_KEEP, CustomerState
from touchstream.streams.engine import Engine, redirect
from touchstream.streams.rules import Rules

log = logging.getLogger("touchstream.rebuild")

_ANY_TIME = datetime(1900, 1, 1, tzinfo=UTC)  # what was stored was accepted once
_ANY_SIZE = 1 << 30


def replay_history(
    payloads: Iterable[bytes],
    rules: Rules,
    model: RiskModel,
    partitions: int,
    partition: int,
    survivor_of: Mapping[str, str] | None = None,
) -> tuple[dict[str, CustomerState], float | None]:
    """The states (and the partition's watermark) that `payloads`, in order, lead to.
    `survivor_of`: merged-away id -> its customer, whose history its touchpoints join."""
    states: dict[str, CustomerState] = {}
    watermarks: dict[str, float] = {}
    engine = Engine(rules, model, states, watermarks, partitions)
    survivor_of = survivor_of or {}
    for raw in payloads:
        try:
            event = decode_touchpoint(raw, max_bytes=_ANY_SIZE, earliest=_ANY_TIME)
        except TouchpointRejected as rejected:  # accepted when stored; rules changed since
            log.warning("a stored touchpoint no longer validates (%s): skipped", rejected)
            continue
        survivor = survivor_of.get(event.customer_id or "")
        if survivor is not None:
            event = msgspec.structs.replace(event, customer_id=survivor)
        engine.step(event, partition)
    return states, watermarks.get(str(partition))


class StateRebuild:
    """Checks each partition once per assignment; rebuilds the customers it lacks."""

    def __init__(
        self,
        clickhouse: ClickHouse,
        engine: Engine,
        states: Any,  # StagedTable of CustomerState
        watermarks: Any,  # StagedTable of float
        resumed: dict[int, int | None] | None = None,  # CommittedBatches.resumed
    ) -> None:
        self.resumed = {} if resumed is None else resumed
        self.clickhouse = clickhouse
        self.engine = engine
        self.states = states
        self.watermarks = watermarks
        self.checked: set[int] = set()

    def reset(self) -> None:
        """After a rebalance: the partitions now held are checked again."""
        self.checked.clear()

    def resumed_from(self, partition: int) -> int | None:
        """The input partition's committed offset when this worker took it (None: none)."""
        return self.resumed.get(partition)

    async def ensure(self, messages: list[Any]) -> None:
        """Before a batch: rebuild what the partitions it touches lack (once each)."""
        for partition in sorted({m.partition for m in messages} - self.checked):
            await self._partition(partition, [m for m in messages if m.partition == partition])
            self.checked.add(partition)

    async def _same_log(self, partition: int, messages: list[Any]) -> bool:
        """Whether ClickHouse's rows at the offsets of these messages are these messages
        (a group that never committed, on the log the rows came from)."""
        if not messages:
            return False
        offsets = [int(m.offset) for m in messages]
        _, rows = await self.clickhouse.run(
            self.clickhouse.query,
            "SELECT kafka_offset, event_id FROM touchpoints WHERE kafka_partition = {p:UInt16} "
            "AND kafka_offset IN {offsets:Array(UInt64)} LIMIT 1000",
            {"p": partition, "offsets": offsets},
        )
        if not rows:
            return False
        values = {int(m.offset): m.value for m in messages}
        for offset, event_id in rows:
            try:
                if orjson.loads(values[int(offset)] or b"{}").get("event_id") != event_id:
                    return False
            except (orjson.JSONDecodeError, AttributeError):
                return False
        return True

    async def _partition(self, partition: int, messages: list[Any]) -> None:
        started = time.monotonic()
        before = self.resumed_from(partition)
        where = "kafka_partition = {p:UInt16}" + (
            "" if before is None else " AND kafka_offset < {before:UInt64}"
        )
        params = {"p": partition, "before": before or 0}
        _, rows = await self.clickhouse.run(
            self.clickhouse.query,
            f"SELECT DISTINCT customer_id FROM touchpoints WHERE {where}",
            params,
        )
        missing = {row[0] for row in rows if not self.states.has(row[0])}
        if not missing:
            return
        log.warning(
            "partition %d: %d customers in ClickHouse have no state here (the changelog was "
            "lost: embedded broker restarted, or topic deleted); rebuilding them from their "
            "touchpoints",
            partition,
            len(missing),
        )
        same_log = before is not None or await self._same_log(partition, messages)
        # merges as the resolver decided them; on the same log, the keyed stage may not have
        # carried one out yet (its halves are read again after a crash, and do it then)
        survivor_of = {} if same_log else await self.clickhouse.run(self._survivors)
        rebuilt, mark, replayed = await self.clickhouse.run(
            self._history, partition, missing, where, params, same_log, survivor_of
        )
        # the writes join this batch's state writes (on the loop, like every table write)
        self.states.partition = self.watermarks.partition = partition
        members = self.engine.members(partition)
        for customer_id, state in rebuilt.items():
            self.states[customer_id] = state
            if not state.merged_into:
                members.add(customer_id)
        key = str(partition)
        current = self.watermarks.get(key)
        if mark is not None and (current is None or mark > current):
            self.watermarks[key] = mark
        log.info(
            "partition %d: %d customers rebuilt from %d touchpoints in %.1fs",
            partition,
            len(rebuilt),
            replayed,
            time.monotonic() - started,
        )

    def _survivors(self) -> dict[str, str]:
        """(On the ClickHouse thread.) Every id merged away -> the customer it now is."""
        _, rows = self.clickhouse.query(
            "SELECT identifier, customer_id FROM identity_map FINAL WHERE kind = 'alias'"
        )
        return {alias: customer for alias, customer in rows}

    def _history(
        self,
        partition: int,
        missing: set[str],
        where: str,
        params: dict[str, int],
        same_log: bool,
        survivor_of: dict[str, str],
    ) -> tuple[dict[str, CustomerState], float | None, int]:
        """(On the ClickHouse thread.) The missing customers' states, the partition's
        watermark their history reaches, and how many touchpoints were replayed. A missing
        id merged away gets the redirect to its customer; a missing customer's history
        holds the touchpoints of the ids merged into it (from any partition)."""
        redirects = {c: survivor_of[c] for c in missing if c in survivor_of}
        survivors = missing - redirects.keys()
        joining = [alias for alias, customer in survivor_of.items() if customer in survivors]
        _, rows = self.clickhouse.query(
            "SELECT customer_id, payload, kafka_offset FROM touchpoints FINAL "
            f"WHERE ({where}) OR customer_id IN {{joining:Array(String)}} "
            "OR customer_id IN {redirected:Array(String)} "
            "ORDER BY occurred_at, event_id",
            {**params, "joining": joining, "redirected": sorted(redirects)},
        )
        owner = {alias: survivor_of[alias] for alias in joining}
        mine = [
            (customer, payload)
            for customer, payload, _ in rows
            if owner.get(customer, customer) in survivors
        ]
        last_offset: dict[str, int] = {}
        if same_log:  # offsets of the log being read: a redelivery must be known as one
            for customer, _, offset in rows:
                if customer in survivors:
                    last_offset[customer] = max(last_offset.get(customer, -1), int(offset))
        blank = {customer for customer, payload in mine if not payload}
        if blank:
            log.error(
                "partition %d: %d customers have touchpoints stored before payloads were kept "
                "(migration 005); they start again from their next event",
                partition,
                len(blank),
            )
        kept = [p if isinstance(p, bytes) else p.encode() for _, p in mine if p]
        rebuilt, mark = replay_history(
            kept, self.engine.rules, self.engine.model, self.engine.partitions, partition, owner
        )
        for customer, offset in last_offset.items():
            if customer in rebuilt:
                rebuilt[customer].last_offset = offset
        states = {c: s for c, s in rebuilt.items() if c in survivors}
        for customer, state in states.items():
            merged = [a for a in joining if owner[a] == customer]
            state.absorbed = sorted(merged)[-ABSORBED_KEEP:]
        # a redirect remembers the ids its own touchpoints left, as the one a merge leaves
        # does (streams/engine.py `redirect`): a copy the resolver sends again is known there
        own = [
            p if isinstance(p, bytes) else p.encode() for c, p, _ in rows if c in redirects and p
        ]
        before_merge, _ = replay_history(own, self.engine.rules, self.engine.model, 1, 0)
        for alias, customer in redirects.items():
            states[alias] = redirect(alias, customer, before_merge.get(alias))
        return states, mark, len(kept)
