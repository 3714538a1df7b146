"""Batched, idempotent writes of the pipeline's topics into ClickHouse (Faust agents).

Offsets advance only after ClickHouse acknowledged a batch: `CommittedBatches` commits when
a batch's writes are done, and they are done only after the insert succeeded (retried with
backoff while ClickHouse is away). The body never raises. A batch ClickHouse *refuses* (a
schema bug, not an outage) is spilled to DATA_DIR/sink-rejected/ and logged, so nothing is
silently dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import faust
import orjson
from pydantic import BaseModel

from touchstream.schemas import DeadLetter, Signal
from touchstream.sinks.clickhouse import ClickHouse, ClickHouseRejected, batch_id
from touchstream.sinks.forget import FORGET_PREFIX, forget_rows, parse_marker
from touchstream.sinks.rows import Columns, dead_letter_columns, signal_columns
from touchstream.streams.batches import CommittedBatches
from touchstream.telemetry import Telemetry

log = logging.getLogger("touchstream.sink")


async def write_batch(
    clickhouse: ClickHouse,
    table: str,
    columns: Columns,
    keys: Sequence[str],
    spill_dir: Path,
    telemetry: Telemetry | None = None,
) -> float:
    """Insert one batch (retrying while ClickHouse is away); returns seconds taken."""
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
    if telemetry is not None:
        telemetry.sink_seconds.labels(table).observe(took)
        telemetry.sink_rows.labels(table).inc(len(keys))
    return took


async def _write_events(
    messages: Sequence[Any],
    model: type[BaseModel],
    to_columns: Callable[[list[Any]], Columns],
    table: str,
    clickhouse: ClickHouse,
    spill_dir: Path,
    after_write: Callable[[list[Any]], Awaitable[None]] | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """Write a batch in order; a forget request splits it (rows before it go, later stay)."""
    models: list[Any] = []
    keys: list[str] = []
    for message in messages:
        value = message.value or b""
        if value.startswith(FORGET_PREFIX):
            if models:
                await write_batch(clickhouse, table, to_columns(models), keys, spill_dir, telemetry)
                if after_write is not None:
                    await after_write(models)
                models, keys = [], []
            await forget_in(clickhouse, table, value)
            continue
        try:
            models.append(model.model_validate_json(value))
            keys.append(f"{message.partition}:{message.offset}")
        except ValueError:  # our own topics: only a foreign writer gets here
            log.error(
                "skipping a record on %s that is not a %s (offset %s)",
                message.topic,
                model.__name__,
                message.offset,
            )
    if models:
        await write_batch(clickhouse, table, to_columns(models), keys, spill_dir, telemetry)
        if after_write is not None:
            await after_write(models)


async def forget_in(clickhouse: ClickHouse, table: str, marker: bytes) -> None:
    """Run a forget request against one table; a refusal is logged, never raised."""
    try:
        await clickhouse.run(forget_rows, clickhouse, table, *parse_marker(marker))
    except (ClickHouseRejected, ValueError, KeyError) as error:
        log.error("forget request on %s failed: %s (request: %s)", table, error, marker[:200])


def _sink_agent(
    app: faust.App,
    topic: faust.TopicT,
    model: type[BaseModel],
    to_columns: Callable[[list[Any]], Columns],
    table: str,
    clickhouse: ClickHouse,
    batch_size: int,
    batch_seconds: float,
    spill_dir: Path,
    after_write: Callable[[list[Any]], Awaitable[None]] | None,
    telemetry: Telemetry | None,
) -> None:
    committed = CommittedBatches(app, topic, batch_size, batch_seconds, telemetry)

    async def write(messages: list[Any]) -> tuple[Coroutine[Any, Any, None]]:
        return (
            _write_events(
                messages, model, to_columns, table, clickhouse, spill_dir, after_write, telemetry
            ),
        )

    async def sink() -> None:
        await committed.run(write)

    sink.__name__ = sink.__qualname__ = f"sink_{table}"
    app.task(sink)


def attach_sinks(
    app: faust.App,
    clickhouse: ClickHouse,
    *,
    signals: faust.TopicT,
    dead_letters: faust.TopicT,
    batch_size: int,
    batch_seconds: float,
    spill_dir: Path,
    on_signals: Callable[[list[Any]], Awaitable[None]] | None = None,
    telemetry: Telemetry | None = None,
) -> None:
    """One batch loop per output topic, each writing its own table; signals, once stored, go
    on to `on_signals` (the webhook dispatcher). Metrics rows are written by the processing
    agent itself (streams/app.py: `store_rows`)."""
    for topic, model, to_columns, table in (
        (signals, Signal, signal_columns, "signals"),
        (dead_letters, DeadLetter, dead_letter_columns, "dead_letters"),
    ):
        after = on_signals if table == "signals" else None
        _sink_agent(
            app,
            topic,
            model,
            to_columns,
            table,
            clickhouse,
            batch_size,
            batch_seconds,
            spill_dir,
            after,
            telemetry,
        )
