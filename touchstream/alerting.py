"""Wiring the webhook dispatcher into the worker: start it, resend the outbox, record
attempts, dead-letter what cannot be delivered."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from touchstream.schemas import Signal
from touchstream.settings import Settings
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.outbox import attempt_columns, undelivered_signals
from touchstream.sinks.subscribers import WebhookConfig
from touchstream.sinks.webhooks import Attempt, Dispatcher
from touchstream.streams.runtime.telemetry import Telemetry

log = logging.getLogger("touchstream.alerts")


def attach_webhooks(
    app: Any,
    clickhouse: ClickHouse,
    settings: Settings,
    topic_options: dict[str, Any],
    telemetry: Telemetry | None = None,
) -> Callable[[list[Signal]], Awaitable[None]] | None:
    """Returns the hook the processing loop calls with a batch's signals once they are
    stored (None: no webhooks)."""
    if not settings.alerts.webhooks:
        return None
    dead_topic = app.topic(settings.topics.alert_dead_letters, **topic_options)
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

    dispatcher = Dispatcher(list(settings.alerts.webhooks), on_attempt, dead_letter)

    @app.task
    async def start_webhooks() -> None:
        await dispatcher.start()
        log.info("webhook subscribers: %s", ", ".join(c.name for c in settings.alerts.webhooks))
        for config in settings.alerts.webhooks:
            undelivered = await clickhouse.run(
                undelivered_signals, clickhouse, config.name, settings.alerts.outbox_hours
            )
            for signal in undelivered:
                await dispatcher.submit(signal, only=config.name)
            if undelivered:
                log.info(
                    "%s: %d signal(s) of the last %gh without a final delivery, queued again",
                    config.name,
                    len(undelivered),
                    settings.alerts.outbox_hours,
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
