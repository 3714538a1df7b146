"""Wiring the webhook dispatcher into the worker: start it, record attempts, dead-letter."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from schemas import Signal
from sinks.clickhouse import ClickHouse
from sinks.webhooks import Attempt, Dispatcher, WebhookConfig

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


def attach_webhooks(
    app: Any, clickhouse: ClickHouse, settings: Any, topic_options: dict[str, Any]
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

    dispatcher = Dispatcher(list(settings.webhooks), pending.append, dead_letter)

    @app.task
    async def start_webhooks() -> None:
        await dispatcher.start()
        log.info("webhook subscribers: %s", ", ".join(c.name for c in settings.webhooks))

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
