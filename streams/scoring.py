"""Scores and transitions: the arithmetic of the signal rules, pure and compiled.

Each score is a weighted sum of factors in [0, 1] with weights summing to 1, so the score is
in [0, 1] and the reasons' contributions add up to it exactly. The thresholds themselves
are the rules' (`streams.rules`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from touchstream.schemas import Reason, Severity, SignalKind


class Thresholds(Protocol):
    """A trigger of the rules (`streams.rules.Trigger`)."""

    @property
    def raise_at(self) -> float: ...
    @property
    def clear_below(self) -> float: ...
    @property
    def cooldown_days(self) -> float: ...


# the detail of a factor as a format string and its arguments: formatted only for a signal
Detail = tuple[str, tuple[Any, ...]]
Factor = tuple[str, float, float, Detail]  # name, observed value, contribution, detail


@dataclass(slots=True, init=False)
class Score:
    kind: SignalKind
    value: float
    factors: tuple[Factor, ...]  # contributing factors, largest first
    suggested_action: str | None

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        kind: SignalKind,
        value: float,
        factors: tuple[Factor, ...],
        suggested_action: str | None = None,
    ) -> None:
        self.kind, self.value, self.factors = kind, value, factors
        self.suggested_action = suggested_action

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


def severity(score: float) -> Severity:
    if score >= 0.85:
        return Severity.critical
    if score >= 0.7:
        return Severity.high
    if score >= 0.55:
        return Severity.medium
    return Severity.low


def signal_id(customer_id: str, kind: SignalKind, raised_at: float, rules_version: str) -> str:
    """Same customer, kind, event time and rules -> same id, so replays never duplicate."""
    stamp = datetime.fromtimestamp(raised_at, UTC).isoformat()
    text = f"{customer_id}|{kind.value}|{stamp}|{rules_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


Decision = Literal["raise", "hold", "clear"]


def decide(
    active: bool, last_raised: float | None, score: float, now: float, trigger: Thresholds
) -> Decision:
    """Transition logic: raise on crossing up, clear on falling below the band, else hold."""
    if active:
        return "clear" if score < trigger.clear_below else "hold"
    if score < trigger.raise_at:
        return "hold"
    if last_raised is not None and now - last_raised < trigger.cooldown_days * 86_400.0:
        return "hold"
    return "raise"
