"""What a worker answers on its web port besides its API: GET /metrics for Prometheus and
GET /health for probes and the launcher (touchstream/launcher.py)."""

from __future__ import annotations

from typing import Any

from touchstream.auth import key_allowed, presented_key
from touchstream.streams.runtime.telemetry import Telemetry


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

    @app.page("/metrics")
    class Metrics(faust.web.View):
        async def get(self, request: Any) -> Any:
            if not key_allowed(presented_key(request.headers), keys):
                return self.error(401, "missing or wrong API key (Authorization: Bearer KEY)")
            body, content_type = telemetry.render()
            return self.bytes(body, content_type=content_type.split(";")[0])
