from __future__ import annotations

import math

import numpy as np
import pytest

from touchstream.streams.bgnbd import BGNBDParams, fit, log_likelihood, p_alive, simulate

CDNOW = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # the paper's CDNOW estimates


def test_p_alive_matches_closed_form_by_hand() -> None:
    # 1 / (1 + 0.793/3.426 * (43.274/34.844)^2.243) = 1 / (1 + 0.23147 * 1.62584)
    assert p_alive(2, 30.43, 38.86, CDNOW) == pytest.approx(0.72658, abs=1e-4)
    # x = 1, t_x = T: just bought, P(alive) = 1 / (1 + a / b)
    assert p_alive(1, 20.0, 20.0, CDNOW) == pytest.approx(1 / (1 + 0.793 / 2.426))


def test_p_alive_is_one_without_repeats_and_falls_with_silence() -> None:
    assert p_alive(0, 0.0, 100.0, CDNOW) == 1.0
    values = [p_alive(5, 10.0, T, CDNOW) for T in (10, 20, 40, 80)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.2


def test_log_likelihood_is_finite_and_matches_manual_x0() -> None:
    x, tx, T = np.array([0.0]), np.array([0.0]), np.array([30.0])
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    # x = 0: L = (alpha / (alpha + T))^r
    expected = r * math.log(alpha / (alpha + 30.0))
    assert log_likelihood((r, alpha, a, b), x, tx, T)[0] == pytest.approx(expected)


def test_fit_recovers_simulated_parameters() -> None:
    truth = BGNBDParams(r=0.5, alpha=5.0, a=0.8, b=3.0)
    x, tx, T = simulate(truth, customers=6000, T=120.0, seed=11)
    fitted = fit(x, tx, T)
    # stated tolerance: 25 % on each parameter with 6,000 customers
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0.25), name
    assert fitted.customers == 6000
    total = float(np.sum(log_likelihood((fitted.r, fitted.alpha, fitted.a, fitted.b), x, tx, T)))
    assert fitted.log_likelihood == pytest.approx(total)
    at_truth = float(np.sum(log_likelihood((0.5, 5.0, 0.8, 3.0), x, tx, T)))
    assert fitted.log_likelihood >= at_truth - 1e-6  # the optimum beats the truth in-sample


def test_fit_rejects_impossible_data() -> None:
    with pytest.raises(ValueError, match="t_x <= T"):
        fit([1], [10.0], [5.0])


def test_params_save_and_load(tmp_path) -> None:
    path = tmp_path / "p.json"
    CDNOW.save(path)
    assert BGNBDParams.load(path) == CDNOW


def test_grouped_customers_fit_like_individuals() -> None:
    x, tx, T = simulate(BGNBDParams(r=0.5, alpha=5.0, a=0.8, b=3.0), 800, 60.0, seed=2)
    days = np.floor(tx), np.floor(T)
    triples, counts = np.unique(np.stack([x, *days]), axis=1, return_counts=True)
    grouped = fit(*triples, weights=counts)
    single = fit(x, *days)
    assert grouped.customers == single.customers == 800
    assert grouped.log_likelihood == pytest.approx(single.log_likelihood, rel=1e-6)
    assert grouped.r == pytest.approx(single.r, rel=1e-3)
