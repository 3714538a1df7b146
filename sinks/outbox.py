"""The webhooks' record in ClickHouse: delivery attempts, and the signals still owed to a
subscriber after a restart (the outbox)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import orjson

from touchstream.schemas import Signal
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.webhooks import Attempt

ATTEMPT_COLUMNS = (
    "delivery_id",
    "signal_id",
    "endpoint",
    "attempt",
    "attempted_at",
    "status_code",
    "outcome",
    "error",
    "duration_ms",
)


def attempt_columns(attempts: list[Attempt]) -> dict[str, list[Any]]:
    return {name: [getattr(a, name) for a in attempts] for name in ATTEMPT_COLUMNS}


FINAL_OUTCOMES = ("delivered", "dead_lettered")
UNDELIVERED_SQL = """
SELECT signal_id, kind, customer_id, score, severity, raised_at, trigger, trigger_event_id,
       channel, suggested_action, reason_factors, reason_values, reason_contributions,
       reason_details, metrics_json, rules_version, worst_metric, worst_channel, worst_team,
       revenue_at_risk, expected_loss, horizon_days, risk_model, team, expected_value
FROM signals FINAL
WHERE stored_at >= now64(3) - toIntervalSecond({seconds:UInt64})
  AND signal_id NOT IN (
      SELECT signal_id FROM alert_deliveries
      WHERE endpoint = {endpoint:String} AND outcome IN {final:Array(String)})
ORDER BY stored_at, signal_id
"""


def undelivered_signals(clickhouse: ClickHouse, endpoint: str, hours: float) -> list[Signal]:
    """The outbox: signals stored in the last `hours` that `endpoint` has no final outcome
    for (the worker died with them queued or retrying). Delivering them again is safe: the
    idempotency key is the same, so receivers drop what they already had."""
    _, rows = clickhouse.query(
        UNDELIVERED_SQL,
        {"seconds": int(hours * 3600), "endpoint": endpoint, "final": list(FINAL_OUTCOMES)},
    )
    return [_signal_from_row(row) for row in rows]


def _signal_from_row(row: tuple[Any, ...]) -> Signal:
    (sid, kind, customer, score, severity, raised_at, trigger, event_id, channel, action) = row[:10]
    factors, values, contributions, details, metrics_json, rules_version = row[10:16]
    metric, channel_of_worst, worst_team, revenue, loss, horizon, model, team, value = row[16:]
    return Signal.model_validate(
        {
            "signal_id": sid,
            "kind": kind,
            "customer_id": customer,
            "score": score,
            "severity": severity,
            "raised_at": raised_at if raised_at.tzinfo else raised_at.replace(tzinfo=UTC),
            "trigger": trigger,
            "trigger_event_id": event_id or None,
            "channel": channel or None,
            "suggested_action": action or None,
            "reasons": [
                {"factor": f, "value": v, "contribution": c, "detail": d}
                for f, v, c, d in zip(factors, values, contributions, details, strict=True)
            ],
            "metrics": orjson.loads(metrics_json),
            "rules_version": rules_version,
            "attribution": {"metric": metric, "channel": channel_of_worst, "team": worst_team}
            if metric or channel_of_worst or worst_team
            else None,
            "revenue_at_risk": revenue,
            "expected_loss": loss,
            "horizon_days": horizon,
            "risk_model": model,
            "team": team or None,
            "expected_value": value,
        }
    )
