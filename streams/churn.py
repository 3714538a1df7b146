"""The probability that a customer makes no contact within a horizon, from their rhythm.

A mixture ("cure") model over the time to the customer's next active day, learned from the
business's own history (`streams.learning`): a share `pi` never comes back, the rest come
back after a time with a Lomax (gamma-mixed exponential) distribution of rate `lam` and
shape `k`:

    P(no contact within H) = pi + (1 - pi) * (1 + H * lam / k) ** -k
    logit(pi) = A . f,   log(lam) = B . f

where f are the customer's rhythm features at that moment (`features`): how many active
days, how long silent, how long known, their usual gap, and the BG/NBD P(alive) of the
fitted population. Why a survival model: the examples it learns from are past moments whose
outcome is a *time* (censored where history ends), so a horizon longer than what has been
observed since a moment (a 9-month horizon after 9 months of history) still comes from the
fitted distribution instead of an extrapolated classifier.

Until a business has enough history the model is BG/NBD's own answer (`RiskModel()`):
P(no purchase in H) = 1 - P(alive) + P(alive) * ((alpha + T) / (alpha + T + H)) ** (r + x).

Everything here is per event and cheap: no fitting (that is `streams.learning`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from touchstream.streams.bgnbd import BGNBDParams

FEATURES: Final = (
    "intercept",
    "logit_p_alive",
    "log_silence",
    "log_repeat_days",
    "one_time",
    "log_age",
    "log_silence_sq",
    "silence_share",
    "log_usual_gap",
    "log_overdue",
    "log_irregularity",
    "log_spreads_overdue",
    "one_time_log_age",
)
PRIOR_GAPS: Final = 2.0  # pseudo-gaps of the prior rhythm that shrink a customer's mean and spread
DEFAULT_VERSION = "default"


def _logit_p_alive(x: float, t_x: float, age: float, population: BGNBDParams) -> float:
    """log(P(alive) / (1 - P(alive))) under BG/NBD, clipped to +-30; 5 for x = 0 (alive by
    construction: the `one_time` feature carries what that means)."""
    if x <= 0:
        return 5.0
    p = population
    log_ratio = math.log(p.a / (p.b + x - 1.0)) + (p.r + x) * math.log(
        (p.alpha + age) / (p.alpha + t_x)
    )
    return -max(-30.0, min(30.0, log_ratio))


def gap_spread(days: Sequence[int], usual: float) -> float:
    """The spread (standard deviation) of the gaps between the recent active `days`, in
    days, shrunk by PRIOR_GAPS pseudo-gaps of an exponential rhythm (spread = `usual`): two
    gaps of the same length do not make a customer a clockwork."""
    squares = PRIOR_GAPS * usual * usual
    n = len(days) - 1
    if n > 0:
        mean = (days[-1] - days[0]) / n
        for i in range(n):
            g = days[i + 1] - days[i] - mean
            squares += g * g
    return max(1.0, math.sqrt(squares / (max(0, n) + PRIOR_GAPS)))


def features(
    x: float, t_x: float, age: float, population: BGNBDParams, spread: float = 0.0
) -> list[float]:
    """The rhythm features, in FEATURES order: x = active days after the first, t_x = days
    from the first to the last, age = days from the first to now (all in days), spread =
    `gap_spread` of the recent active days around the usual gap t_x / x (how regular the
    customer is: a silence of three gaps says more of a clockwork than of a random buyer)."""
    if x <= 0:  # no rhythm yet: the silence is the age, and gets a slope of its own
        return [1.0, 5.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, math.log1p(age)]
    silence = max(0.0, age - t_x)
    log_silence = math.log1p(silence)
    gap = t_x / x
    spread = max(1.0, spread)
    return [
        1.0,
        _logit_p_alive(x, t_x, age, population),
        log_silence,
        math.log1p(x),
        0.0,
        math.log1p(age),
        log_silence * log_silence,
        silence / (age + 1.0),
        math.log1p(gap),
        math.log1p(silence / max(gap, 1.0)),
        math.log(spread / max(gap, 1.0)),
        math.log1p(max(0.0, silence - gap) / spread),
        0.0,
    ]


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class RiskModel:
    """A fitted (or default) model of the business's customers. `never` and `rate` are the
    coefficients A and B over FEATURES; empty: BG/NBD's closed form with `population`.
    `typical_value` is the median yearly value of the business's customers (what an
    expected loss is compared with), 0 when not known; `typical_gap` the median usual gap
    (days) of those who came back: when a one-time buyer, who has no rhythm of their own,
    is late (a week or two in a grocery, months at a music shop), 0 when not known."""

    population: BGNBDParams = field(default_factory=BGNBDParams)
    never: tuple[float, ...] = ()
    rate: tuple[float, ...] = ()
    shape: float = 1.0
    typical_value: float = 0.0
    typical_gap: float = 0.0
    # logit(P) -> a + b logit(P) for the horizon it was learned at (`learning.recalibrate`):
    # what came of past moments whose whole horizon the history has seen; () none
    recalibration: tuple[float, ...] = ()
    recalibrated_for: float = 0.0  # that horizon, in days
    version: str = DEFAULT_VERSION
    fitted_until: str = ""  # ISO date of the end of the history it learned from
    quality: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def learned(self) -> bool:
        return bool(self.never)

    def p_no_contact(
        self, x: float, t_x: float, age: float, horizon_days: float, spread: float = 0.0
    ) -> float:
        """P(no active day within `horizon_days` from now), in [0, 1]; `spread` as for
        `features`."""
        if not self.never:
            return bgnbd_no_purchase(x, t_x, age, horizon_days, self.population)
        f = features(x, t_x, age, self.population, spread)
        z = 0.0
        u = 0.0
        for value, a, b in zip(f, self.never, self.rate, strict=True):
            z += a * value
            u += b * value
        pi = _sigmoid(z)
        lam = math.exp(max(-20.0, min(20.0, u)))
        k = self.shape
        stay = math.exp(-k * math.log1p(horizon_days * lam / k))
        p = min(1.0, max(0.0, pi + (1.0 - pi) * stay))
        if self.recalibrated_at(horizon_days):
            a, b = self.recalibration
            q = min(1.0 - 1e-9, max(1e-9, p))
            p = _sigmoid(a + b * math.log(q / (1.0 - q)))
        return p

    def describe(self) -> str:
        """For a reason's detail: which model, learned from what."""
        if not self.learned:
            why = self.quality.get("fallback", "no model learned yet")
            return f"default model ({why})"
        customers = self.quality.get("customers", 0)
        return f"model {self.version} learned on {customers:,} customers to {self.fitted_until}"

    def one_time_gap(self, repeat_days: int) -> float:
        """The business's typical gap where it stands in for a customer's own rhythm: a
        one-time buyer's, once one is learned; 0 otherwise (the customer's own counts)."""
        return self.typical_gap if repeat_days <= 0 else 0.0

    def recalibrated_at(self, horizon_days: float) -> bool:
        """Whether its P was checked at this horizon on the history (and mapped there)."""
        return bool(self.recalibration) and abs(horizon_days - self.recalibrated_for) < 0.5

    def __str__(self) -> str:
        return self.describe()

    def to_json(self) -> str:
        data = asdict(self)
        data["population"] = {
            k: v for k, v in asdict(self.population).items() if k in ("r", "alpha", "a", "b")
        }
        data["features"] = list(FEATURES)  # a model over other features is refused on load
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RiskModel:
        """Refuses (ValueError) anything that is not a complete, finite, consistent model."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a risk model is a JSON object")
        given = data["population"]
        population = BGNBDParams(
            float(given["r"]), float(given["alpha"]), float(given["a"]), float(given["b"])
        )
        never = tuple(float(v) for v in data.get("never", ()))
        rate = tuple(float(v) for v in data.get("rate", ()))
        model = cls(
            population=population,
            never=never,
            rate=rate,
            shape=float(data.get("shape", 1.0)),
            typical_value=float(data.get("typical_value", 0.0)),
            typical_gap=float(data.get("typical_gap", 0.0)),
            recalibration=tuple(float(v) for v in data.get("recalibration", ())),
            recalibrated_for=float(data.get("recalibrated_for", 0.0)),
            version=str(data.get("version", DEFAULT_VERSION)),
            fitted_until=str(data.get("fitted_until", "")),
            quality=dict(data.get("quality") or {}),
        )
        model.check()
        return model

    def check(self) -> None:
        numbers = [
            *self.never,
            *self.rate,
            *self.recalibration,
            self.recalibrated_for,
            self.shape,
            self.typical_value,
            self.typical_gap,
            self.population.r,
            self.population.alpha,
            self.population.a,
            self.population.b,
        ]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError("a risk model with a non-finite number")
        if min(self.population.r, self.population.alpha, self.population.a, self.population.b) <= 0:
            raise ValueError("BG/NBD parameters must be positive")
        if self.never and not (len(self.never) == len(self.rate) == len(FEATURES)):
            raise ValueError(f"a risk model needs {len(FEATURES)} coefficients of each kind")
        if self.recalibration and (len(self.recalibration) != 2 or self.recalibrated_for <= 0):
            raise ValueError("a recalibration is two numbers for a positive horizon")
        if self.shape <= 0 or min(self.typical_value, self.typical_gap) < 0:
            raise ValueError("shape must be positive, typical_value and typical_gap not negative")


def model_version(model: RiskModel) -> str:
    """The same coefficients give the same version (it goes into signal ids)."""
    p = model.population
    numbers = (*model.never, *model.rate, model.shape, model.typical_value, p.r, p.alpha, p.a, p.b)
    if model.recalibration:  # models learned before it had none: their versions stay
        numbers += (*model.recalibration, model.recalibrated_for)
    if model.typical_gap:  # likewise
        numbers += (model.typical_gap,)
    rounded = [round(v, 6) for v in numbers]
    return "m-" + hashlib.sha256(json.dumps(rounded).encode()).hexdigest()[:12]


def bgnbd_no_purchase(
    x: float, t_x: float, age: float, horizon_days: float, population: BGNBDParams
) -> float:
    """BG/NBD: P(no purchase in (T, T + H]) = 1 - P(alive) + P(alive) * P(none | alive); given
    alive the rate is Gamma(r + x, alpha + T), so P(none | alive) = ((alpha+T)/(alpha+T+H))^(r+x).
    Drop-out happens only after a purchase, so a customer alive now stays alive until then."""
    p = population
    alive = _sigmoid(_logit_p_alive(x, t_x, age, population)) if x > 0 else 1.0
    none = math.exp((p.r + x) * math.log((p.alpha + age) / (p.alpha + age + horizon_days)))
    return min(1.0, max(0.0, 1.0 - alive + alive * none))
