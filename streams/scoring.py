"""Scores and transitions: the arithmetic of the signal rules, pure and compiled.

Two ways to combine factors in [0, 1], both giving a score in [0, 1] whose reasons'
contributions add up to it exactly:

- `weighted`: a weighted sum with weights summing to 1 (the wow score: every part counts).
- `combined`: a noisy-OR, 1 - prod(1 - w_i * s_i), where each factor's weight is the most it
  can reach *alone* (the risk: a lapse, a complaint past its SLA or three broken promises in
  a row are each enough to act on; a weighted sum capped each at its share and hid them).
  The score is split among the factors in proportion to -log(1 - w_i * s_i), each factor's
  share of the log-survival, so a factor that would raise the signal alone gets most of it.

The thresholds themselves are the rules' (`streams.rules`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from touchstream.schemas import Reason, Severity, SignalKind
from touchstream.streams.params import TriggerParams

# the signal kinds as module constants, and their values (the signal state's keys): compiled
# code reads an enum member generically (~900 instructions) and `.value` is a Python property
RISK: Final = SignalKind.about_to_defect
WOW: Final = SignalKind.wow_opportunity
RISK_KEY: Final = RISK.value
WOW_KEY: Final = WOW.value

# the detail of a factor as a format string and its arguments: formatted only for a signal
Detail = tuple[str, tuple[Any, ...]]
Factor = tuple[str, float, float, Detail]  # name, observed value, contribution, detail


@dataclass(slots=True, init=False)
class Score:
    kind: SignalKind
    value: float
    factors: tuple[Factor, ...]  # contributing factors, largest first
    suggested_action: str | None
    service: float  # a risk's part driven by the service (`evaluate.service_risk`)

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        kind: SignalKind,
        value: float,
        factors: tuple[Factor, ...],
        suggested_action: str | None = None,
        service: float = 0.0,
    ) -> None:
        self.kind, self.value, self.factors = kind, value, factors
        self.suggested_action = suggested_action
        self.service = service

    @property
    def reasons(self) -> list[Reason]:
        """Built only when a signal is raised: scoring runs per event, signals are rare."""
        return [
            Reason(
                factor=name,
                value=round(value, 6),
                contribution=contribution,
                detail=template.format(*args),
            )
            for name, value, contribution, (template, args) in self.factors
        ]


def clamp01(value: float) -> float:
    return 0.0 if value < 0 else 1.0 if value > 1 else value


def weighted(
    kind: SignalKind, factors: list[tuple[str, float, float, float, Detail]], action: str | None
) -> Score:
    """factors: (name, observed value, strength in [0,1], weight, detail) -> score + reasons."""
    kept = [
        (name, value, weight * strength, detail)
        for name, value, strength, weight, detail in factors
        if weight * strength > 0
    ]
    kept.sort(key=lambda f: -f[2])
    return Score(kind, clamp01(sum(f[2] for f in kept)), tuple(kept), action)


def reaches(strength: float, ceiling: float) -> bool:
    """Whether a factor moves `combined` at all: the others need not even be built."""
    return ceiling * clamp01(strength) > 0.0


def combined(
    kind: SignalKind, factors: list[tuple[str, float, float, float, Detail]], action: str | None
) -> Score:
    """factors: (name, observed value, strength in [0,1], ceiling in [0,1], detail)."""
    parts = []
    survival = 1.0
    for name, value, strength, ceiling, detail in factors:
        reach = min(0.999999, ceiling * clamp01(strength))
        if reach > 0:
            survival *= 1.0 - reach
            parts.append((name, value, -math.log1p(-reach), detail))
    score = 1.0 - survival
    total = sum(p[2] for p in parts)
    if score <= 0.0 or total <= 0.0:  # strengths too small to move a float
        return Score(kind, 0.0, (), action)
    shares = [(name, value, score * share / total, detail) for name, value, share, detail in parts]
    kept = [part for part in shares if part[2] > 0.0]
    kept.sort(key=lambda f: -f[2])
    return Score(kind, clamp01(score), tuple(kept), action)


def severity(score: float) -> Severity:
    if score >= 0.85:
        return Severity.critical
    if score >= 0.7:
        return Severity.high
    if score >= 0.55:
        return Severity.medium
    return Severity.low


def wow_severity(score: float) -> Severity:
    """A wow is an opportunity, never an emergency: low, or medium for the strongest, so a
    subscriber filtering on `min_severity: high` is paged for risks only."""
    return Severity.medium if score >= 0.85 else Severity.low


def signal_id(customer_id: str, kind: SignalKind, raised_at: float, rules_version: str) -> str:
    """Same customer, kind, event time and rules -> same id, so replays never duplicate."""
    stamp = datetime.fromtimestamp(raised_at, UTC).isoformat()
    text = f"{customer_id}|{kind.value}|{stamp}|{rules_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


Decision = Literal["raise", "hold", "clear"]


def decide(
    active: bool, last_raised: float | None, score: float, now: float, trigger: TriggerParams
) -> Decision:
    """Transition logic: raise on crossing up, clear on falling below the band, else hold."""
    if active:
        return "clear" if score < trigger.clear_below else "hold"
    if score < trigger.raise_at:
        return "hold"
    if last_raised is not None and now - last_raised < trigger.cooldown_days * 86_400.0:
        return "hold"
    return "raise"
