from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.streams.builders import delivery, touch
from touchstream.schemas import Expectation
from touchstream.streams.assessment import GAP_CAP, Level, assess, expectation_gap


def exp(promised: float, actual: float, direction: str, tolerance: dict | None = None):
    data = {
        "metric": "m",
        "unit": "u",
        "promised": promised,
        "actual": actual,
        "direction": direction,
    }
    if tolerance:
        data["tolerance"] = tolerance
    return Expectation.model_validate(data)


def test_lower_is_better_late_is_negative() -> None:
    gap = expectation_gap(exp(2, 3, "lower_is_better", {"kind": "absolute", "value": 0.5}))
    assert gap.units == pytest.approx(-2.0)
    assert gap.relative == pytest.approx(-0.5)


def test_higher_is_better_more_is_positive_relative_tolerance() -> None:
    gap = expectation_gap(exp(100, 115, "higher_is_better"))  # 10 % of 100 = 10 per unit
    assert gap.units == pytest.approx(1.5)
    assert gap.relative == pytest.approx(0.15)


def test_zero_promise_with_absolute_tolerance() -> None:
    # promised 0 minutes late, was 30 minutes late, 15 minutes tolerance (airline on-time)
    gap = expectation_gap(exp(0, 30, "lower_is_better", {"kind": "absolute", "value": 15}))
    assert gap.units == pytest.approx(-2.0)
    assert gap.relative is None


def test_gap_is_capped() -> None:
    gap = expectation_gap(exp(1, 1000, "lower_is_better", {"kind": "absolute", "value": 0.1}))
    assert gap.units == -GAP_CAP


def test_levels() -> None:
    assert assess(delivery("c", 0, 2, 2)).level is Level.met
    assert assess(delivery("c", 0, 2, 3)).level is Level.failed  # 2 tolerances late
    assert assess(delivery("c", 0, 2, 2.4)).level is Level.met  # within tolerance
    assert assess(delivery("c", 0, 3, 2)).level is Level.exceeded  # a day early: +2
    assert assess(touch(kind="complaint")).level is Level.failed
    assert assess(touch(outcome="failure")).level is Level.failed
    assert assess(touch(rating={"scale": "nps_10", "value": 6})).level is Level.failed
    assert assess(touch(rating={"scale": "nps_10", "value": 9})).level is Level.exceeded
    assert assess(touch(rating={"scale": "csat_5", "value": 5})).level is Level.exceeded
    assert assess(touch(rating={"scale": "ces_7", "value": 6})).level is Level.failed
    assert assess(touch(kind="visit")).level is Level.none
    assert assess(touch(kind="visit")).quality is None


def test_wow_margin_is_configurable() -> None:
    early = delivery("c", 0, 3, 2.5)  # +1 tolerance
    assert assess(early, wow_margin=1.0).level is Level.met
    assert assess(early, wow_margin=0.5).level is Level.exceeded


def test_worst_gap_dominates() -> None:
    event = touch(
        expectations=[
            {
                "metric": "a",
                "unit": "d",
                "promised": 2,
                "actual": 2,
                "direction": "lower_is_better",
            },
            {
                "metric": "b",
                "unit": "d",
                "promised": 10,
                "actual": 20,
                "direction": "lower_is_better",
            },
        ]
    )
    result = assess(event)
    assert result.gap == pytest.approx(-10.0)
    assert result.level is Level.failed


@given(
    promised=st.floats(-1e6, 1e6, allow_nan=False),
    actual=st.floats(-1e6, 1e6, allow_nan=False),
    higher=st.booleans(),
    tol=st.floats(1e-3, 1e3),
    sentiment=st.none() | st.floats(-1, 1),
    outcome=st.none() | st.sampled_from(["success", "partial", "failure", "cancelled"]),
)
def test_quality_is_bounded_and_level_consistent(
    promised, actual, higher, tol, sentiment, outcome
) -> None:
    direction = "higher_is_better" if higher else "lower_is_better"
    event = touch(
        expectations=[
            {
                "metric": "m",
                "unit": "u",
                "promised": promised,
                "actual": actual,
                "direction": direction,
                "tolerance": {"kind": "absolute", "value": tol},
            }
        ],
        sentiment=sentiment,
        outcome=outcome,
    )
    result = assess(event)
    assert result.quality is not None and -1.0 <= result.quality <= 1.0
    assert -GAP_CAP <= result.gap <= GAP_CAP
    if result.gap < -1 or outcome == "failure":
        assert result.level is Level.failed
