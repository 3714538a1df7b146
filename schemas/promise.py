"""The company-level alert: a promise type the company breaks too often.

Per-customer signals apologise to each customer; this one says the promise itself is wrong
(a delivery time the courier cannot keep, a call-back time the team cannot meet), so the
company fixes the promise. Raised at most once per promise type (metric x channel x team)
per window of event time, with a deterministic id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from touchstream.schemas.signal import Reason, Unit, _Wire

Name = Annotated[str, StringConstraints(max_length=128)]


class PromiseAlert(_Wire):
    alert_id: Annotated[str, StringConstraints(min_length=8, max_length=64)]
    kind: Literal["promise_overcommitted"] = "promise_overcommitted"
    metric: Name
    channel: Name
    team: Name = ""
    window_start: AwareDatetime
    window_end: AwareDatetime
    promises: int = Field(ge=0)
    broken: int = Field(ge=0)
    broken_share: Unit
    threshold: Unit
    customers: int = Field(ge=0)
    customers_affected: int = Field(ge=0)
    miss_p50: float = Field(ge=0, description="median miss of the broken ones, x the promise")
    miss_p90: float = Field(ge=0)
    previous_share: Unit | None = Field(
        default=None, description="the share broken in the window before: the trend"
    )
    reasons: list[Reason]
    suggested_action: str
    rules_version: Annotated[str, StringConstraints(max_length=64)]
