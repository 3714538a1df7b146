"""Promise calibration, company level: which promise types (metric x channel x team) the
company breaks too often, window by window of event time. Pure: the counts come from
wherever the touchpoints are (ClickHouse live and after a replay: sinks/promise_alerts.py), so
the same history gives the same alerts, with the same ids."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from touchstream.schemas import Reason
from touchstream.schemas.promise import PromiseAlert
from touchstream.streams.params import DAY
from touchstream.streams.rules import CalibrationRules

ACTION = "fix the promise: promise what {team} delivers on {channel}, or fix the delivery"


@dataclass(frozen=True, slots=True)
class PromiseCounts:
    """One promise type in one window: how many promises, how many broken, by how much."""

    metric: str
    channel: str
    team: str
    window_start: float  # epoch seconds
    promises: int
    broken: int
    customers: int
    customers_affected: int
    miss_p50: float  # of the broken ones, in multiples of the promise
    miss_p90: float

    @property
    def share(self) -> float:
        return self.broken / self.promises if self.promises else 0.0


def window_seconds(rules: CalibrationRules) -> float:
    return rules.window_days * DAY


def window_start(t: float, rules: CalibrationRules) -> float:
    width = window_seconds(rules)
    return math.floor(t / width) * width


def judged_until(watermark: float, rules: CalibrationRules) -> float:
    """The end of the last window that can be judged when event time has reached
    `watermark`: windows ending `grace_days` or more before it."""
    return window_start(watermark - rules.grace_days * DAY, rules)


def alert_id(counts: PromiseCounts, version: str) -> str:
    text = f"{counts.metric}|{counts.channel}|{counts.team}|{counts.window_start}|{version}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def overcommitted(
    counts: list[PromiseCounts], rules: CalibrationRules, version: str
) -> list[PromiseAlert]:
    """The alerts of these counts (each window judged on its own; the window before, when
    given, is the trend)."""
    previous = {(c.metric, c.channel, c.team, c.window_start): c for c in counts}
    width = window_seconds(rules)
    alerts = []
    for c in sorted(counts, key=lambda c: (c.window_start, c.metric, c.channel, c.team)):
        if c.promises < rules.min_promises or c.share < rules.rate:
            continue
        before = previous.get((c.metric, c.channel, c.team, c.window_start - width))
        alerts.append(_alert(c, before, rules, version))
    return alerts


def _alert(
    c: PromiseCounts, before: PromiseCounts | None, rules: CalibrationRules, version: str
) -> PromiseAlert:
    team = c.team or "(no team)"
    reasons = [
        Reason(
            factor="broken_share",
            value=round(c.share, 6),
            contribution=round(c.share, 6),
            detail=f"{c.broken} of {c.promises} {c.metric} promises on {c.channel} by {team} "
            f"broken ({c.share:.0%}; alert at {rules.rate:.0%})",
        ),
        Reason(
            factor="customers_affected",
            value=float(c.customers_affected),
            contribution=0.0,
            detail=f"{c.customers_affected} of {c.customers} customers met a broken promise",
        ),
        Reason(
            factor="miss_size",
            value=round(c.miss_p50, 6),
            contribution=0.0,
            detail=f"broken ones missed by {c.miss_p50:.1f}x the promise (median), "
            f"{c.miss_p90:.1f}x (p90)",
        ),
    ]
    if before is not None:
        reasons.append(
            Reason(
                factor="trend",
                value=round(c.share - before.share, 6),
                contribution=0.0,
                detail=f"{before.share:.0%} broken the window before",
            )
        )
    end = c.window_start + window_seconds(rules)
    return PromiseAlert(
        alert_id=alert_id(c, version),
        metric=c.metric,
        channel=c.channel,
        team=c.team,
        window_start=datetime.fromtimestamp(c.window_start, UTC),
        window_end=datetime.fromtimestamp(end, UTC),
        promises=c.promises,
        broken=c.broken,
        broken_share=min(1.0, c.share),
        threshold=rules.rate,
        customers=c.customers,
        customers_affected=c.customers_affected,
        miss_p50=max(0.0, c.miss_p50),
        miss_p90=max(0.0, c.miss_p90),
        previous_share=None if before is None else min(1.0, before.share),
        reasons=reasons,
        suggested_action=ACTION.format(team=team, channel=c.channel),
        rules_version=version,
    )
