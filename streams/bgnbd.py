"""BG/NBD (Fader, Hardie & Lee 2005): is a customer still alive, given (x, t_x, T)?

x = repeat transactions, t_x = time of the last one since the first, T = time since the
first; here a transaction is a distinct active day and time is in days. Population
parameters (r, alpha, a, b) are fitted by maximum likelihood.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    r: float = 0.6
    alpha: float = 6.0  # days; with r, the purchase rate lambda ~ Gamma(r, alpha)
    a: float = 0.8
    b: float = 6.0  # with a, the drop-out probability p ~ Beta(a, b)
    log_likelihood: float | None = None
    customers: int | None = None

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> BGNBDParams:
        return cls(**json.loads(path.read_text()))


def p_alive(x: int, t_x: float, T: float, params: BGNBDParams) -> float:
    """P(alive | x, t_x, T) = 1 / (1 + a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)); 1 if x = 0."""
    if x <= 0:
        return 1.0
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    log_ratio = math.log(a / (b + x - 1)) + (r + x) * math.log((alpha + T) / (alpha + t_x))
    if log_ratio > 700:
        return 0.0
    return 1.0 / (1.0 + math.exp(log_ratio))


def log_likelihood(
    params: Sequence[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """Per-customer log-likelihood (equation 6 of the paper), vectorised."""
    r, alpha, a, b = params
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    first = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        second = np.where(
            x > 0,
            betaln(a + 1, np.maximum(b + x - 1, 1e-12))
            - betaln(a, b)
            - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return common + np.logaddexp(first, second)


def fit(
    x: Sequence[float],
    t_x: Sequence[float],
    T: Sequence[float],
    weights: Sequence[float] | None = None,
) -> BGNBDParams:
    """Maximum-likelihood (r, alpha, a, b); optimised in log space so all stay positive.

    `weights` counts customers sharing one (x, t_x, T), so grouped data fits the same.
    """
    xs = np.asarray(x, dtype=float)
    txs = np.asarray(t_x, dtype=float)
    Ts = np.asarray(T, dtype=float)
    ws = np.ones_like(xs) if weights is None else np.asarray(weights, dtype=float)
    if len(xs) == 0:
        raise ValueError("no customers to fit")
    if np.any(txs > Ts) or np.any(xs < 0):
        raise ValueError("need 0 <= t_x <= T and x >= 0 for every customer")
    scale = max(float(np.average(Ts, weights=ws)), 1e-9)

    def negative(log_params: np.ndarray) -> float:
        value = -float(np.sum(ws * log_likelihood(np.exp(log_params), xs, txs, Ts)))
        return value if math.isfinite(value) else 1e300

    start = np.log([0.5, scale / 10, 1.0, 2.0])
    result = minimize(
        negative,
        start,
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-6},
    )
    result = minimize(negative, result.x, method="L-BFGS-B")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BGNBDParams(
        r, alpha, a, b, log_likelihood=-float(result.fun), customers=round(float(ws.sum()))
    )


def rfm(states: Iterable[Any], end: float) -> tuple[list[int], list[float], list[float]]:
    """(x, t_x, T) in days from customer states, observed until `end` (epoch seconds)."""
    xs, txs, Ts = [], [], []
    last_day = end / 86_400.0
    for state in states:
        if not state.active_days:
            continue
        xs.append(state.active_days - 1)
        txs.append(float(state.last_active_day - state.first_active_day))
        Ts.append(max(txs[-1], last_day - state.first_active_day))
    return xs, txs, Ts


def simulate(
    params: BGNBDParams, customers: int, T: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) for customers drawn from the BG/NBD story, all observed for T days."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(params.r, 1.0 / params.alpha, customers)
    drops = rng.beta(params.a, params.b, customers)
    xs = np.zeros(customers)
    txs = np.zeros(customers)
    for i in range(customers):
        t, count, last = 0.0, 0, 0.0
        while True:
            t += rng.exponential(1.0 / rates[i]) if rates[i] > 0 else math.inf
            if t > T:
                break
            count += 1
            last = t
            if rng.random() < drops[i]:
                break
        xs[i], txs[i] = count, last
    return xs, txs, np.full(customers, T)
