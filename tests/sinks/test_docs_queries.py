"""Every SQL block of docs/queries.md runs against the migrated schema with real data."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from tests import histories, scenarios
from touchstream.cli import LONG_TEXTS
from touchstream.generator import generate
from touchstream.inputs import InputRecord
from touchstream.query_endpoint import readonly_query
from touchstream.replay import replay, write_to_clickhouse
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.forget import CUSTOMER_ROWS, forget_rows
from touchstream.sinks.promise_alerts import judge
from touchstream.sinks.queries import CUSTOMER_TOUCHPOINTS, SIGNALS, VIEWS, WHY
from touchstream.streams.churn import RiskModel
from touchstream.streams.rules import Rules
from touchstream.tables import show

DOC = Path(__file__).resolve().parents[2] / "docs" / "queries.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> ClickHouse:
    _, events = generate(customers=120, months=4, seed=9)
    # and a courier team that breaks half its promises one week: a promise_overcommitted alert
    overcommitted = [e for h in histories.deliveries_by_team(20, late_share=0.5) for e in h.events]
    events = sorted(events + overcommitted, key=lambda e: e["occurred_at"]) + scenarios.story()
    records = [InputRecord(i, orjson.dumps(e)) for i, e in enumerate(events, 1)]
    records.append(InputRecord(len(records) + 1, b'{"broken": '))
    result = replay(records, rules=Rules(), model=RiskModel(), partitions=4, source="doc")
    clickhouse = ClickHouse(f"chdb://{tmp_path_factory.mktemp('docs') / 'ch'}")
    write_to_clickhouse(result, clickhouse, 1.0)
    assert judge(clickhouse, Rules(), lookback_windows=None)
    requested = datetime.now(UTC)
    removed = {t: forget_rows(clickhouse, t, scenarios.STEADY, requested) for t in CUSTOMER_ROWS}
    assert removed["touchpoints"] > 0 and removed["customer_metrics"] == 1
    yield clickhouse
    clickhouse.close()


def test_the_doc_has_the_promised_queries() -> None:
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split("\n")[1][:40])
def test_query_runs_and_returns_rows(filled: ClickHouse, block: str) -> None:
    params_line = re.search(r"-- params: (\{.*\})", block)
    assert params_line, "every query documents its parameters"
    result = readonly_query(filled, block, json.loads(params_line[1]))
    assert result["rows"], "the sample data answers every question"
    assert len(result["columns"]) == len(result["rows"][0])


@pytest.mark.parametrize("title", list(VIEWS))
def test_the_ops_views_in_code_are_the_documented_ones(title: str) -> None:
    """The demo report and the dashboard run these; the doc shows them: one text."""
    section = DOC.read_text().split(f"## {title}\n", 1)[1]
    assert re.search(r"```sql\n(.*?)```", section, flags=re.S)[1] == VIEWS[title].lstrip("\n")


def test_signals_and_a_customers_touchpoints_read_at_80_columns(filled: ClickHouse) -> None:
    """`touchstream signals` and `customer` as an 80-column terminal shows them: ids whole,
    scores and reasons readable, one sign a contribution."""
    params = {"kind": "", "since": datetime(1970, 1, 1), "min_score": 0.0, "limit": 50}
    found = readonly_query(filled, SIGNALS, params)
    _, signed = filled.query(
        f"SELECT {WHY} FROM (SELECT ['lapse', 'inconsistency', 'involvement'] AS "
        "reason_factors, [0.42, 0.001, -0.07] AS reason_contributions)"
    )
    assert signed == [("lapse +0.42; involvement -0.07",)]  # one sign; no "+0" noise
    customer = found["rows"][0][found["columns"].index("customer_id")]
    touched = readonly_query(filled, CUSTOMER_TOUCHPOINTS, {"ids": [customer], "limit": 20})
    assert touched["rows"]
    shown = {}
    for name, result in (("signals", found), ("touchpoints", touched)):
        console = Console(file=io.StringIO(), width=80, color_system=None)
        show(console, result["columns"], result["rows"], details=LONG_TEXTS)
        shown[name] = console.file.getvalue()
        assert max(len(line) for line in shown[name].splitlines()) <= 80
        assert "…" not in shown[name]
    for row in found["rows"]:  # every signal's customer and score, whole
        assert row[2] in shown["signals"] and str(row[3]) in shown["signals"]
    for row in touched["rows"]:  # every touchpoint's channel and kind
        assert f"{row[1]}" in shown["touchpoints"] and f"{row[2]}" in shown["touchpoints"]
