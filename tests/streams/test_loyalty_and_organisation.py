"""Loyalty beyond satisfaction and the organisation's view, on hand-made histories:
who broke which promise, which promise the company over-commits, and how involvement and
affinity change what a failure means. Replay, no broker (replay = live: tests/e2e)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests import histories
from tests.histories import History
from touchstream.inputs import InputRecord
from touchstream.query_endpoint import readonly_query
from touchstream.replay import ReplayResult, replay, write_to_clickhouse
from touchstream.schemas import Signal
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.promise_alerts import judge
from touchstream.streams.churn import RiskModel
from touchstream.streams.evaluate import evaluate
from touchstream.streams.rules import Rules

RULES = Rules()
QUERIES = (Path(__file__).resolve().parents[2] / "docs" / "queries.md").read_text()


def run(*stories: History) -> ReplayResult:
    events = sorted((e for h in stories for e in h.events), key=lambda e: e["occurred_at"])
    records = [InputRecord(i, orjson.dumps(e)) for i, e in enumerate(events, 1)]
    return replay(records, rules=RULES, model=RiskModel(), partitions=4, source="t")


def defects(result: ReplayResult, customer: str) -> list[Signal]:
    return [
        s for s in result.signals if s.kind.value == "about_to_defect" and s.customer_id == customer
    ]


def doc_query(title: str) -> str:
    """The SQL block under a heading of docs/queries.md."""
    section = QUERIES.split(f"## {title}\n", 1)[1]
    return re.search(r"```sql\n(.*?)```", section, flags=re.S)[1]


def test_the_failing_phone_line_is_named_in_the_signal_and_in_the_calibration_view(
    tmp_path: Path,
) -> None:
    callers = [histories.phone_fails_chat_excels(f"caller-{i}") for i in range(3)]
    result = run(*callers)
    (signal,) = defects(result, "caller-0")
    assert signal.attribution is not None
    assert (signal.attribution.metric, signal.attribution.channel) == ("response_minutes", "phone")
    assert signal.attribution.team == "support-phone"
    broken = next(r for r in signal.reasons if r.factor == "broken_promises")
    assert "response_minutes on phone (team support-phone)" in broken.detail
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    try:
        write_to_clickhouse(result, clickhouse, RULES.wow_margin)
        view = readonly_query(clickhouse, doc_query("Where promises break"), {"weeks": 4})
        rows = {(r[0], r[1], r[2]): r for r in view["rows"]}
        share = view["columns"].index("broken_share")
        assert rows[("response_minutes", "phone", "support-phone")][share] == 1.0
        assert rows[("response_minutes", "chat", "support-chat")][share] == 0.0
        assert view["rows"][0][:3] == ["response_minutes", "phone", "support-phone"]
        _, stored = clickhouse.query(
            "SELECT worst_metric, worst_channel, worst_team FROM signals FINAL "
            "WHERE kind = 'about_to_defect' AND customer_id = 'caller-0'"
        )
        assert stored == [("response_minutes", "phone", "support-phone")]
    finally:
        clickhouse.close()


def test_a_promise_broken_for_30_percent_of_customers_alerts_once_per_window(
    tmp_path: Path,
) -> None:
    result = run(*histories.deliveries_by_team(40, late_share=0.3, weeks=5))
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    try:
        write_to_clickhouse(result, clickhouse, RULES.wow_margin)
        (alert,) = judge(clickhouse, RULES, lookback_windows=None)
        assert (alert.metric, alert.channel, alert.team) == (
            "delivery_days",
            "delivery",
            "courier-west",
        )
        assert alert.promises == 40 and alert.broken == 12 and alert.broken_share == 0.3
        assert alert.customers_affected == 12 and alert.previous_share == 0.0
        assert alert.miss_p50 == 1.5  # three days late on a two-day promise
        assert alert.window_start.isoformat() <= "2026-01-21" <= alert.window_end.isoformat()
        assert "12 of 40 delivery_days promises on delivery by courier-west broken" in (
            alert.reasons[0].detail
        )
        assert judge(clickhouse, RULES, lookback_windows=None) == []  # once per window
        _, stored = clickhouse.query("SELECT alert_id FROM promise_alerts FINAL")
        assert stored == [(alert.alert_id,)]
        # the same history replayed again: the same alert, not a second one
        write_to_clickhouse(run(*histories.deliveries_by_team(40, 0.3, 5)), clickhouse, 1.0)
        assert judge(clickhouse, RULES, lookback_windows=None) == []
    finally:
        clickhouse.close()
    # below the rate: no alert
    quiet = ClickHouse(f"chdb://{tmp_path / 'quiet'}")
    try:
        write_to_clickhouse(run(*histories.deliveries_by_team(40, 0.1, 5)), quiet, 1.0)
        assert judge(quiet, RULES, lookback_windows=None) == []
    finally:
        quiet.close()


def test_an_involved_customer_is_less_at_risk_after_the_same_failure() -> None:
    result = run(
        histories.one_failure("involved", involved=True),
        histories.one_failure("newcomer", involved=False),
    )
    at = {
        name: evaluate(result.states[name], result.states[name].last_seen, RULES, RiskModel())
        for name in ("involved", "newcomer")
    }
    involved, newcomer = at["involved"], at["newcomer"]
    assert involved.metrics.involvement > 0.5 > newcomer.metrics.involvement
    assert involved.metrics.broken_promise_rate == newcomer.metrics.broken_promise_rate
    assert involved.risk.value < newcomer.risk.value
    reasons = {name: contribution for name, _, contribution, _ in involved.risk.factors}
    assert reasons["involvement"] < 0  # said, with its share: the contributions add up
    assert abs(sum(reasons.values()) - involved.risk.value) < 1e-9


def test_a_public_bad_review_weighs_more_than_a_bad_private_rating() -> None:
    private, public = History("private"), History("public")
    for h in (private, public):
        for week in range(6):
            h.order(7 * week, promised=2, actual=2)
    private.add(45, "survey", "email", rating={"scale": "csat_5", "value": 2})
    public.add(45, "review", "social", rating={"scale": "csat_5", "value": 2}, sentiment=-0.7)
    result = run(private, public)
    score = {
        name: evaluate(result.states[name], result.states[name].last_seen, RULES, RiskModel())
        for name in ("private", "public")
    }
    assert score["public"].metrics.affinity < score["private"].metrics.affinity
    assert score["public"].risk.value > score["private"].risk.value


def test_only_an_involved_satisfied_customer_is_invited_to_advocate() -> None:
    newcomer, regular = History("new-fan"), History("old-fan")
    newcomer.order(0, promised=2, actual=2)
    newcomer.add(3, "survey", "email", rating={"scale": "nps_10", "value": 10})
    for week in range(30):
        regular.order(7 * week, promised=2, actual=2, amount=30.0)
        if week % 3 == 0:
            regular.add(7 * week + 3, "survey", "email", rating={"scale": "csat_5", "value": 5})
    regular.add(7 * 30, "inquiry", "chat")
    regular.add(7 * 30 + 1, "survey", "email", rating={"scale": "nps_10", "value": 10})
    result = run(newcomer, regular)
    advocacy = {
        s.customer_id for s in result.signals if "moment:advocacy" in [r.factor for r in s.reasons]
    }
    assert advocacy == {"old-fan"}
