"""Signal rules: risk and wow scores with reasons, hysteresis, cooldown, deterministic ids.

Each score is a weighted sum of factors in [0, 1] with weights summing to 1, so the score is
in [0, 1] and the reasons' contributions add up to it exactly. Defaults are argued in
docs/metrics.md; every number here can be changed in a rules file (YAML or TOML).
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas import Reason, Severity, SignalKind


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Config):
    """Raise when the score reaches `raise_at`; re-arm only after it fell below `clear_below`
    (hysteresis), and never raise again within `cooldown_days` of event time."""

    raise_at: float = Field(ge=0, le=1)
    clear_below: float = Field(ge=0, le=1)
    cooldown_days: float = Field(ge=0)

    @model_validator(mode="after")
    def _band(self) -> Trigger:
        if self.clear_below > self.raise_at:
            raise ValueError("clear_below must not be above raise_at (hysteresis band)")
        return self


def _weights_sum_to_one(weights: BaseModel) -> None:
    total = sum(weights.model_dump().values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"weights must sum to 1 (they sum to {total:.4f})")


class RiskWeights(_Config):
    silence: float = Field(0.25, ge=0)
    expectation_gap: float = Field(0.20, ge=0)
    inconsistency: float = Field(0.15, ge=0)
    silent_failures: float = Field(0.15, ge=0)
    open_complaints: float = Field(0.10, ge=0)
    detractor: float = Field(0.10, ge=0)
    falling_trend: float = Field(0.05, ge=0)

    @model_validator(mode="after")
    def _sum(self) -> RiskWeights:
        _weights_sum_to_one(self)
        return self


class WowWeights(_Config):
    consistent_record: float = Field(0.35, ge=0)
    moment: float = Field(0.45, ge=0)
    stealable: float = Field(0.20, ge=0)

    @model_validator(mode="after")
    def _sum(self) -> WowWeights:
        _weights_sum_to_one(self)
        return self


class RiskRules(_Config):
    weights: RiskWeights = RiskWeights()
    trigger: Trigger = Trigger(raise_at=0.5, clear_below=0.35, cooldown_days=14)
    overdue_full: float = Field(3.0, gt=1, description="overdue ratio that counts as fully silent")
    gap_full: float = Field(2.0, gt=0, description="mean gap (tolerance units) that counts fully")
    silent_failures_full: int = Field(3, ge=1)
    complaint_sla_days: float = Field(3.0, gt=0)
    trend_full: float = Field(0.3, gt=0)


class WowRules(_Config):
    weights: WowWeights = WowWeights()
    trigger: Trigger = Trigger(raise_at=0.6, clear_below=0.4, cooldown_days=14)
    min_consistency: float = Field(0.6, ge=0, le=1, description="consistency comes before wow")
    max_risk: float = Field(0.35, ge=0, le=1)
    milestones: tuple[int, ...] = (5, 10, 25, 50, 100)
    high_value_amount: float = Field(500.0, gt=0)
    recovery_ignores_cooldown: bool = Field(
        True, description="answer a fast complaint resolution even within the cooldown"
    )


class Rules(_Config):
    """The whole rules file. `version` goes into every signal and its id."""

    version: str = "default-1"
    half_life_days: float = Field(30.0, gt=0)
    wow_margin: float = Field(1.0, ge=0, description="gap (tolerance units) that counts as wow")
    grace_seconds: float = Field(24 * 3600.0, ge=0)
    recovery_sla_days: float = Field(
        2.0, gt=0, description="a complaint resolved within this is a service recovery"
    )
    default_interarrival_days: float = Field(30.0, gt=0)
    silence_check_days: float = Field(1.0, gt=0, description="event-time timer period")
    snapshot_every_days: float = Field(1.0, ge=0, description="metrics snapshot throttle")
    risk: RiskRules = RiskRules()
    wow: WowRules = WowRules()

    @classmethod
    def load(cls, path: Path | None) -> Rules:
        if path is None:
            return cls()
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
        return cls.model_validate(data or {})


# the detail of a factor as a format string and its arguments: formatted only for a signal
Detail = tuple[str, tuple[Any, ...]]
Factor = tuple[str, float, float, Detail]  # name, observed value, contribution, detail


@dataclass(slots=True)
class Score:
    kind: SignalKind
    value: float
    factors: tuple[Factor, ...]  # contributing factors, largest first
    suggested_action: str | None = None

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
    active: bool, last_raised: float | None, score: float, now: float, trigger: Trigger
) -> Decision:
    """Transition logic: raise on crossing up, clear on falling below the band, else hold."""
    if active:
        return "clear" if score < trigger.clear_below else "hold"
    if score < trigger.raise_at:
        return "hold"
    if last_raised is not None and now - last_raised < trigger.cooldown_days * 86_400.0:
        return "hold"
    return "raise"
