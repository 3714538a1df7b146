"""Wiring the webhook dispatcher into the worker: start it, record attempts, dead-letter."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import Any

import orjson

from touchstream.schemas import Signal
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.webhooks import Attempt, Dispatcher, WebhookConfig
from touchstream.telemetry import Telemetry

log = logging.getLogger("touchstream.alerts")

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
       reason_details, metrics_json, rules_version
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
    factors, values, contributions, details, metrics_json, rules_version = row[10:]
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
        }
    )


def attach_webhooks(
    app: Any,
    clickhouse: ClickHouse,
    settings: Any,
    topic_options: dict[str, Any],
    telemetry: Telemetry | None = None,
) -> Callable[[list[Signal]], Awaitable[None]] | None:
    """Returns the hook the signals writer calls after storing a batch (None: no webhooks)."""
    if not settings.webhooks:
        return None
    dead_topic = app.topic(settings.topic_alert_dead_letters, **topic_options)
    pending: list[Attempt] = []

    async def dead_letter(signal: Signal, config: WebhookConfig, error: str) -> None:
        value = orjson.dumps(
            {
                "endpoint": config.name,
                "url": config.url,
                "error": error,
                "signal": orjson.loads(signal.model_dump_json()),
            }
        )
        await dead_topic.send(key=signal.customer_id.encode(), value=value)

    def on_attempt(attempt: Attempt) -> None:
        pending.append(attempt)
        if telemetry is not None:
            telemetry.webhooks.labels(attempt.endpoint, attempt.outcome).inc()

    dispatcher = Dispatcher(list(settings.webhooks), on_attempt, dead_letter)

    @app.task
    async def start_webhooks() -> None:
        await dispatcher.start()
        log.info("webhook subscribers: %s", ", ".join(c.name for c in settings.webhooks))
        for config in settings.webhooks:
            undelivered = await clickhouse.run(
                undelivered_signals, clickhouse, config.name, settings.webhook_outbox_hours
            )
            for signal in undelivered:
                await dispatcher.submit(signal, only=config.name)
            if undelivered:
                log.info(
                    "%s: %d signal(s) of the last %gh without a final delivery, queued again",
                    config.name,
                    len(undelivered),
                    settings.webhook_outbox_hours,
                )

    @app.timer(interval=1.0)
    async def record_attempts() -> None:
        if not pending:
            return
        batch = pending[:]
        del pending[: len(batch)]
        await clickhouse.run(
            clickhouse.insert_columns,
            "alert_deliveries",
            attempt_columns(batch),
        )

    async def submit(signals: list[Signal]) -> None:
        for signal in signals:
            await dispatcher.submit(signal)

    return submit
