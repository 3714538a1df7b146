"""The evaluation on real customers (`make eval`, bench/eval.py), one data set run as a test.

The CDNOW sample, calibration to 1997-09-30, holdout to 1998-06-30: the risk model is learned
from the calibration period only, through the live engine; the holdout is only read to score.
The test checks the numbers are computed in the run, and what the closing notes claim of this
set: the risk ranks leavers above every baseline of the same run and beats the base rate's
Brier score. Nothing is tuned on these labels.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.eval import DATA_SETS, auc, backtest, evaluate, reliability, verdicts


def test_auc_is_the_probability_a_leaver_ranks_above_a_stayer() -> None:
    assert auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5


def test_reliability_bins_are_deciles_of_the_prediction() -> None:
    p = np.linspace(0, 1, 100)
    table = reliability(p, p > 0.5)
    assert [d["customers"] for d in table] == [10] * 10
    assert table[0]["observed"] == 0.0 and table[-1]["observed"] == 1.0


def test_the_backtest_reads_nothing_past_the_calibration_period() -> None:
    for data in (DATA_SETS["cdnow_sample"], DATA_SETS["cdnow_master"]):  # in every checkout
        inner = backtest(data)
        first = min(day for _, day, _ in data.read())
        assert first < inner.calibration_end < inner.holdout_end == data.calibration_end
        assert (inner.holdout_end - inner.calibration_end) <= (
            data.holdout_end - data.calibration_end
        )
        assert max(day for _, day, _ in inner.read()) < data.calibration_end


@pytest.fixture(scope="module")
def result() -> dict:
    return evaluate(DATA_SETS["cdnow_sample"])


def test_cdnow_sample_holdout(result: dict) -> None:
    assert result["customers"] == 2357 and result["horizon_days"] == 273
    assert result["model"]["learned"], "2,357 customers are enough history to learn from"
    scores = result["auc"]
    baselines = {k: v for k, v in scores.items() if k != "touchstream_risk"}
    assert set(baselines) == {"recency_days", "twice_gap_ratio", "bgnbd", "pareto_nbd"}
    assert scores["touchstream_risk"] > max(baselines.values()), scores
    assert verdicts(result)["brier_below_base_rate"]
    signal = result["flags"]["about_to_defect"]
    assert signal["precision"] > result["left_share"], "better than flagging everyone"
    assert signal["recall"] >= 0.5
