"""The resolver's rows: the identity map, merges and refused links (migrations/011)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.writer import Observe, store_dead_letters, write_batch
from touchstream.streams.resolve import Resolved
from touchstream.streams.rows import Columns


def _time(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _columns(*names: str) -> Columns:
    return {name: [] for name in names}


def _append(columns: Columns, row: tuple[object, ...]) -> None:
    for name, value in zip(columns, row, strict=True):
        columns[name].append(value)


def identity_columns(batch: Iterable[tuple[Resolved, int]]) -> dict[str, Columns]:
    """Columns per table of what a batch of resolved records (with their offsets) asks."""
    mapped = _columns("identifier", "kind", "customer_id", "since", "version")
    merges = _columns("merge_id", "survivor", "absorbed", "via", "at", "event_id")
    refusals = _columns("refusal_id", "reason", "identifier", "customers", "at", "event_id")
    for resolved, offset in batch:
        for identifier, kind, customer, since in resolved.mapped:
            _append(mapped, (identifier, kind, customer, _time(since), offset))
        for m in resolved.merges:
            _append(
                merges, (m.merge_id, m.survivor, m.absorbed, list(m.via), _time(m.at), m.event_id)
            )
        for r in resolved.refusals:
            text = f"{r.reason}\x1f{r.identifier}\x1f{r.event_id}\x1f{','.join(r.customers)}"
            refusal_id = hashlib.blake2b(text.encode(), digest_size=10).hexdigest()
            row = (refusal_id, r.reason, r.identifier, list(r.customers), _time(r.at), r.event_id)
            _append(refusals, row)
    return {"identity_map": mapped, "identity_merges": merges, "identity_refusals": refusals}


def graph_columns(changes: Iterable[tuple[str, bytes | None]], version: int) -> Columns:
    """The graph's changed entries as rows of identity_graph. An entry goes only when its
    customer is forgotten, and then the forget deletes its rows (sinks/forget.py): a row
    saying it is gone would keep the customer's id."""
    rows = _columns("name", "value", "version")
    for name, value in changes:
        if value is not None:
            _append(rows, (name, value.decode(), version))
    return rows


async def store_identity(
    clickhouse: ClickHouse,
    batch: list[tuple[Resolved, int]],
    changes: list[tuple[str, bytes | None]],
    version: int,
    spill_dir: Path,
    observe: Observe | None = None,
) -> None:
    """Insert a batch's identity rows, the graph's changed entries and the dead letters
    (idempotent: tables collapse repeats)."""
    tables = {**identity_columns(batch), "identity_graph": graph_columns(changes, version)}
    for table, columns in tables.items():
        first = next(iter(columns.values()))
        if first:
            keys = [str(i) for i in range(len(first))]
            await write_batch(clickhouse, table, columns, keys, spill_dir, observe)
    letters = [letter for resolved, _ in batch for letter in resolved.dead_letters]
    if letters:
        await store_dead_letters(clickhouse, letters, spill_dir, observe)


class GraphCopy:
    """The identity graph's entries as ClickHouse keeps them (identity_graph): what the
    resolver restores the graph from when its changelog is lost."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    async def load(self) -> tuple[list[tuple[str, bytes | None]], int]:
        """The entries, and a row version above every row the resolver wrote (for the rows
        of a log that starts afresh)."""

        def read() -> tuple[list[tuple[str, bytes | None]], int]:
            query = self.clickhouse.query
            _, rows = query("SELECT name, value FROM identity_graph FINAL WHERE value != ''")
            _, top = query(
                "SELECT greatest((SELECT max(version) FROM identity_graph), "
                "(SELECT max(version) FROM identity_map))"
            )
            entries = [(n, v if isinstance(v, bytes) else v.encode()) for n, v in rows]
            return entries, int(top[0][0] or 0) + 1

        return await self.clickhouse.run(read)

    async def empty(self) -> bool:
        _, rows = await self.clickhouse.run(
            self.clickhouse.query, "SELECT count() FROM (SELECT 1 FROM identity_graph LIMIT 1)"
        )
        return not rows[0][0]
