"""The committed benchmark results stay readable by `python -m bench.compare`."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compare import ROWS, main

RESULTS = sorted((Path(__file__).parent.parent / "bench" / "results").glob("*.json"))


def test_there_are_committed_results() -> None:
    assert len(RESULTS) >= 2


def test_every_committed_result_renders_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    main(RESULTS)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + len(ROWS)
    for line, (name, _) in zip(lines[2:], ROWS, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == name and len(cells) == 1 + len(RESULTS)
        assert all(cells[1:]) and not any("nan" in cell for cell in cells[1:])
