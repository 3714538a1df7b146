"""Publisher SDK: validate touchpoints, key them by customer, batch them to Kafka.

Each event is validated before it is sent, so a publisher learns at once which field broke
which rule; broker-side failures are reported per event after `flush()`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from kafka import KafkaProducer

from touchstream.schemas import (
    FieldError,
    TouchpointEvent,
    TouchpointRejected,
    parse_touchpoint,
    validate_touchpoint,
)
from touchstream.settings import BrokerSettings, InputSettings, Settings, TopicSettings

# the settings' defaults (TOUCHSTREAM_*), so a publisher without settings validates as they do
_BROKER, _INPUT, _TOPICS = BrokerSettings(), InputSettings(), TopicSettings()


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event that was not published, and why."""

    position: int | None  # line number or caller-supplied index
    kind: str
    errors: list[FieldError]
    payload: str

    @property
    def reason(self) -> str:
        return "; ".join(error.describe() for error in self.errors)


@dataclass
class PublishReport:
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def encode(event: TouchpointEvent) -> tuple[bytes, bytes]:
    """(key, value) as published: key = customer_id so one customer stays on one partition.
    The value leaves out the fields at their defaults (the schema states them): smaller, and
    the worker's decoder then needs no second parse to rule out a repeated key."""
    return event.customer_id.encode(), event.model_dump_json(exclude_defaults=True).encode()


class TouchpointPublisher:
    """Validating, batching producer of touchpoints (kafka-python).

    `publish()` returns the validated event, or a `Rejection` for invalid input; call
    `flush()` to wait for the broker and collect the final report.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str = _TOPICS.touchpoints,
        *,
        max_future_skew: timedelta = timedelta(seconds=_INPUT.max_future_skew_seconds),
        max_payload_bytes: int = _INPUT.max_payload_bytes,
        earliest_occurred_at: datetime | None = None,
        idempotence: bool = _BROKER.producer_idempotence,
        linger_ms: int = _BROKER.producer_linger_ms,
        batch_bytes: int = _BROKER.producer_batch_bytes,
        **kafka_options: Any,
    ) -> None:
        """Defaults are the settings' (TOUCHSTREAM_*); `from_settings` takes them all."""
        self.topic = topic
        self.max_future_skew = max_future_skew
        self.max_payload_bytes = max_payload_bytes
        self.earliest = earliest_occurred_at
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=idempotence,
            linger_ms=linger_ms,
            batch_size=batch_bytes,
            max_request_size=max(max_payload_bytes * 2, 1024 * 1024),
            **kafka_options,
        )
        self._lock = threading.Lock()
        self._report = PublishReport()
        self._sent = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, bootstrap: str, topic: str | None = None
    ) -> TouchpointPublisher:
        """A publisher configured as the worker validates: the same limits and security."""
        return cls(
            bootstrap,
            topic or settings.topics.touchpoints,
            max_future_skew=settings.max_future_skew,
            max_payload_bytes=settings.input.max_payload_bytes,
            earliest_occurred_at=settings.input.earliest_occurred_at,
            idempotence=settings.broker.producer_idempotence,
            linger_ms=settings.broker.producer_linger_ms,
            batch_bytes=settings.broker.producer_batch_bytes,
            **settings.kafka_security(),
        )

    def validate(
        self, item: TouchpointEvent | Mapping[str, Any] | bytes | str, now: datetime | None = None
    ) -> TouchpointEvent:
        if isinstance(item, TouchpointEvent):
            return item
        if isinstance(item, bytes | str):
            return parse_touchpoint(
                item,
                now=now,
                max_future_skew=self.max_future_skew,
                max_bytes=self.max_payload_bytes,
                earliest=self.earliest,
            )
        return validate_touchpoint(
            item, now=now, max_future_skew=self.max_future_skew, earliest=self.earliest
        )

    def publish(
        self,
        item: TouchpointEvent | Mapping[str, Any] | bytes | str,
        position: int | None = None,
    ) -> TouchpointEvent | Rejection:
        try:
            event = self.validate(item)
            key, value = encode(event)
            if len(value) > self.max_payload_bytes:
                raise TouchpointRejected(
                    "payload_too_large",
                    [
                        FieldError(
                            loc="",
                            type="payload_too_large",
                            msg=f"encoded event is {len(value)} bytes, "
                            f"the limit is {self.max_payload_bytes}",
                        )
                    ],
                )
        except TouchpointRejected as rejected:
            rejection = Rejection(position, rejected.kind, rejected.errors, _as_text(item))
            with self._lock:
                self._report.rejected.append(rejection)
            return rejection
        future = self._producer.send(self.topic, key=key, value=value)
        self._sent += 1
        future.add_errback(self._delivery_failed, position, value)
        return event

    def _delivery_failed(self, error: BaseException, position: int | None, value: bytes) -> None:
        rejection = Rejection(
            position,
            "delivery_failed",
            [FieldError(loc="", type="delivery_failed", msg=f"broker did not accept: {error}")],
            value.decode(),
        )
        with self._lock:
            self._report.rejected.append(rejection)

    def flush(self, timeout: float | None = None) -> PublishReport:
        """Wait for every send; returns (and resets) the report since the last flush."""
        self._producer.flush(timeout)
        with self._lock:
            report, self._report = self._report, PublishReport()
            failed = sum(1 for r in report.rejected if r.kind == "delivery_failed")
            report.accepted = self._sent - failed
            self._sent = 0
        return report

    def close(self) -> None:
        self._producer.close()

    def __enter__(self) -> TouchpointPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _as_text(item: object) -> str:
    if isinstance(item, bytes):
        return item.decode("utf-8", errors="replace")
    if isinstance(item, TouchpointEvent):
        return item.model_dump_json()
    if isinstance(item, str):
        return item
    import json

    return json.dumps(item, default=str)
