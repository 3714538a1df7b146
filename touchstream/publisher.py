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
from touchstream.schemas.identifiers import IdentifierRefused, is_pseudonym, normalise, pseudonym
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
    """(key, value) as published: key = customer_id so one customer stays on one partition
    (the event id for one named by identifiers only: the identify topic has one partition).
    The value leaves out the fields at their defaults (the schema states them): smaller, and
    the worker's decoder then needs no second parse to rule out a repeated key."""
    key = event.customer_id or event.event_id
    return key.encode(), event.model_dump_json(exclude_defaults=True).encode()


def needs_resolving(event: TouchpointEvent) -> bool:
    """Whether the event goes to the identify topic (the resolver) or straight on."""
    return bool(event.identifiers) or event.customer_id is None


def protect_identifiers(
    event: TouchpointEvent, secret: bytes | None, default_region: str = ""
) -> TouchpointEvent:
    """The event with its identifiers normalised and pseudonymised (HMAC with `secret`), so
    raw personal data never leaves the publishing process. Values already pseudonymised
    (`h1:...`) pass as they are. Raises TouchpointRejected: a value that cannot be of its
    type, or a raw value without a secret to pseudonymise it with."""
    if not event.identifiers:
        return event
    protected, errors = [], []
    for n, identifier in enumerate(event.identifiers):
        loc = f"identifiers.{n}.value"
        try:
            value = normalise(identifier.type, identifier.value, default_region)
        except IdentifierRefused as refused:
            errors.append(FieldError(loc=loc, type="invalid_identifier", msg=str(refused)))
            continue
        if secret is not None:
            value = pseudonym(identifier.type, value, secret, identifier.name or "")
        elif not is_pseudonym(value):
            errors.append(
                FieldError(
                    loc=loc,
                    type="invalid_identifier",
                    msg="a raw identifier value and no secret to pseudonymise it: set "
                    "TOUCHSTREAM_IDENTITY_SECRET, or send h1: pseudonyms",
                )
            )
            continue
        protected.append(identifier.model_copy(update={"value": value}))
    if errors:
        raise TouchpointRejected("invalid_identifier", errors)
    return event.model_copy(update={"identifiers": protected})


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
        identify_topic: str = _TOPICS.identify,
        identity_secret: bytes | None = None,
        default_region: str = "",
        idempotence: bool = _BROKER.producer_idempotence,
        linger_ms: int = _BROKER.producer_linger_ms,
        batch_bytes: int = _BROKER.producer_batch_bytes,
        **kafka_options: Any,
    ) -> None:
        """Defaults are the settings' (TOUCHSTREAM_*); `from_settings` takes them all."""
        self.topic, self.identify_topic = topic, identify_topic
        self.identity_secret, self.default_region = identity_secret, default_region
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
            identify_topic=settings.topics.identify,
            identity_secret=settings.identity_secret(),
            default_region=settings.identity.default_region,
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
            event = protect_identifiers(event, self.identity_secret, self.default_region)
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
        topic = self.identify_topic if needs_resolving(event) else self.topic
        future = self._producer.send(topic, key=key, value=value)
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
