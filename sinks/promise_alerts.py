"""Promise calibration from ClickHouse: count promises kept and broken per metric x channel x
team x window of event time (touchpoints FINAL, one row per expectation), let the engine
judge them (streams/calibration.py), and store the alerts not stored yet.

Live, the worker's leader runs `judge` on a timer; after `touchstream replay --clickhouse`
the replay runs it over the whole history. Both judge only windows that event time has left
behind by the grace, from the same rows: the same alerts, with the same ids.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime

from touchstream.schemas.promise import PromiseAlert
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.streams.calibration import (
    PromiseCounts,
    judged_until,
    overcommitted,
    window_seconds,
)
from touchstream.streams.rows import promise_alert_columns
from touchstream.streams.rules import Rules

log = logging.getLogger("touchstream.calibration")

COUNTS_SQL = """
SELECT metric, channel, team,
       intDiv(toUInt64(toUnixTimestamp(occurred_at)), {width:UInt64}) * {width:UInt64} AS window,
       count() AS promises,
       countIf(units < -1) AS broken,
       uniqExact(customer_id) AS customers,
       uniqExactIf(customer_id, units < -1) AS affected,
       quantileExactIf(0.5)(-ifNull(relative, 0), units < -1) AS miss_p50,
       quantileExactIf(0.9)(-ifNull(relative, 0), units < -1) AS miss_p90
FROM touchpoints FINAL
ARRAY JOIN gap_metrics AS metric, gap_units AS units, gap_relative AS relative
WHERE occurred_at >= fromUnixTimestamp64Milli({since_ms:Int64})
  AND occurred_at < fromUnixTimestamp64Milli({until_ms:Int64})
GROUP BY metric, channel, team, window
"""


def watermark(clickhouse: ClickHouse, waiting: Collection[int] = ()) -> float | None:
    """How far event time has got on *every* partition: the least of the partitions' latest
    touchpoints (partitions are written in their own order; one running ahead must not get a
    window judged before the others have written theirs). None while a partition of
    `waiting` (holding records not handled yet: `touchstream.kafka.GroupProgress`)
    has no touchpoint here: a worker that starts on a backlog writes one partition's batch
    before the others'. A partition with no touchpoint that waits for nothing (never any
    traffic, or only clock ticks) does not hold it back; one that falls quiet does, until it
    has traffic again."""
    _, rows = clickhouse.query(
        "SELECT kafka_partition, max(occurred_at) FROM touchpoints GROUP BY kafka_partition"
    )
    latest = {int(partition): at for partition, at in rows}
    unknown = sorted(p for p in waiting if p not in latest)
    if unknown:
        log.info(
            "event time not known yet on partitions %s (records not handled, no touchpoint "
            "stored): the days wait for them",
            unknown,
        )
        return None
    if not latest:
        return None
    least: datetime = min(latest.values())
    return (least if least.tzinfo else least.replace(tzinfo=UTC)).timestamp()


def counts(clickhouse: ClickHouse, since: float, until: float, width: float) -> list[PromiseCounts]:
    params = {"width": int(width), "since_ms": int(since * 1000), "until_ms": int(until * 1000)}
    _, rows = clickhouse.query(COUNTS_SQL, params)
    return [
        PromiseCounts(
            metric=str(metric),
            channel=str(channel),
            team=str(team),
            window_start=float(window),
            promises=int(promises),
            broken=int(broken),
            customers=int(customers),
            customers_affected=int(affected),
            miss_p50=float(p50 or 0.0),
            miss_p90=float(p90 or 0.0),
        )
        for metric, channel, team, window, promises, broken, customers, affected, p50, p90 in rows
    ]


def judge(
    clickhouse: ClickHouse,
    rules: Rules,
    lookback_windows: int | None = 4,
    waiting: Collection[int] = (),
) -> list[PromiseAlert]:
    """Judge the windows event time has left behind (the last `lookback_windows` of them, or
    all with None), store the alerts not stored yet, and return those. `waiting`: as for
    `watermark`."""
    latest = watermark(clickhouse, waiting)
    if latest is None:
        return []
    calibration = rules.calibration
    width = window_seconds(calibration)
    until = judged_until(latest, calibration)
    since = 0.0 if lookback_windows is None else until - lookback_windows * width
    # one window more, for the trend of the first one judged
    found = counts(clickhouse, max(0.0, since - width), until, width)
    alerts = [
        a
        for a in overcommitted(found, calibration, rules.version)
        if a.window_start.timestamp() >= since
    ]
    if not alerts:
        return []
    _, stored = clickhouse.query(
        "SELECT alert_id FROM promise_alerts WHERE alert_id IN {ids:Array(String)}",
        {"ids": [a.alert_id for a in alerts]},
    )
    known = {row[0] for row in stored}
    new = [a for a in alerts if a.alert_id not in known]
    if new:
        clickhouse.insert_columns("promise_alerts", promise_alert_columns(new))
        for alert in new:
            log.warning(
                "promise_overcommitted: %s on %s by %s, %d of %d broken in the week of %s",
                alert.metric,
                alert.channel,
                alert.team or "(no team)",
                alert.broken,
                alert.promises,
                alert.window_start.date().isoformat(),
            )
    return new
