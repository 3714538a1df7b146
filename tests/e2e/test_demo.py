"""The README's main command at a small size: planted cohorts are found, a report is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

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
    assert "top 10 at-risk customers" in printed and "top 10 wow opportunities" in printed
