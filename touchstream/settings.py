"""The one settings object. Built once at start (CLI, worker, tests) and passed down.

Grouped by what they configure (`settings.broker.url`, `settings.web.port`...), read from the
environment variables operators already use, one flat name each (TOUCHSTREAM_BROKER_URL,
TOUCHSTREAM_WEB_PORT...: `ENV_NAMES`), or from `.env`; the environment wins. `touchstream
config` prints them all with where each came from."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from touchstream.schemas import DEFAULT_MAX_PAYLOAD_BYTES, InputLimits
from touchstream.schemas.touchpoint import DEFAULT_MAX_FUTURE_SKEW, EARLIEST_OCCURRED_AT
from touchstream.sinks.subscribers import WebhookConfig

if TYPE_CHECKING:
    from touchstream.sinks.clickhouse import ClickHouse

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


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Group):
    url: str = Field(
        default=EMBEDDED,
        description="'embedded' starts a Tansu broker; else kafka://host:9092[;host2:9092].",
    )
    partitions: int = Field(default=4, ge=1, le=1024, description="Partitions of new topics.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How workers, the CLI and the SDK talk to Kafka (passed to Faust and "
        "kafka-python alike).",
    )
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    producer_idempotence: bool = Field(
        default=True, description="Idempotent kafka-python producer (Tansu supports it)."
    )
    producer_linger_ms: int = Field(default=20, ge=0)
    producer_batch_bytes: int = Field(default=256 * 1024, ge=1024)
    consumer_session_timeout_seconds: float = Field(default=10.0, gt=0)
    consumer_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Longest a fetch waits for new records (latency when caught up).",
    )
    changelog_end_marker: bool = Field(
        default=True,
        description="End each batch's changelog writes with a one-record batch (needed on "
        "Tansu, whose ListOffsets reports the last batch's base offset; optional on Kafka).",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value != EMBEDDED and not value.startswith("kafka://"):
            raise ValueError("TOUCHSTREAM_BROKER_URL must be 'embedded' or start with kafka://")
        return value


class TopicSettings(_Group):
    touchpoints: str = "touchpoints"
    dead_letters: str = "touchpoints-dead-letters"
    metrics: str = "customer-metrics"
    signals: str = "signals"
    promise_alerts: str = "promise-alerts"
    alert_dead_letters: str = "signals-alerts-dead-letters"
    identify: str = Field(
        default="touchpoints-identify",
        description="Touchpoints that name their customer by identifiers (one partition: the "
        "resolver's); the SDK and the HTTP ingest publish those here.",
    )
    identity: str = Field(
        default="identity-merges", description="Merges of two customers found to be one."
    )
    retention_days: float = Field(
        default=0.0,
        ge=0,
        description="Days the broker keeps the records of the topics touchstream creates "
        "(every one above: they carry customer ids and identifiers' pseudonyms), so a "
        "forgotten customer leaves the topics too; 0 = the broker's default. Set when a topic "
        "is created: an existing topic keeps its own (kafka-configs.sh --alter).",
    )

    def created_with(self) -> dict[str, str]:
        """The configs a topic touchstream creates gets."""
        if not self.retention_days:
            return {}
        return {"retention.ms": str(round(self.retention_days * 86_400_000))}


class ClickHouseSettings(_Group):
    url: str | None = Field(
        default=None,
        description="Unset: chDB in DATA_DIR/chdb. Or chdb://PATH (relative), chdb:///ABS/PATH, "
        "or http(s)://user:pw@host:8123/db for a ClickHouse server.",
    )
    touchpoints_ttl_days: int = Field(
        default=0,
        ge=0,
        description="Days raw touchpoints are kept in ClickHouse, counted from occurred_at; "
        "0 = forever (the default: history given is kept, and state can be rebuilt from it). "
        "Changing it changes the table's TTL at the next start.",
    )

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


class WebSettings(_Group):
    """The worker's web server: ingest, the ops query path, metrics, and their keys."""

    port: int = Field(default=6066, ge=0, le=65535, description="Worker web server; 0 = off.")
    bind: str = "127.0.0.1"
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

    @field_validator("ingest_keys", "query_keys", "metrics_keys")
    @classmethod
    def _real_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            refusal = weak_key(key.get_secret_value())
            if refusal:
                raise ValueError(refusal)
        return keys


class WorkerSettings(_Group):
    app_id: str = Field(default="touchstream", description="Faust app id = consumer group.")
    batch_size: int = Field(default=5000, ge=1, description="Events per batch (at most).")
    batch_seconds: float = Field(default=0.05, gt=0, description="Longest wait for a batch.")
    batch_bytes: int = Field(
        default=1_000_000,
        ge=16 * 1024,
        description="Largest record batch it sends (changelog, outputs). A batch's state fits "
        "in a few, so its writes take a few round trips; keep it under the broker's "
        "message.max.bytes (1,048,588 on Apache Kafka).",
    )
    standby_replicas: int = Field(
        default=0,
        ge=0,
        description="Warm copies of other workers' state (Faust standby tables), for a faster "
        "take-over. Each copy reads the owner's whole changelog as it is written: with two "
        "workers, one standby doubled the CPU an event (measured). 0 = a new owner restores "
        "from the changelog, as Kafka Streams does by default.",
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
        description="The leader judges promise calibration this often (company-level "
        "promise_overcommitted alerts, into ClickHouse and the promise-alerts topic). 0 = off.",
    )
    wow_check_seconds: float = Field(
        default=60.0,
        ge=0,
        description="The leader decides the wow offers of the days event time has left behind "
        "this often, within each team's capacity (rules: wow.capacity_per_day); the published "
        "ones go to the signals topic and the webhooks. 0 = off (offers stay pending in "
        "wow_offers).",
    )
    partitions_assumed: int | None = Field(
        default=None, description="Replay: partitions to emulate (default: broker.partitions)."
    )


class LearningSettings(_Group):
    every_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="The leader relearns the risk model from the stored history this often "
        "and every worker loads the newest (0: only `touchstream learn` does).",
    )
    max_customers: int = Field(
        default=100_000,
        ge=1,
        description="Customers the risk model learns from at most (a stable sample by id): "
        "bounds the memory and time of a fit.",
    )


class InputSettings(_Group):
    """What a touchpoint may be: the same limits for the SDK, HTTP ingest and the worker."""

    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD_BYTES, ge=1024)
    max_future_skew_seconds: float = Field(default=DEFAULT_MAX_FUTURE_SKEW.total_seconds(), ge=0)
    earliest_occurred_at: datetime = Field(
        default=EARLIEST_OCCURRED_AT,
        description="Touchpoints before this are a zeroed clock (dead letters); the default "
        "keeps real history (anything from 1970-01-02 on).",
    )


class AlertSettings(_Group):
    webhooks: list[WebhookConfig] = Field(
        default_factory=list,
        description="Alert subscribers (JSON list): name, url, secret, kinds, min_severity, "
        "format (json|slack), timeout_seconds, max_attempts, breaker_failures...",
    )
    outbox_hours: float = Field(
        default=24.0,
        ge=0,
        description="At start, signals stored this many hours back that a subscriber has no "
        "final delivery for (a crash cut them off) are delivered again.",
    )


class IdentitySettings(_Group):
    secret: SecretStr | None = Field(
        default=None,
        description="HMAC key the SDK and the HTTP ingest pseudonymise identifier values "
        "with before they leave the process (unset: raw values are refused; values already "
        "pseudonymised, h1:..., pass). Keep it the same for every publisher.",
    )
    default_region: str = Field(
        default="",
        pattern=r"^([A-Za-z]{2})?$",
        description="Region a phone number without a country code is read in (e.g. DE).",
    )


class LogSettings(_Group):
    level: str = "INFO"
    format: Literal["text", "json"] = Field(
        default="text", description="text for people, json (one object a line) for pipelines."
    )


# TOUCHSTREAM_<NAME> -> (group, field); "" is the top level. The names operators set (deploy/,
# the README) predate the groups and stay as they are.
ENV_NAMES: dict[str, tuple[str, str]] = {
    "broker_url": ("broker", "url"),
    "partitions": ("broker", "partitions"),
    "kafka_security_protocol": ("broker", "security_protocol"),
    "kafka_sasl_mechanism": ("broker", "sasl_mechanism"),
    "kafka_sasl_username": ("broker", "sasl_username"),
    "kafka_sasl_password": ("broker", "sasl_password"),
    "producer_idempotence": ("broker", "producer_idempotence"),
    "producer_linger_ms": ("broker", "producer_linger_ms"),
    "producer_batch_bytes": ("broker", "producer_batch_bytes"),
    "consumer_session_timeout_seconds": ("broker", "consumer_session_timeout_seconds"),
    "consumer_fetch_max_wait_ms": ("broker", "consumer_fetch_max_wait_ms"),
    "changelog_end_marker": ("broker", "changelog_end_marker"),
    "topic_touchpoints": ("topics", "touchpoints"),
    "topic_dead_letters": ("topics", "dead_letters"),
    "topic_metrics": ("topics", "metrics"),
    "topic_signals": ("topics", "signals"),
    "topic_promise_alerts": ("topics", "promise_alerts"),
    "topic_alert_dead_letters": ("topics", "alert_dead_letters"),
    "topic_identify": ("topics", "identify"),
    "topic_identity": ("topics", "identity"),
    "topic_retention_days": ("topics", "retention_days"),
    "identity_secret": ("identity", "secret"),
    "identity_default_region": ("identity", "default_region"),
    "clickhouse_url": ("clickhouse", "url"),
    "touchpoints_ttl_days": ("clickhouse", "touchpoints_ttl_days"),
    "web_port": ("web", "port"),
    "web_bind": ("web", "bind"),
    "ingest_keys": ("web", "ingest_keys"),
    "query_keys": ("web", "query_keys"),
    "metrics_keys": ("web", "metrics_keys"),
    "ingest_max_body_bytes": ("web", "ingest_max_body_bytes"),
    "ingest_max_in_flight": ("web", "ingest_max_in_flight"),
    "query_max_rows": ("web", "query_max_rows"),
    "query_timeout_seconds": ("web", "query_timeout_seconds"),
    "query_max_memory_bytes": ("web", "query_max_memory_bytes"),
    "app_id": ("worker", "app_id"),
    "batch_size": ("worker", "batch_size"),
    "batch_seconds": ("worker", "batch_seconds"),
    "worker_batch_bytes": ("worker", "batch_bytes"),
    "standby_replicas": ("worker", "standby_replicas"),
    "clock_tick_seconds": ("worker", "clock_tick_seconds"),
    "promise_check_seconds": ("worker", "promise_check_seconds"),
    "wow_check_seconds": ("worker", "wow_check_seconds"),
    "partitions_assumed": ("worker", "partitions_assumed"),
    "learn_every_seconds": ("learning", "every_seconds"),
    "learn_max_customers": ("learning", "max_customers"),
    "max_payload_bytes": ("input", "max_payload_bytes"),
    "max_future_skew_seconds": ("input", "max_future_skew_seconds"),
    "earliest_occurred_at": ("input", "earliest_occurred_at"),
    "webhooks": ("alerts", "webhooks"),
    "webhook_outbox_hours": ("alerts", "outbox_hours"),
    "log_level": ("logs", "level"),
    "log_format": ("logs", "format"),
    "data_dir": ("", "data_dir"),
    "rules_file": ("", "rules_file"),
}
_JSON_VALUES = {"ingest_keys", "query_keys", "metrics_keys", "webhooks"}  # JSON lists


def env_name(group: str, field: str) -> str:
    """The environment variable of a setting."""
    return "TOUCHSTREAM_" + _BY_PLACE[(group, field)].upper()


_BY_PLACE = {place: name for name, place in ENV_NAMES.items()}


def _grouped(flat: dict[str, Any]) -> dict[str, Any]:
    """{"web_port": 0, "app_id": "x"} -> {"web": {"port": 0}, "worker": {"app_id": "x"}}."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        group, field = ENV_NAMES[name]
        if group:
            nested.setdefault(group, {})[field] = value
        else:
            nested[field] = value
    return nested


def touchstream_variables(
    environ: Mapping[str, str], env_file: Path | None
) -> list[tuple[str, str, str]]:
    """(name without the prefix, lower case; raw value; "environment" | ".env") of every
    TOUCHSTREAM_* variable set, `.env` first: a later one wins."""
    sources: list[tuple[Mapping[str, str | None], str]] = [(environ, "environment")]
    if env_file is not None and env_file.is_file():
        sources.insert(0, (dotenv_values(env_file), ".env"))
    return [
        (key.lower().removeprefix("touchstream_"), value or "", source)
        for values, source in sources
        for key, value in values.items()
        if key.lower().startswith("touchstream_")
    ]


def configured(environ: Mapping[str, str], env_file: Path | None) -> dict[str, tuple[str, str]]:
    """Setting name -> (raw value, "environment" | ".env") for every setting set."""
    return {
        name: (value, source)
        for name, value, source in touchstream_variables(environ, env_file)
        if name in ENV_NAMES
    }


def load_settings() -> Settings:
    """The settings, or SystemExit naming each variable that is wrong, as the operator set it
    (TOUCHSTREAM_WEB_PORT, not web.port)."""
    try:
        return Settings()
    except ValidationError as invalid:
        lines = []
        for error in invalid.errors():
            place = tuple(str(part) for part in error["loc"][:2])
            name = _BY_PLACE.get(place if len(place) == 2 else ("", place[0]), ".".join(place))
            lines.append(f"  TOUCHSTREAM_{name.upper()}: {error['msg']}")
        raise SystemExit("invalid settings:\n" + "\n".join(lines)) from None


def _decoded(name: str, raw: str) -> Any:
    """A JSON list's value decoded; anything else (a broken list too) as given, for
    pydantic to refuse with the variable's name."""
    if name in _JSON_VALUES and raw.strip():
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


class _FlatEnvironment(PydanticBaseSettingsSource):
    """The TOUCHSTREAM_* variables (and `.env`), put into their groups."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read at once, in __call__

    def __call__(self) -> dict[str, Any]:
        import os

        env_file = self.settings_cls.model_config.get("env_file")
        found = configured(os.environ, Path(str(env_file)) if env_file else None)
        return _grouped({name: _decoded(name, raw) for name, (raw, _) in found.items()})


class Settings(BaseSettings):
    """Every knob of touchstream, in groups; see the module's docstring for the names."""

    model_config = SettingsConfigDict(env_file=".env", extra="forbid")

    data_dir: Path = Field(default=Path(".touchstream"), description="Local state and reports.")
    rules_file: Path | None = Field(default=None, description="YAML or TOML rules file.")
    broker: BrokerSettings = BrokerSettings()
    topics: TopicSettings = TopicSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    web: WebSettings = WebSettings()
    worker: WorkerSettings = WorkerSettings()
    learning: LearningSettings = LearningSettings()
    input: InputSettings = InputSettings()
    alerts: AlertSettings = AlertSettings()
    identity: IdentitySettings = IdentitySettings()
    logs: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _FlatEnvironment(settings_cls)

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        """`Settings(web_port=0)` as the environment says it: flat names go to their group
        and win over the environment's value (init arguments come first)."""
        if not isinstance(data, dict):
            return data
        flat = {k: data[k] for k in data if k in ENV_NAMES and k not in cls.model_fields}
        merged = {k: v for k, v in data.items() if k not in flat}
        for group, values in _grouped(flat).items():
            merged[group] = {**dict(merged.get(group) or {}), **values}
        return merged

    def identity_secret(self) -> bytes | None:
        secret = self.identity.secret
        return None if secret is None else secret.get_secret_value().encode()

    def endpoint_keys(self, scope: Literal["ingest", "query", "metrics"]) -> list[str]:
        """The keys an endpoint accepts, as plain strings (empty: open, loopback only)."""
        keys: list[SecretStr] = getattr(self.web, f"{scope}_keys")
        return [key.get_secret_value() for key in keys]

    def exposure_problems(self) -> list[str]:
        """Why the worker's web server must not start as configured (empty: it may)."""
        if not self.web.port or is_loopback(self.web.bind):
            return []
        return [
            f"TOUCHSTREAM_WEB_BIND {self.web.bind} is reachable from other hosts but "
            f"TOUCHSTREAM_{name.upper()} is empty (set it, or bind 127.0.0.1)"
            for name in ("ingest_keys", "query_keys", "metrics_keys")
            if not getattr(self.web, name)
        ]

    @cached_property
    def max_future_skew(self) -> timedelta:  # asked for every event
        return timedelta(seconds=self.input.max_future_skew_seconds)

    @cached_property
    def input_limits(self) -> InputLimits:
        """What the per-record step needs of these settings (the engine sees no more)."""
        return InputLimits(
            max_future_skew=self.max_future_skew,
            max_bytes=self.input.max_payload_bytes,
            earliest=self.input.earliest_occurred_at,
        )

    @property
    def clickhouse_target(self) -> str:
        """The ClickHouse target actually used (the default lives in the data directory)."""
        return self.clickhouse.url or f"chdb://{self.data_dir / 'chdb'}"

    def clickhouse_client(self) -> ClickHouse:
        """A client of the configured ClickHouse (chDB or a server); it connects when used."""
        from touchstream.sinks.clickhouse import ClickHouse

        return ClickHouse(self.clickhouse_target, ttl_days=self.clickhouse.touchpoints_ttl_days)

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_target.startswith("chdb:")

    @property
    def embedded_broker(self) -> bool:
        return self.broker.url == EMBEDDED

    def bootstrap_servers(self) -> list[str]:
        """host:port list for kafka-python; the embedded broker must be resolved first."""
        if self.embedded_broker:
            raise RuntimeError("the embedded broker has no address until it is started")
        return self.broker.url.removeprefix("kafka://").split(";")

    def faust_credentials(self) -> object | None:
        """The same security settings, as Faust's `broker_credentials` (None: PLAINTEXT)."""
        import ssl

        import faust

        broker = self.broker
        if broker.security_protocol == "PLAINTEXT":
            return None
        context = ssl.create_default_context() if broker.security_protocol.endswith("SSL") else None
        if broker.security_protocol.startswith("SASL"):
            password = broker.sasl_password
            return faust.SASLCredentials(
                username=broker.sasl_username,
                password=password.get_secret_value() if password else None,
                mechanism=broker.sasl_mechanism or "PLAIN",
                ssl_context=context,
            )
        return faust.SSLCredentials(context)

    def kafka_security(self) -> dict[str, object]:
        """Security settings in kafka-python's keyword names (empty for PLAINTEXT)."""
        broker = self.broker
        options: dict[str, object] = {}
        if broker.security_protocol != "PLAINTEXT":
            options["security_protocol"] = broker.security_protocol
        if broker.sasl_mechanism:
            options["sasl_mechanism"] = broker.sasl_mechanism
            options["sasl_plain_username"] = broker.sasl_username
            if broker.sasl_password is not None:
                options["sasl_plain_password"] = broker.sasl_password.get_secret_value()
        return options
