"""The company-level verdict, pure: which counts raise promise_overcommitted, with what."""

from __future__ import annotations

from datetime import UTC, datetime

from touchstream.streams.calibration import (
    DAY,
    PromiseCounts,
    alert_id,
    judged_until,
    overcommitted,
    window_start,
)
from touchstream.streams.rules import CalibrationRules

RULES = CalibrationRules()  # weekly windows, 20 %, at least 10 promises, a day of grace
WEEK = 7 * DAY


def counts(window: int, promises: int, broken: int, team: str = "courier-a") -> PromiseCounts:
    return PromiseCounts(
        "delivery_days", "delivery", team, window * WEEK, promises, broken, promises, broken, 1.5, 2
    )


def test_a_type_at_or_over_the_rate_alerts_and_the_window_before_is_its_trend() -> None:
    found = overcommitted(
        [counts(10, 40, 4), counts(11, 40, 8), counts(11, 40, 7, "courier-b")], RULES, "v"
    )
    (alert,) = found
    assert (alert.team, alert.broken, alert.broken_share, alert.previous_share) == (
        "courier-a",
        8,
        0.2,
        0.1,
    )
    assert alert.window_start == datetime.fromtimestamp(11 * WEEK, UTC)
    assert alert.window_end == datetime.fromtimestamp(12 * WEEK, UTC)
    assert [r.factor for r in alert.reasons] == [
        "broken_share",
        "customers_affected",
        "miss_size",
        "trend",
    ]
    assert "courier-a" in alert.suggested_action


def test_too_few_promises_give_no_verdict() -> None:
    assert overcommitted([counts(3, 9, 9)], RULES, "v") == []
    assert len(overcommitted([counts(3, 10, 9)], RULES, "v")) == 1


def test_the_id_is_the_type_the_window_and_the_rules() -> None:
    a, b = counts(5, 20, 10), counts(5, 20, 12)
    assert alert_id(a, "v1") == alert_id(b, "v1")  # recounted after a redelivery: same alert
    assert alert_id(a, "v1") != alert_id(counts(6, 20, 10), "v1")
    assert alert_id(a, "v1") != alert_id(a, "v2")


def test_a_window_is_judged_once_event_time_is_a_grace_past_its_end() -> None:
    start = window_start(100 * WEEK + 3 * DAY, RULES)
    assert start == 100 * WEEK
    assert judged_until(101 * WEEK + 0.5 * DAY, RULES) == 100 * WEEK  # within the grace
    assert judged_until(101 * WEEK + 1.0 * DAY, RULES) == 101 * WEEK
