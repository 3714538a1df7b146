"""Signals judged as a customer-success manager would, on hand-made histories (replay = live).

One test per case: what happened before these rules, and what is expected, is in the issue
"Signals that are true for real customers" and in docs/metrics.md.
"""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from tests import histories
from tests.histories import History, at
from tests.streams.builders import event_of
from touchstream.inputs import InputRecord
from touchstream.replay import ReplayResult, replay
from touchstream.schemas import Severity, Signal
from touchstream.streams.assessment import Level, assess
from touchstream.streams.churn import RiskModel
from touchstream.streams.rules import Rules

RULES = Rules()


def run(history: History, silent_days: float = 0.0) -> ReplayResult:
    """The replay, with event time moved `silent_days` past the last event (the timer)."""
    records = [InputRecord(i, orjson.dumps(e)) for i, e in enumerate(history.events, 1)]
    as_of = at(history.last_day + silent_days) if silent_days else None
    return replay(records, rules=RULES, model=RiskModel(), partitions=4, source="t", as_of=as_of)


def of_kind(result: ReplayResult, kind: str) -> list[Signal]:
    return [s for s in result.signals if s.kind.value == kind]


def top_factor(signal: Signal) -> str:
    return signal.reasons[0].factor


def test_a_steady_customer_who_falls_silent_is_raised_once_their_rhythm_has_lapsed() -> None:
    h = histories.steady_then_silent()
    result = run(h, silent_days=180)
    defects = of_kind(result, "about_to_defect")
    assert len(defects) == 1, "raised once, then held (hysteresis), not every day"
    signal = defects[0]
    assert signal.trigger == "timer" and top_factor(signal) == "lapse"
    silent_for = (signal.raised_at - at(h.last_day)).days
    assert 14 <= silent_for <= 42, f"a weekly customer, raised after {silent_for} days"
    # raised once past their rhythm, when P(leave) is ~0.8 for a valuable regular
    assert signal.severity in (Severity.high, Severity.critical)
    lapse = next(r for r in signal.reasons if r.factor == "lapse")
    assert lapse.contribution > 0.4 and signal.metrics.p_alive < 0.6
    assert "within 90 days" in lapse.detail and "default model" in lapse.detail
    assert signal.horizon_days == 90 and signal.risk_model == "default"
    assert signal.expected_loss == pytest.approx(signal.score * signal.revenue_at_risk)
    # on the channel they buy on, not the delivery their promises were judged on
    assert signal.suggested_action.startswith("personal check-in on web:")
    # purchase-only data works too: no promises, no ratings
    plain = History("plain")
    for week in range(12):
        plain.add(7 * week, value={"amount": 30.0, "currency": "EUR"})
    assert of_kind(run(plain, silent_days=180), "about_to_defect")


def test_an_open_complaint_past_its_sla_raises_on_its_own() -> None:
    h = histories.unresolved_complaint()
    result = run(h, silent_days=150)
    defects = of_kind(result, "about_to_defect")
    assert defects, "a complaint open for months must raise"
    first = defects[0]
    opened = at(43)
    sla = timedelta(days=RULES.risk.complaint_sla_days)
    assert opened + sla <= first.raised_at <= opened + sla + timedelta(days=2)
    assert top_factor(first) == "open_complaints"


def test_three_broken_promises_in_a_row_raise_at_the_third() -> None:
    h, late = histories.three_late_deliveries()
    defects = of_kind(run(h, silent_days=60), "about_to_defect")
    assert defects[0].trigger_event_id == late[2], "at the third consecutive broken promise"
    assert top_factor(defects[0]) == "broken_promises"
    assert defects[0].metrics.consecutive_misses == 3
    assert defects[0].severity in (Severity.high, Severity.critical)


def _quality(promised: float, actual: float) -> float:
    event = event_of(histories.miss_of(promised, actual, "q").events[-1], at(10_000))
    judged = assess(event)
    assert judged.quality is not None
    return judged.quality


def test_the_size_of_a_miss_counts_and_a_loss_outweighs_a_gain() -> None:
    five_x, two_x = _quality(1, 5), _quality(1, 2)
    surprise = _quality(5, 1)  # promised 5 days, came in 1
    assert five_x <= -0.95 and two_x < 0
    assert five_x < two_x - 0.2, "a 5x miss is much worse than a 2x miss"
    assert -five_x > surprise, "worse than a pleasant surprise of that size is good"
    big = run(histories.miss_of(1, 5, "big")).final[0]
    small = run(histories.miss_of(1, 2, "small")).final[0]
    assert big.worst_recent_miss > 3.5 > small.worst_recent_miss > 0.5
    assert big.risk_score > small.risk_score


def test_a_broken_promise_is_never_cancelled_by_earlier_pleasant_surprises() -> None:
    final = run(histories.early_then_late()).final[0]
    assert final.expectation_gap > 0, "the plain mean gap is cancelled out..."
    assert final.broken_promise_rate > 0 and final.consecutive_misses == 1, "...the loss is not"
    on_time = run(histories.early_then_on_time())
    last = event_of(histories.early_then_on_time().events[-1], at(10_000))
    assert assess(last).level is Level.met  # on time is a promise kept
    assert on_time.final[0].broken_promise_rate == 0


def test_a_steady_customer_gets_each_real_moment_not_one_wow_for_life() -> None:
    result = run(histories.steady_every_promise_met(weeks=30))
    wows = of_kind(result, "wow_opportunity")
    moments = [r.factor for s in wows for r in s.reasons if r.factor.startswith("moment:")]
    assert moments.count("moment:milestone") == 3, "the 5th, 10th and 25th purchase"
    assert all(s.severity in (Severity.low, Severity.medium) for s in wows), "never pages"
    assert not of_kind(result, "about_to_defect")


def test_no_wow_on_top_of_an_erratic_service() -> None:
    result = run(histories.erratic_deliveries(weeks=14))
    assert not of_kind(result, "wow_opportunity")
    assert result.final[0].broken_promise_rate > 0.3


def test_a_fast_fix_after_a_complaint_is_a_recovery_moment() -> None:
    h, fixed = histories.fast_complaint_fix()
    wows = of_kind(run(h), "wow_opportunity")
    recovery = [s for s in wows if s.trigger_event_id == fixed]
    assert recovery, [(s.trigger_event_id, s.reasons) for s in wows]
    assert any(r.factor == "moment:service_recovery" for r in recovery[0].reasons)


def test_the_silence_timer_keeps_the_metrics_up_to_date() -> None:
    h = histories.steady_then_silent()
    result = run(h, silent_days=60)
    timer_snapshots = [s for s in result.history if s.as_of > at(h.last_day)]
    assert len(timer_snapshots) >= 3, "the risk of a silent customer moves: so do its rows"
    risks = [s.risk_score for s in timer_snapshots]
    assert risks == sorted(risks) and risks[-1] > 0.5
    raised = of_kind(result, "about_to_defect")[0]
    assert any(s.as_of == raised.raised_at for s in timer_snapshots)


def test_a_slow_or_reopened_resolution_counts_against_the_company() -> None:
    def complaint_history(resolve_after_days: float, reopen: bool) -> History:
        h = History(f"slow-{resolve_after_days}-{reopen}")
        for week in range(6):
            h.order(7 * week, promised=2, actual=2)
        h.add(43, kind="complaint", channel="phone", case_id="c-1")
        h.add(43 + resolve_after_days, kind="complaint_resolved", case_id="c-1", outcome="success")
        if reopen:
            h.add(47, kind="complaint", channel="phone", case_id="c-1")
        return h

    fast = run(complaint_history(0.2, reopen=False))
    slow = run(complaint_history(6.0, reopen=False))
    reopened = run(complaint_history(0.2, reopen=True))
    assert fast.final[0].broken_promise_rate == 0
    assert slow.final[0].broken_promise_rate > 0 and slow.final[0].consecutive_misses == 1
    assert not [s for s in of_kind(slow, "wow_opportunity") if "recovery" in str(s.reasons)]
    state = next(iter(reopened.states.values()))
    assert state.reopened == 1 and reopened.final[0].broken_promise_rate > 0
    assert next(iter(slow.states.values())).slow_resolutions == 1
