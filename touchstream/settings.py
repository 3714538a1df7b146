"""The one settings object. Built once at start (CLI, worker, tests) and passed down."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from touchstream.schemas import DEFAULT_MAX_PAYLOAD_BYTES, InputLimits
from touchstream.schemas.touchpoint import DEFAULT_MAX_FUTURE_SKEW, EARLIEST_OCCURRED_AT
from touchstream.sinks.subscribers import WebhookConfig

EMBEDDED = "embedded"
MIN_KEY_LENGTH = 16
_PLACEHOLDER = re.compile(r"change.?me|example|placeholder|secret|password|xxxx|test.?key", re.I)


def weak_key(key: str) -> str | None:
    """Why a key must not be accepted (None: it may)."""
    if len(key) < MIN_KEY_LENGTH:
        return f"API keys need at least {MIN_KEY_LENGTH} characters (e.g. `openssl rand -hex 24`)"
    if _PLACEHOLDER.search(key):
        return "an API key is still a placeholder from the examples: generate a real one"
    return None


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume reachable


class Settings(BaseSettings):
    """Every knob of touchstream; environment variables use the prefix `TOUCHSTREAM_`."""

    model_config = SettingsConfigDict(
        env_prefix="TOUCHSTREAM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    broker_url: str = Field(
        default=EMBEDDED,
        description="'embedded' starts a Tansu broker; else kafka://host:9092[;host2:9092].",
    )
    clickhouse_url: str | None = Field(
        default=None,
        description="Unset: chDB in DATA_DIR/chdb. Or chdb://PATH (relative), chdb:///ABS/PATH, "
        "or http(s)://user:pw@host:8123/db for a ClickHouse server.",
    )
    data_dir: Path = Field(default=Path(".touchstream"), description="Local state and reports.")
    app_id: str = Field(default="touchstream", description="Faust app id = consumer group.")
    topic_touchpoints: str = "touchpoints"
    topic_dead_letters: str = "touchpoints-dead-letters"
    topic_metrics: str = "customer-metrics"
    topic_signals: str = "signals"
    topic_promise_alerts: str = "promise-alerts"
    partitions: int = Field(default=4, ge=1, le=1024, description="Partitions of new topics.")
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024)
    max_future_skew_seconds: float = Field(default=DEFAULT_MAX_FUTURE_SKEW.total_seconds(), ge=0)
    earliest_occurred_at: datetime = Field(
        default=EARLIEST_OCCURRED_AT,
        description="Touchpoints before this are a zeroed clock (dead letters); the default "
        "keeps real history (anything from 1970-01-02 on).",
    )
    producer_idempotence: bool = Field(
        default=True, description="Idempotent kafka-python producer (Tansu supports it)."
    )
    producer_linger_ms: int = Field(default=20, ge=0)
    producer_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How workers, the CLI and the SDK talk to Kafka (passed to Faust and "
        "kafka-python alike).",
    )
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    rules_file: Path | None = Field(default=None, description="YAML or TOML rules file.")
    learn_every_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="The leader relearns the risk model from the stored history this often "
        "and every worker loads the newest (0: only `touchstream learn` does).",
    )
    learn_max_customers: int = Field(
        default=100_000,
        ge=1,
        description="Customers the risk model learns from at most (a stable sample by id): "
        "bounds the memory and time of a fit.",
    )
    partitions_assumed: int | None = Field(
        default=None, description="Replay: partitions to emulate (default: partitions)."
    )
    web_port: int = Field(default=6066, ge=0, le=65535, description="Worker web server; 0 = off.")
    web_bind: str = "127.0.0.1"
    consumer_session_timeout_seconds: float = Field(default=10.0, gt=0)
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Longest a fetch waits for new records (latency when caught up).",
    )
    batch_size: int = Field(default=5000, ge=1, description="Worker: events per batch (at most).")
    batch_seconds: float = Field(default=0.05, gt=0, description="Worker: max batch wait.")
    standby_replicas: int = Field(
        default=0,
        ge=0,
        description="Worker: warm copies of other workers' state (Faust standby tables), for "
        "a faster take-over. Each copy reads the owner's whole changelog as it is written: "
        "with two workers, one standby doubled the CPU an event (measured). 0 = a new owner "
        "restores from the changelog, as Kafka Streams does by default.",
    )
    worker_batch_bytes: int = Field(
        default=1_000_000,
        ge=16 * 1024,
        description="Worker: largest record batch it sends (changelog, outputs). A batch's "
        "state fits in a few, so its writes take a few round trips; keep it under the "
        "broker's message.max.bytes (1,048,588 on Apache Kafka).",
    )
    clock_tick_seconds: float = Field(
        default=0.0,
        ge=0,
        description="Live mode: publish a wall-clock tick to every partition this often, so "
        "silence is detected on quiet partitions too. 0 = off (backfills through the broker).",
    )
    promise_check_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Worker (leader): judge promise calibration this often (company-level "
        "promise_overcommitted alerts, into ClickHouse and the promise-alerts topic). 0 = off.",
    )
    wow_check_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Worker (leader): decide the wow offers of the days event time has left "
        "behind this often, within each team's capacity (rules: wow.capacity_per_day); the "
        "published ones go to the signals topic and the webhooks. 0 = off (offers stay "
        "pending in wow_offers).",
    )
    webhooks: list[WebhookConfig] = Field(
        default_factory=list,
        description="Alert subscribers (JSON list): name, url, secret, kinds, min_severity, "
        "format (json|slack), timeout_seconds, max_attempts, breaker_failures...",
    )
    topic_alert_dead_letters: str = "signals-alerts-dead-letters"
    webhook_outbox_hours: float = Field(
        default=24.0,
        ge=0,
        description="At start, signals stored this many hours back that a subscriber has no "
        "final delivery for (a crash cut them off) are delivered again.",
    )
    ingest_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys for POST /v1/touchpoints (JSON list; `Authorization: Bearer KEY`).",
    )
    query_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys for POST /v1/query and GET /v1/identity (read-only SQL; the CLI "
        "sends the first).",
    )
    metrics_keys: list[SecretStr] = Field(
        default_factory=list, description="Keys for GET /metrics (Prometheus' bearer token)."
    )
    ingest_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    ingest_max_in_flight: int = Field(
        default=50_000, ge=1, description="HTTP ingest answers 429 above this many events."
    )
    query_max_rows: int = Field(default=10_000, ge=1)
    query_timeout_seconds: float = Field(default=30.0, gt=0)
    query_max_memory_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=16 * 1024 * 1024,
        description="Memory one ops query may use (ClickHouse's max_memory_usage); in embedded "
        "mode it comes out of the worker's own process.",
    )
    touchpoints_ttl_days: int = Field(
        default=0,
        ge=0,
        description="Days raw touchpoints are kept in ClickHouse, counted from occurred_at; "
        "0 = forever (the default: history given is kept, and state can be rebuilt from it). "
        "Changing it changes the table's TTL at the next start.",
    )
    changelog_end_marker: bool = Field(
        default=True,
        description="End each batch's changelog writes with a one-record batch (needed on "
        "Tansu, whose ListOffsets reports the last batch's base offset; optional on Kafka).",
    )
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people, json (one object a line) for pipelines."
    )

    @field_validator("ingest_keys", "query_keys", "metrics_keys")
    @classmethod
    def _real_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            refusal = weak_key(key.get_secret_value())
            if refusal:
                raise ValueError(refusal)
        return keys

    def endpoint_keys(self, scope: Literal["ingest", "query", "metrics"]) -> list[str]:
        """The keys an endpoint accepts, as plain strings (empty: open, loopback only)."""
        keys: list[SecretStr] = getattr(self, f"{scope}_keys")
        return [key.get_secret_value() for key in keys]

    def exposure_problems(self) -> list[str]:
        """Why the worker's web server must not start as configured (empty: it may)."""
        if not self.web_port or is_loopback(self.web_bind):
            return []
        return [
            f"web_bind {self.web_bind} is reachable from other hosts but {name} is empty "
            f"(set TOUCHSTREAM_{name.upper()}, or bind 127.0.0.1)"
            for name in ("ingest_keys", "query_keys", "metrics_keys")
            if not getattr(self, name)
        ]

    @field_validator("touchpoints_ttl_days")
    @classmethod
    def _ttl_fits(cls, days: int) -> int:
        from touchstream.sinks.clickhouse import max_ttl_days

        if days > max_ttl_days():
            raise ValueError(
                f"a TTL of {days} days ends after 2106, where ClickHouse's DateTime wraps "
                f"around (every row would be deleted): at most {max_ttl_days()}, or 0 = forever"
            )
        return days

    @field_validator("broker_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value != EMBEDDED and not value.startswith("kafka://"):
            raise ValueError("broker_url must be 'embedded' or start with kafka://")
        return value

    @cached_property
    def max_future_skew(self) -> timedelta:  # asked for every event
        return timedelta(seconds=self.max_future_skew_seconds)

    @cached_property
    def input_limits(self) -> InputLimits:
        """What the per-record step needs of these settings (the engine sees no more)."""
        return InputLimits(
            max_future_skew=self.max_future_skew,
            max_bytes=self.max_payload_bytes,
            earliest=self.earliest_occurred_at,
        )

    @property
    def clickhouse(self) -> str:
        """The ClickHouse target actually used (the default lives in the data directory)."""
        return self.clickhouse_url or f"chdb://{self.data_dir / 'chdb'}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse.startswith("chdb:")

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url == EMBEDDED

    def bootstrap_servers(self) -> list[str]:
        """host:port list for kafka-python; the embedded broker must be resolved first."""
        if self.embedded_broker:
            raise RuntimeError("the embedded broker has no address until it is started")
        return self.broker_url.removeprefix("kafka://").split(";")

    def faust_credentials(self) -> object | None:
        """The same security settings, as Faust's `broker_credentials` (None: PLAINTEXT)."""
        import ssl

        import faust

        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return None
        context = ssl.create_default_context() if protocol.endswith("SSL") else None
        if protocol.startswith("SASL"):
            password = self.kafka_sasl_password
            return faust.SASLCredentials(
                username=self.kafka_sasl_username,
                password=password.get_secret_value() if password else None,
                mechanism=self.kafka_sasl_mechanism or "PLAIN",
                ssl_context=context,
            )
        return faust.SSLCredentials(context)

    def kafka_security(self) -> dict[str, object]:
        """Security settings in kafka-python's keyword names (empty for PLAINTEXT)."""
        options: dict[str, object] = {}
        if self.kafka_security_protocol != "PLAINTEXT":
            options["security_protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return options
