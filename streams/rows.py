"""Wire models -> ClickHouse columns (column-oriented: one list per column, per batch)."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from datetime import datetime
from itertools import repeat
from typing import Any, Final

from touchstream.schemas import DeadLetter, MetricsSnapshot, Signal
from touchstream.schemas.decoder import Touchpoint
from touchstream.schemas.promise import PromiseAlert
from touchstream.schemas.signal import Snapshot
from touchstream.streams.assessment import Assessment, Level, assess
from touchstream.streams.offers import PENDING, Offer

Columns = dict[str, list]


def _columns(names: Iterable[str]) -> Columns:
    return {name: [] for name in names}


def _transposed(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Columns:
    """Rows of values in `names` order -> one list per column (strict: no value dropped)."""
    if not rows:
        return _columns(names)
    return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))


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
    "team",
    "agent",
    "site",
    "attributes",
    "kafka_partition",
    "kafka_offset",
    "payload",
    "ingested_at",
)


_LEVEL_NAMES: Final = {level: level.name for level in Level}


def touchpoint_row(
    event: Touchpoint,
    partition: int,
    offset: int,
    wow_margin: float,
    assessed: Assessment | None = None,
    payload: bytes | None = None,
) -> tuple[Any, ...]:
    """A touchpoint's values in TOUCHPOINT_COLUMNS order, less `ingested_at` (set per
    insert). `assessed`: what the engine already worked out, to save redoing it.
    `payload`: the JSON as received (default: the event's own), kept so a customer's state
    can be rebuilt from ClickHouse by the same engine (touchstream/rebuild.py)."""
    judged = assessed or assess(event, wow_margin)
    rating, value = event.rating, event.value
    gaps = judged.gaps
    # str() of a StrEnum is its value, without the ~0.2 µs of Enum.value's descriptor
    return (
        event.event_id,
        event.customer_id,
        event.occurred_at,
        str(event.channel),
        str(event.kind),
        _LEVEL_NAMES[judged.level],
        judged.quality,
        judged.gap,
        tuple(g.metric for g in gaps),  # tuples: the GC stops tracking them
        tuple(g.units for g in gaps),
        tuple(g.relative for g in gaps),
        str(rating.scale) if rating else "",
        rating.value if rating else None,
        str(event.outcome) if event.outcome else "",
        event.sentiment,
        value.amount if value else None,
        value.currency if value else "",
        event.case_id or "",
        event.source,
        event.team or "",
        event.agent or "",
        event.site or "",
        {k: str(v) for k, v in event.attributes.items()} if event.attributes else {},
        partition,
        offset,
        payload if payload is not None else event.to_json(),
    )


def touchpoint_row_columns(rows: list[tuple[Any, ...]], ingested_at: datetime) -> Columns:
    """Rows of `touchpoint_row` -> columns, all stamped `ingested_at`."""
    columns = _transposed(TOUCHPOINT_COLUMNS[:-1], rows)
    columns["ingested_at"] = [ingested_at] * len(rows)
    return columns


def touchpoint_columns(
    rows: Iterable[tuple[Touchpoint, int, int]],
    ingested_at: datetime,
    wow_margin: float,
    assessments: Iterable[Assessment | None] | None = None,
) -> Columns:
    """Raw touchpoints plus their derived level, quality and gaps."""
    known = repeat(None) if assessments is None else assessments
    return touchpoint_row_columns(
        [
            touchpoint_row(event, partition, offset, wow_margin, assessed)
            for (event, partition, offset), assessed in zip(rows, known, strict=False)
        ],
        ingested_at,
    )


METRIC_COLUMNS = tuple(MetricsSnapshot.model_fields)
_metric_values = operator.attrgetter(*METRIC_COLUMNS)


def metrics_columns(snapshots: Iterable[MetricsSnapshot | Snapshot]) -> Columns:
    """A `Snapshot` is already a row: its fields are the model's, in order (tested)."""
    return _transposed(
        METRIC_COLUMNS,
        [s if isinstance(s, Snapshot) else _metric_values(s) for s in snapshots],
    )


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
    "worst_metric",
    "worst_channel",
    "worst_team",
    "revenue_at_risk",
    "expected_loss",
    "horizon_days",
    "risk_model",
    "team",
    "expected_value",
)


def signal_columns(signals: Iterable[Signal]) -> Columns:
    rows = [
        (
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
            s.attribution.metric if s.attribution else "",
            s.attribution.channel if s.attribution else "",
            s.attribution.team if s.attribution else "",
            s.revenue_at_risk,
            s.expected_loss,
            s.horizon_days,
            s.risk_model,
            s.team or "",
            s.expected_value,
        )
        for s in signals
    ]
    return _transposed(SIGNAL_COLUMNS, rows)


OFFER_COLUMNS = (
    "signal_id",
    "customer_id",
    "raised_at",
    "day",
    "team",
    "moment",
    "score",
    "expected_value",
    "suggested_action",
    "decision",
    "rank",
    "capacity",
    "decided",
    "decided_at",
    "signal",
)


def offer_columns(offers: Iterable[Offer], decided_at: datetime | None = None) -> Columns:
    """Wow offers, pending or decided (`decided_at`: when, for the decided ones)."""
    rows = [
        (
            o.signal.signal_id,
            o.signal.customer_id,
            o.signal.raised_at,
            o.signal.raised_at.date(),
            o.team,
            o.moment,
            o.signal.score,
            o.signal.expected_value,
            o.signal.suggested_action or "",
            o.decision,
            o.rank,
            o.capacity,
            int(o.decision != PENDING),
            None if o.decision == PENDING else decided_at,
            o.signal.model_dump_json(),
        )
        for o in offers
    ]
    return _transposed(OFFER_COLUMNS, rows)


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
    rows = [
        (
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
        for d in letters
    ]
    return _transposed(DEAD_LETTER_COLUMNS, rows)


PROMISE_ALERT_COLUMNS = (
    "alert_id",
    "kind",
    "metric",
    "channel",
    "team",
    "window_start",
    "window_end",
    "promises",
    "broken",
    "broken_share",
    "threshold",
    "customers",
    "customers_affected",
    "miss_p50",
    "miss_p90",
    "previous_share",
    "reason_factors",
    "reason_details",
    "suggested_action",
    "rules_version",
)


def promise_alert_columns(alerts: Iterable[PromiseAlert]) -> Columns:
    rows = [
        (
            a.alert_id,
            a.kind,
            a.metric,
            a.channel,
            a.team,
            a.window_start,
            a.window_end,
            a.promises,
            a.broken,
            a.broken_share,
            a.threshold,
            a.customers,
            a.customers_affected,
            a.miss_p50,
            a.miss_p90,
            a.previous_share,
            [r.factor for r in a.reasons],
            [r.detail for r in a.reasons],
            a.suggested_action,
            a.rules_version,
        )
        for a in alerts
    ]
    return _transposed(PROMISE_ALERT_COLUMNS, rows)
