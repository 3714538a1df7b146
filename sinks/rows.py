"""Wire models -> ClickHouse columns (column-oriented: one list per column, per batch)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas import DeadLetter, MetricsSnapshot, Signal, TouchpointEvent
from streams.touchpoint import assess

Columns = dict[str, list]


def _columns(names: Iterable[str]) -> Columns:
    return {name: [] for name in names}


def _append(out: Columns, names: tuple[str, ...], values: tuple) -> None:
    for name, value in zip(names, values, strict=True):
        out[name].append(value)


TOUCHPOINT_COLUMNS = (
    "event_id",
    "customer_id",
    "occurred_at",
    "channel",
    "kind",
    "level",
    "quality",
    "gap",
    "gap_metrics",
    "gap_units",
    "gap_relative",
    "rating_scale",
    "rating_value",
    "outcome",
    "sentiment",
    "amount",
    "currency",
    "case_id",
    "source",
    "attributes",
    "kafka_partition",
    "kafka_offset",
    "ingested_at",
)


def touchpoint_columns(
    rows: Iterable[tuple[TouchpointEvent, int, int]], ingested_at: datetime, wow_margin: float
) -> Columns:
    """Raw touchpoint plus its derived level, quality and gaps."""
    out = _columns(TOUCHPOINT_COLUMNS)
    for event, partition, offset in rows:
        judged = assess(event, wow_margin)
        values = (
            event.event_id,
            event.customer_id,
            event.occurred_at,
            event.channel.value,
            event.kind.value,
            judged.level.name,
            judged.quality,
            judged.gap,
            [g.metric for g in judged.gaps],
            [g.units for g in judged.gaps],
            [g.relative for g in judged.gaps],
            event.rating.scale.value if event.rating else "",
            event.rating.value if event.rating else None,
            event.outcome.value if event.outcome else "",
            event.sentiment,
            event.value.amount if event.value else None,
            event.value.currency if event.value else "",
            event.case_id or "",
            event.source,
            {k: str(v) for k, v in event.attributes.items()},
            partition,
            offset,
            ingested_at,
        )
        _append(out, TOUCHPOINT_COLUMNS, values)
    return out


METRIC_COLUMNS = tuple(MetricsSnapshot.model_fields)


def metrics_columns(snapshots: Iterable[MetricsSnapshot]) -> Columns:
    out = _columns(METRIC_COLUMNS)
    for snapshot in snapshots:
        for name in METRIC_COLUMNS:
            out[name].append(getattr(snapshot, name))
    return out


SIGNAL_COLUMNS = (
    "signal_id",
    "kind",
    "customer_id",
    "score",
    "severity",
    "raised_at",
    "trigger",
    "trigger_event_id",
    "channel",
    "suggested_action",
    "reason_factors",
    "reason_values",
    "reason_contributions",
    "reason_details",
    "consistency",
    "expectation_gap",
    "p_alive",
    "overdue_ratio",
    "metrics_json",
    "rules_version",
)


def signal_columns(signals: Iterable[Signal]) -> Columns:
    out = _columns(SIGNAL_COLUMNS)
    for s in signals:
        values = (
            s.signal_id,
            s.kind.value,
            s.customer_id,
            s.score,
            s.severity.value,
            s.raised_at,
            s.trigger,
            s.trigger_event_id or "",
            s.channel or "",
            s.suggested_action or "",
            [r.factor for r in s.reasons],
            [r.value for r in s.reasons],
            [r.contribution for r in s.reasons],
            [r.detail for r in s.reasons],
            s.metrics.consistency,
            s.metrics.expectation_gap,
            s.metrics.p_alive,
            s.metrics.overdue_ratio,
            s.metrics.model_dump_json(),
            s.rules_version,
        )
        _append(out, SIGNAL_COLUMNS, values)
    return out


DEAD_LETTER_COLUMNS = (
    "dead_letter_id",
    "received_at",
    "source",
    "kafka_partition",
    "kafka_offset",
    "error_kind",
    "error_fields",
    "error_types",
    "reason",
    "payload",
    "payload_bytes",
    "truncated",
)


def dead_letter_columns(letters: Iterable[DeadLetter]) -> Columns:
    out = _columns(DEAD_LETTER_COLUMNS)
    for d in letters:
        values = (
            d.dead_letter_id,
            d.received_at,
            d.source,
            d.partition,
            d.offset,
            d.error_kind,
            [e.loc for e in d.errors],
            [e.type for e in d.errors],
            d.reason,
            d.payload,
            d.payload_bytes,
            d.truncated,
        )
        _append(out, DEAD_LETTER_COLUMNS, values)
    return out
