"""What a worker tells Prometheus, at GET /metrics on its web server.

One `Telemetry` per worker, built with the app and handed to the loops that count; its own
registry (not the process-wide default), so tests and several apps in one process do not
share counters.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "touchstream_events",
            "Touchpoint records handled, by outcome (applied, duplicate, late, rejected, control)",
            ["outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "touchstream_dead_letters",
            "Dead letters written by the worker, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.signals = Counter(
            "touchstream_signals", "Signals raised, by kind", ["kind"], registry=self.registry
        )
        self.sink_rows = Counter(
            "touchstream_sink_rows",
            "Rows written into ClickHouse, by table",
            ["table"],
            registry=self.registry,
        )
        self.sink_seconds = Histogram(
            "touchstream_sink_batch_seconds",
            "Seconds to write one batch into ClickHouse (retries included), by table",
            ["table"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.lag = Gauge(
            "touchstream_consumer_lag",
            "Records of a topic this worker has fetched or can fetch but not yet committed",
            ["topic"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "touchstream_webhook_attempts",
            "Webhook delivery attempts, by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Health:
    """GET /health: 200 once the worker has had its partitions assigned, else 503. No data,
    no key: for load balancers and readiness probes (and the test launcher)."""

    def __init__(self) -> None:
        self.ready = False

    def attach(self, app: Any) -> None:
        import faust

        health = self

        @app.page("/health")
        class HealthView(faust.web.View):
            async def get(self, request: Any) -> Any:
                return self.json({"ready": health.ready}, status=200 if health.ready else 503)


def attach_metrics_endpoint(app: Any, telemetry: Telemetry, keys: list[str]) -> None:
    """GET /metrics in Prometheus' text format (no customer data; a key when keys are set)."""
    import faust

    from touchstream.auth import key_allowed, presented_key

    @app.page("/metrics")
    class Metrics(faust.web.View):
        async def get(self, request: Any) -> Any:
            if not key_allowed(presented_key(request.headers), keys):
                return self.error(401, "missing or wrong API key (Authorization: Bearer KEY)")
            body, content_type = telemetry.render()
            return self.bytes(body, content_type=content_type.split(";")[0])
