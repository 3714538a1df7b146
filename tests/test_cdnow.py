"""The evaluation on real customers (CDNOW sample, calibration/holdout), run as a test.

The numbers are reported by `make eval` (bench/cdnow.py) and in docs/metrics.md; the test
checks they are computed in the run and that the risk ranks leavers well above chance and
its signal is more precise than flagging everyone. Nothing is tuned on these labels.
"""

from __future__ import annotations

import pytest

from bench.cdnow import auc, evaluate


def test_auc_is_the_probability_a_leaver_ranks_above_a_stayer() -> None:
    assert auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5


@pytest.fixture(scope="module")
def result() -> dict:
    return evaluate()


def test_cdnow_holdout(result: dict) -> None:
    assert result["customers"] == 2357
    scores = result["auc"]
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores["touchstream_risk"] > 0.7, scores
    signal = result["about_to_defect"]
    assert signal["precision"] > result["left_share"], "better than flagging everyone"
    assert 0.0 < signal["recall"] <= 1.0
