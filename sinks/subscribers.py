"""Who wants which alerts: one webhook subscriber's settings.

Apart from the delivery machinery (sinks/webhooks.py) so the settings, which list the
subscribers, load without the HTTP client a publisher-only install does not have."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from touchstream.schemas import Severity, Signal, SignalKind

SEVERITY_ORDER = {Severity.low: 0, Severity.medium: 1, Severity.high: 2, Severity.critical: 3}


class WebhookConfig(BaseModel):
    """One subscriber (TOUCHSTREAM_WEBHOOKS is a JSON list of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr
    kinds: list[SignalKind] = Field(default_factory=lambda: list(SignalKind))
    min_severity: Severity = Severity.low
    format: Literal["json", "slack"] = "json"
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(5, ge=1, le=20)
    backoff_initial_seconds: float = Field(0.5, gt=0)
    backoff_max_seconds: float = Field(30.0, gt=0)
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open it")
    breaker_reset_seconds: float = Field(30.0, gt=0)
    queue_size: int = Field(10_000, ge=1)

    def wants(self, signal: Signal) -> bool:
        return signal.kind in self.kinds and (
            SEVERITY_ORDER[signal.severity] >= SEVERITY_ORDER[self.min_severity]
        )
