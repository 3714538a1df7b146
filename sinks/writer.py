"""The one way rows get into ClickHouse: batched, idempotent inserts, driven by the runtime.

The processing loop (streams/runtime/pipeline.py, wired in touchstream/app.py) calls
`store_batch` with what a batch produced; the batch's offsets are committed only after it
returns, and it returns only after every insert succeeded (retried with backoff while
ClickHouse is away) or was refused. A batch ClickHouse *refuses* (a schema bug, not an
outage) is spilled to DATA_DIR/sink-rejected/ and logged, so nothing is silently dropped.
No loops of its own: no consumer, no timer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from touchstream.schemas import DeadLetter, Signal
from touchstream.schemas.control import parse_marker
from touchstream.schemas.signal import Snapshot
from touchstream.sinks.clickhouse import ClickHouse, ClickHouseRejected, batch_id
from touchstream.sinks.forget import CUSTOMER_ROWS, forget_rows
from touchstream.streams.offers import Offer
from touchstream.streams.records import Processed
from touchstream.streams.rows import (
    Columns,
    dead_letter_columns,
    metrics_columns,
    offer_columns,
    signal_columns,
    touchpoint_row_columns,
)

log = logging.getLogger("touchstream.sink")

Observe = Callable[[str, int, float], None]  # table, rows, seconds: one batch written


async def write_batch(
    clickhouse: ClickHouse,
    table: str,
    columns: Columns,
    keys: Sequence[str],
    spill_dir: Path,
    observe: Observe | None = None,
) -> float:
    """Insert one batch (retrying while ClickHouse is away); returns seconds taken.
    `keys` name the rows (partition:offset) for the spill file of a refused batch."""
    started = time.perf_counter()
    try:
        await clickhouse.run(clickhouse.insert_columns, table, columns)
    except ClickHouseRejected as error:
        spill_dir.mkdir(parents=True, exist_ok=True)
        path = spill_dir / f"{table}-{batch_id(table, keys)[:16]}.json"
        path.write_bytes(
            orjson.dumps({"table": table, "error": str(error), "columns": columns}, default=str)
        )
        log.error(
            "ClickHouse refused a batch of %d rows for %s (%s); kept in %s",
            len(keys),
            table,
            error,
            path,
        )
    took = time.perf_counter() - started
    if observe is not None:
        observe(table, len(keys), took)
    return took


async def store_dead_letters(
    clickhouse: ClickHouse,
    letters: list[DeadLetter],
    spill_dir: Path,
    observe: Observe | None = None,
) -> None:
    """Dead letters found outside the processing loop (the HTTP ingest's refusals)."""
    keys = [letter.dead_letter_id for letter in letters]
    await write_batch(
        clickhouse, "dead_letters", dead_letter_columns(letters), keys, spill_dir, observe
    )


async def forget_in(clickhouse: ClickHouse, table: str, marker: bytes) -> None:
    """Run a forget request against one table; a refusal is logged, never raised."""
    try:
        await clickhouse.run(forget_rows, clickhouse, table, *parse_marker(marker))
    except (ClickHouseRejected, ValueError, KeyError) as error:
        log.error("forget request on %s failed: %s (request: %s)", table, error, marker[:200])


async def store_batch(
    clickhouse: ClickHouse,
    batch: list[tuple[Processed, int, int]],
    spill_dir: Path,
    observe: Observe | None = None,
) -> None:
    """Insert a batch's touchpoints, the latest metrics of each customer for each day (event
    time) in it (the table keeps the latest per customer anyway, and its daily history the
    last of each day: a backfill's batch spans days), its signals, wow offers and dead
    letters. A forget request splits the batch: rows before it are removed from every table,
    rows after it stay."""
    pending = _Pending()
    for handled, partition, offset in batch:
        pending.add(handled, f"{partition}:{offset}")
        if handled.forget is not None:
            await pending.write(clickhouse, spill_dir, observe)
            marker = handled.forget
            for table in CUSTOMER_ROWS:
                await forget_in(clickhouse, table, marker)
    await pending.write(clickhouse, spill_dir, observe)


class _Pending:
    """Rows of a batch not yet inserted, by table, each with its partition:offset."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.touchpoints: list[tuple[Any, ...]] = []
        self.positions: list[str] = []
        self.latest: dict[tuple[str, date], tuple[Snapshot, str]] = {}
        self.signals: list[tuple[Signal, str]] = []
        self.offers: list[tuple[Signal, str]] = []
        self.dead_letters: list[tuple[DeadLetter, str]] = []

    def add(self, handled: Processed, position: str) -> None:
        if handled.row is not None:
            self.touchpoints.append(handled.row)
            self.positions.append(position)
        for snapshot in handled.snapshots:
            self.latest[snapshot.customer_id, snapshot.as_of.date()] = (snapshot, position)
        self.signals.extend((signal, position) for signal in handled.signals)
        self.offers.extend((offer, position) for offer in handled.offers)
        self.dead_letters.extend((letter, position) for letter in handled.dead_letters)

    async def write(self, clickhouse: ClickHouse, spill_dir: Path, observe: Observe | None) -> None:
        async def put(table: str, columns: Columns, keys: list[str]) -> None:
            await write_batch(clickhouse, table, columns, keys, spill_dir, observe)

        if self.offers:  # before the touchpoints: their day is decided on the touchpoints' time
            offers = offer_columns(Offer(signal) for signal, _ in self.offers)
            await put("wow_offers", offers, _keys(self.offers))
        if self.touchpoints:
            columns = touchpoint_row_columns(self.touchpoints, datetime.now(UTC))
            await put("touchpoints", columns, self.positions)
        if self.latest:
            snapshots = [snapshot for snapshot, _ in self.latest.values()]
            await put("customer_metrics", metrics_columns(snapshots), _keys(self.latest.values()))
        if self.signals:
            signals = [signal for signal, _ in self.signals]
            await put("signals", signal_columns(signals), _keys(self.signals))
        if self.dead_letters:
            letters = [letter for letter, _ in self.dead_letters]
            await put("dead_letters", dead_letter_columns(letters), _keys(self.dead_letters))
        self.clear()


def _keys(rows: Any) -> list[str]:
    return [position for _, position in rows]
