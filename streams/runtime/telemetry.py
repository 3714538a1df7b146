"""What a worker counts for Prometheus (served at GET /metrics by touchstream/probes.py)
and for the operator's progress log line.

One `Telemetry` per worker, built with the app and handed to the loops that count; its own
registry (not the process-wide default), so tests and several apps in one process do not
share counters.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from touchstream.streams.records import Processed, Record

log = logging.getLogger("touchstream.worker")


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
        self.behind = Counter(
            "touchstream_events_behind_watermark",
            "Touchpoints that arrived more than a silence-check period behind their "
            "partition's event time (their silence checks ran without them)",
            registry=self.registry,
        )
        self.identity = Counter(
            "touchstream_identity",
            "The resolver's work: identify records by outcome (resolved, unresolved, "
            "rejected), and the merges and refused links (refused:<reason>) they caused",
            ["what"],
            registry=self.registry,
        )
        self.offers = Counter(
            "touchstream_wow_offers",
            "Wow offers decided against the teams' capacity, by decision and team",
            ["decision", "team"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "touchstream_webhook_attempts",
            "Webhook delivery attempts, by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=self.registry,
        )

    def observe_write(self, table: str, rows: int, seconds: float) -> None:
        """One batch written into a table (the sinks' `observe` callback)."""
        self.sink_seconds.labels(table).observe(seconds)
        self.sink_rows.labels(table).inc(rows)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Progress:
    """Counts for the operator's log line (at most every 10 seconds) and for /metrics."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.events = 0
        self.kinds: dict[str, int] = {}
        self.window_start = time.monotonic()
        self.window_events = 0
        self.window_behind = 0
        self.window_most_behind = 0.0

    def add(self, batch: list[tuple[Processed, int, int]], records: list[Record]) -> None:
        counts: Tally[tuple[Any, str]] = Tally()
        for handled, _, _ in batch:
            counts[(self.telemetry.events, handled.outcome)] += 1
            for reason in handled.dead_reasons:
                counts[(self.telemetry.dead_letters, reason)] += 1
            for kind in handled.signal_kinds:
                counts[(self.telemetry.signals, kind)] += 1
            if handled.behind > 0.0:
                self.telemetry.behind.inc()
                self.window_behind += 1
                self.window_most_behind = max(self.window_most_behind, handled.behind)
        for (metric, label), n in counts.items():
            metric.labels(label).inc(n)
        events = len(batch)
        self.events += events
        self.window_events += events
        for name, _, _ in records:
            self.kinds[name] = self.kinds.get(name, 0) + 1
        elapsed = time.monotonic() - self.window_start
        if elapsed >= 10.0:
            log.info(
                "processed %d events (%.0f/s over %.0fs); out: %s",
                self.events,
                self.window_events / elapsed,
                elapsed,
                self.kinds,
            )
            if self.window_behind:
                log.warning(
                    "%d events arrived more than a silence-check period behind their "
                    "partition's event time "
                    "(up to %.1f days): the silence checks of their time ran without them. "
                    "History belongs in a replay, not the live topic (README: Backfill)",
                    self.window_behind,
                    self.window_most_behind / 86_400.0,
                )
            self.window_start, self.window_events = time.monotonic(), 0
            self.window_behind, self.window_most_behind = 0, 0.0
