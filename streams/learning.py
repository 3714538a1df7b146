"""Learning the risk model (`streams.churn`) from a business's own history, without labels.

The examples are past moments: at each checkpoint (every `step` days of the history), every
customer known by then, with their rhythm features as of that moment, and the outcome that
history has since revealed: the days until their next active day, or "not yet" (censored)
when the history ends first. Nobody labels anything: the outcome is what the customer did.
Only the history before `until` is read, as the live system only knows its past.

Fitted by maximum likelihood (L-BFGS, analytic gradient, a small ridge), after the BG/NBD
population (`streams.bgnbd.fit`), whose P(alive) is one of the features. Bounded: at most
`max_customers` customers (a stable sample by id) and `max_examples` examples (checkpoints
spaced to fit).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from touchstream.streams.bgnbd import BGNBDParams
from touchstream.streams.bgnbd import fit as fit_bgnbd
from touchstream.streams.churn import FEATURES, RiskModel, features, gap_spread, model_version
from touchstream.streams.customer_state import RECENT_KEEP

log = logging.getLogger("touchstream.learning")

MIN_CUSTOMERS = 200  # fewer who came back at least once: too little to learn a rhythm from
MIN_REPEATERS = 50
MIN_RECALIBRATION = 1_000  # past moments whose whole horizon was seen, to recalibrate on
RIDGE = 1e-4


class Examples:
    """Feature rows (FEATURES order), the days to the next contact (or to the end of the
    history, censored), whether it came, how many days of history followed the moment
    (`seen`), and which checkpoint it was taken at (`period`, 0, 1, ...)."""

    def __init__(
        self,
        rows: np.ndarray,
        wait: np.ndarray,
        came: np.ndarray,
        seen: np.ndarray,
        period: np.ndarray | None = None,
    ) -> None:
        self.rows, self.wait, self.came, self.seen = rows, wait, came, seen
        self.period = np.zeros(len(wait), dtype=np.int64) if period is None else period

    @property
    def periods(self) -> int:
        return int(self.period.max()) + 1 if len(self.period) else 0

    def __len__(self) -> int:
        return len(self.wait)


def sample(customers: Sequence[str], limit: int) -> list[str]:
    """A stable sample: the same ids are kept whatever the order or the run."""
    if len(customers) <= limit:
        return list(customers)
    keyed = sorted(customers, key=lambda c: hashlib.blake2b(c.encode(), digest_size=8).digest())
    return keyed[:limit]


def checkpoints(first: int, until: int, max_checkpoints: int, step: int = 7) -> list[int]:
    """Days (epoch days) at which the past is looked at: weekly, or sparser to fit."""
    span = until - first
    if span <= step:
        return []
    step = max(step, math.ceil(span / max_checkpoints))
    return list(range(first + step, until, step))


def examples(
    days: Mapping[str, Sequence[int]],
    until: int,
    population: BGNBDParams,
    max_examples: int = 400_000,
) -> Examples:
    """Every (checkpoint, customer known by then) as a row, vectorised per checkpoint."""
    ids = [c for c in days if len(days[c]) and days[c][0] < until]
    if not ids:
        return Examples(np.zeros((0, len(FEATURES))), np.zeros(0), np.zeros(0, bool), np.zeros(0))
    lengths = np.array([len(days[c]) for c in ids])
    flat = np.concatenate([np.asarray(days[c], dtype=np.int64) for c in ids])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    owner = np.repeat(np.arange(len(ids)), lengths)
    keys = owner * 10_000_000 + flat  # sorted: customer, then day
    first_day = flat[starts]
    grid = checkpoints(int(first_day.min()), until, max(2, max_examples // len(ids)))
    rows: list[list[float]] = []
    waits: list[float] = []
    came: list[bool] = []
    seen_after: list[float] = []
    period: list[int] = []
    used = 0  # checkpoints with someone known
    for t in grid:
        known = np.nonzero(first_day < t)[0]
        if len(known) == 0:
            continue
        period.extend([used] * len(known))
        used += 1
        seen = np.searchsorted(keys, known * 10_000_000 + t) - starts[known]  # days before t
        last = flat[starts[known] + seen - 1]
        nxt = flat[np.minimum(starts[known] + seen, len(flat) - 1)]  # valid where has_next
        has_next = (seen < lengths[known]) & (nxt < until)
        for i, c_seen, c_last, c_next, c_has in zip(known, seen, last, nxt, has_next, strict=True):
            x = float(c_seen - 1)
            t_x = float(c_last - first_day[i])
            age = float(t - first_day[i])
            end = starts[i] + c_seen
            recent = flat[max(starts[i], end - RECENT_KEEP) : end].tolist()
            spread = gap_spread(recent, t_x / x) if x > 0 else 0.0
            rows.append(features(x, t_x, age, population, spread))
            came.append(bool(c_has))
            waits.append(float(c_next - t) + 0.5 if c_has else float(until - t))
            seen_after.append(float(until - t))
    return Examples(
        np.asarray(rows, dtype=float).reshape(-1, len(FEATURES)),
        np.asarray(waits, dtype=float),
        np.asarray(came, dtype=bool),
        np.asarray(seen_after, dtype=float),
        np.asarray(period, dtype=np.int64),
    )


def _shifts(theta: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoints' shifts of logit pi and of log lambda that follow A, B and log k in
    `theta` (empty when it has none)."""
    m = (len(theta) - 2 * n - 1) // 2
    return theta[2 * n + 1 : 2 * n + 1 + m], theta[2 * n + 1 + m :]


def _linear(
    theta: np.ndarray, rows: np.ndarray, period: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """logit pi and log lambda (unclipped) of each row, with its checkpoint's shifts when
    `theta` has them and `period` is given; and how many checkpoints `theta` has."""
    n = rows.shape[1]
    on_pi, on_lambda = _shifts(theta, n)
    z, u = rows @ theta[:n], rows @ theta[n : 2 * n]
    if len(on_pi) and period is not None:
        z = z + on_pi[period]
        u = u + on_lambda[period]
    return z, u, len(on_pi)


def _objective(theta: np.ndarray, ex: Examples) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood of the mixture and its gradient (docs/metrics.md).
    `theta` is A, B, log k, then (when longer) one shift of logit pi and one of log lambda
    per checkpoint: the calendar's effect, apart from the customers' (`fit_mixture`)."""
    F, d, came = ex.rows, ex.wait, ex.came
    k = math.exp(theta[2 * F.shape[1]])
    z, u, m = _linear(theta, F, ex.period)
    u = np.clip(u, -20, 20)
    lam = np.exp(u)
    ratio = d * lam / k
    L = np.log1p(ratio)
    g = ratio / (1.0 + ratio)
    log_pi, log_stay = log_expit(z), log_expit(-z)
    sig = expit(z)
    # came back after d days: (1 - pi) * density
    ll_came = log_stay + u + (-k - 1.0) * L
    # not yet after d days: pi + (1 - pi) * survival
    a, b = log_pi, log_stay - k * L
    ll_wait = np.logaddexp(a, b)
    wa, wb = np.exp(a - ll_wait), np.exp(b - ll_wait)
    ll = np.where(came, ll_came, ll_wait)
    dz = np.where(came, -sig, wa * (1.0 - sig) - wb * sig)
    du = np.where(came, 1.0 + (-k - 1.0) * g, -wb * k * g)
    dk = np.where(came, -k * L + (k + 1.0) * g, wb * (-k * L + k * g))
    parts = [F.T @ dz, F.T @ du, [dk.sum()]]
    if m:
        parts += [np.bincount(ex.period, dz, m), np.bincount(ex.period, du, m)]
    value = -float(ll.sum()) / len(d) + RIDGE * float(theta @ theta)
    grad = -np.concatenate(parts) / len(d) + 2 * RIDGE * theta
    return value, grad


# Features that grow as a customer stays silent (the first falls: P(alive) under BG/NBD).
_SILENCE_FALLS = ("logit_p_alive",)
_SILENCE_GROWS = (
    "log_silence",
    "log_silence_sq",
    "silence_share",
    "log_overdue",
    "log_spreads_overdue",
    "log_age",  # the age grows with the silence too
    "one_time_log_age",  # a one-time buyer's silence is their age
)


def monotone_bounds() -> list[tuple[float | None, float | None]]:
    """Bounds on the mixture's coefficients so that a longer silence never lowers the
    probability of no contact: the share who never come back rises (or stays) with it and
    the rate of those who do falls (or stays). Unbounded, the fit can learn a shape that
    holds within the silences the history has shown and turns over beyond them: a history
    whose customers were never silent long (the demo's first three months) learnt a
    quadratic term that put P at 0.002 for a customer silent nine times their usual gap,
    whom BG/NBD gave a P(alive) of 0.05."""
    never: list[tuple[float | None, float | None]] = []
    rate: list[tuple[float | None, float | None]] = []
    for name in FEATURES:
        if name in _SILENCE_GROWS:
            never.append((0.0, None))
            rate.append((None, 0.0))
        elif name in _SILENCE_FALLS:
            never.append((None, 0.0))
            rate.append((0.0, None))
        else:
            never.append((None, None))
            rate.append((None, None))
    return [*never, *rate, (None, None)]


def fit_mixture(ex: Examples) -> tuple[np.ndarray, float]:
    """The mixture's coefficients (A, B, log k, then the checkpoints' shifts, which
    `fold_periods` takes out) and the mean negative log-likelihood.

    Fitted with a shift per checkpoint (calendar effects: a season, a holiday, a quiet
    December), then folded into the intercepts as their average over the examples. Without
    them the calendar is read as the customers': in a history where everyone comes back less
    as the months pass, the customers known longest (who are the ones looked at later) seem
    to come back less *because* they are older. Ta-Feng's one-time buyers came back equally
    at every age at any one checkpoint, yet the pooled fit put a buyer of three days ago at
    0.26 and one of two months ago at 0.58."""
    n, m = ex.rows.shape[1], ex.periods
    start = np.zeros(2 * n + 1 + 2 * m)
    start[n] = -3.0  # a rate of ~1/20 days
    bounds = monotone_bounds() + [(None, None)] * (2 * m)
    result = minimize(_objective, start, args=(ex,), jac=True, method="L-BFGS-B", bounds=bounds)
    if not np.all(np.isfinite(result.x)):
        raise ValueError("the fit did not converge to finite coefficients")
    return result.x, float(result.fun)


def fold_periods(theta: np.ndarray, ex: Examples) -> np.ndarray:
    """The coefficients with the checkpoints' shifts folded into the intercepts (their mean
    over the examples): the future is taken to be like the average of the past."""
    n = ex.rows.shape[1]
    on_pi, on_lambda = _shifts(theta, n)
    folded = theta[: 2 * n + 1].copy()
    if len(on_pi):
        weight = np.bincount(ex.period, minlength=len(on_pi)) / len(ex.period)
        folded[0] += float(weight @ on_pi)
        folded[n] += float(weight @ on_lambda)
    return folded


def p_no_contact(
    theta: np.ndarray, rows: np.ndarray, horizon_days: float, period: np.ndarray | None = None
) -> np.ndarray:
    """`RiskModel.p_no_contact` of the mixture `theta` (no recalibration), vectorised; with
    the checkpoints' shifts when `theta` has them and each row's `period` is given."""
    k = math.exp(theta[2 * rows.shape[1]])
    z, u, _ = _linear(theta, rows, period)
    pi = expit(z)
    lam = np.exp(np.clip(u, -20, 20))
    return pi + (1.0 - pi) * np.exp(-k * np.log1p(horizon_days * lam / k))


def recalibrate(
    theta: np.ndarray, ex: Examples, horizon_days: float
) -> tuple[tuple[float, ...], int]:
    """(a, b) with P' = sigmoid(a + b logit(P)), fitted on the past moments whose whole
    horizon the history has seen, against whether the customer came back within it: the
    mixture's shape is fitted to every wait, this map to the one question asked of it.
    Also how many such moments there were. None, (), when fewer than MIN_RECALIBRATION, or
    one outcome only."""
    full = ex.seen >= horizon_days
    moments = int(full.sum())
    stayed_away = ~(ex.came & (ex.wait < horizon_days))[full]
    if moments < MIN_RECALIBRATION or stayed_away.all() or not stayed_away.any():
        return (), moments
    p = p_no_contact(theta, ex.rows[full], horizon_days, ex.period[full])
    p = np.clip(p, 1e-9, 1 - 1e-9)
    logits = np.log(p / (1.0 - p))
    y = stayed_away.astype(float)

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] + ab[1] * logits
        value = -float(np.mean(y * log_expit(z) + (1.0 - y) * log_expit(-z)))
        r = expit(z) - y
        return value, np.array([r.mean(), (r * logits).mean()])

    result = minimize(loss, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(result.x)) or result.x[1] <= 0:
        return (), moments  # a map that reverses the order is not trusted
    return (float(result.x[0]), float(result.x[1])), moments


def _day(epoch_day: int) -> str:
    return datetime.fromtimestamp(epoch_day * 86_400, UTC).date().isoformat()


def learn(
    days: Mapping[str, Sequence[int]],
    until: int,
    values: Mapping[str, float] | None = None,
    horizon_days: float = 90.0,
    max_customers: int = 100_000,
    max_examples: int = 400_000,
) -> RiskModel:
    """The business's risk model from its customers' active days (sorted, unique epoch days)
    before `until` (an epoch day), recalibrated for `horizon_days` where the history is
    long enough. Too little history: the default model, saying why."""
    kept = sample(sorted(days), max_customers)
    history = {c: [d for d in days[c] if d < until] for c in kept}
    history = {c: v for c, v in history.items() if v}
    repeaters = sum(1 for v in history.values() if len(v) > 1)
    typical = _typical_value(values or {}, history)
    if len(history) < MIN_CUSTOMERS or repeaters < MIN_REPEATERS:
        why = (
            f"too little history: {len(history)} customers, {repeaters} who came back "
            f"(needs {MIN_CUSTOMERS} and {MIN_REPEATERS})"
        )
        log.warning("risk model: %s; the default model stays", why)
        return RiskModel(typical_value=typical, quality={"fallback": why})
    x = [len(v) - 1 for v in history.values()]
    t_x = [float(v[-1] - v[0]) for v in history.values()]
    age = [float(until - v[0]) for v in history.values()]
    population = fit_bgnbd(x, t_x, age)
    ex = examples(history, until, population, max_examples)
    if len(ex) < 10 * len(FEATURES) or ex.came.all() or not ex.came.any():
        why = f"too little history: {len(ex)} examples"
        log.warning("risk model: %s; the default model stays", why)
        return RiskModel(population, typical_value=typical, quality={"fallback": why})
    theta, loss = fit_mixture(ex)
    recalibration, moments = recalibrate(theta, ex, horizon_days)
    n = len(FEATURES)
    calendar, _ = _shifts(theta, n)  # the checkpoints' shifts of logit pi
    theta = fold_periods(theta, ex)
    model = RiskModel(
        population=population,
        never=tuple(float(v) for v in theta[:n]),
        rate=tuple(float(v) for v in theta[n : 2 * n]),
        shape=float(math.exp(theta[2 * n])),
        typical_value=typical,
        typical_gap=float(np.median([t / k for t, k in zip(t_x, x, strict=True) if k > 0])),
        recalibration=recalibration,
        recalibrated_for=horizon_days if recalibration else 0.0,
        fitted_until=_day(until),
        quality={
            "customers": len(history),
            "repeaters": repeaters,
            "examples": len(ex),
            "came_back_share": round(float(ex.came.mean()), 4),
            "mean_log_likelihood": round(-loss, 6),
            "bgnbd_log_likelihood": population.log_likelihood,
            "horizon_moments": moments,  # past moments whose whole horizon was seen
            "checkpoints": len(calendar),
            # how far the calendar moved the odds of never coming back, lowest to highest
            "calendar_odds_range": (
                round(float(np.exp(np.ptp(calendar))), 3) if len(calendar) else 1.0
            ),
        },
    )
    model = replace(model, version=model_version(model))
    model.check()
    log.info(
        "risk model %s learned from %d customers (%d examples) to %s",
        model.version,
        len(history),
        len(ex),
        model.fitted_until,
    )
    return model


def _typical_value(values: Mapping[str, float], history: Mapping[str, Sequence[int]]) -> float:
    known = [values[c] for c in history if values.get(c, 0.0) > 0]
    return float(np.median(known)) if known else 0.0
