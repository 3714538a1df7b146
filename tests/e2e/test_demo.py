"""The README's main command at a small size: planted cohorts are found, a report is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from tests.e2e.browser import render
from touchstream.demo import run_demo
from touchstream.settings import Settings

pytestmark = pytest.mark.e2e


def test_demo_finds_the_planted_cohorts_and_writes_the_report(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "demo", app_id="demo-test", web_port=0)
    console = Console(file=(tmp_path / "out.txt").open("w"), width=120)
    summary = run_demo(settings, customers=300, months=4, seed=7, console=console)
    for cohort in ("slipping_then_silent", "recovery"):
        assert summary["cohorts"][cohort]["recall"] >= 0.8, summary["cohorts"]
        assert summary["cohorts"][cohort]["precision"] >= 0.8, summary["cohorts"]
    assert summary["dead_letters"] == 0 and summary["events"] > 5000
    report = Path(summary["report"]).read_text()
    assert report.count("<svg") >= 4 and "signals per day" in report
    assert re.search(r"about_to_defect", report)
    printed = (tmp_path / "out.txt").read_text()
    assert "top 10 at-risk customers" in printed and "top 10 wow offers published" in printed
    # offers within the teams' capacity (8 a day in all by default), the rest kept
    offers = summary["wow_offers"]
    assert offers["published"] == summary["signals"]["wow_opportunity"]
    assert offers["published"] <= 8 * 4 * 31
    assert offers["over_capacity"] > 0 and "over the teams' capacity" in printed
    # the report as a browser shows it: every chart built, the organisation's views in it
    dom, shot, log = render(Path(summary["report"]), tmp_path)
    charts = re.findall(r'<svg[^>]*aria-label="([^"]+)"', dom)
    for title in (
        "signals per day",
        "where promises break",
        "complaint resolution",
        "revenue at risk",
        "came back within 30 days",
    ):
        assert any(title in chart for chart in charts), (title, charts)
    assert "promise types over-committed" in dom and "courier-" in dom
    assert "Uncaught" not in log and "ERROR:CONSOLE" not in log
    assert shot.stat().st_size > 20_000  # a page with charts, not a blank one
