"""Kafka security settings reach both clients; secrets stay out of reprs."""

from __future__ import annotations

import faust
import pytest
from pydantic import ValidationError

from touchstream.settings import Settings, load_settings


def test_plaintext_needs_no_credentials() -> None:
    settings = Settings()
    assert settings.faust_credentials() is None
    assert settings.kafka_security() == {}


def test_sasl_over_tls_goes_to_faust_and_kafka_python() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc-touchstream",
        kafka_sasl_password="pa55-w0rd",
    )
    credentials = settings.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert credentials.username == "svc-touchstream"
    assert credentials.ssl_context is not None  # SASL_SSL: TLS underneath
    assert credentials.protocol.value == "SASL_SSL"
    assert settings.kafka_security() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc-touchstream",
        "sasl_plain_password": "pa55-w0rd",
    }
    assert "pa55-w0rd" not in repr(credentials) + repr(settings) + str(settings)


def test_tls_only() -> None:
    credentials = Settings(kafka_security_protocol="SSL").faust_credentials()
    assert isinstance(credentials, faust.SSLCredentials)


def test_unknown_protocol_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="security_protocol"):
        Settings(kafka_security_protocol="KERBEROS")


def test_a_worker_reachable_from_other_hosts_refuses_to_start_without_keys(tmp_path) -> None:
    from typer.testing import CliRunner

    from touchstream.cli import app

    env = {
        "TOUCHSTREAM_DATA_DIR": str(tmp_path),
        "TOUCHSTREAM_WEB_BIND": "0.0.0.0",
        "TOUCHSTREAM_QUERY_KEYS": '["0123456789abcdef-query"]',
    }
    result = CliRunner().invoke(app, ["worker"], env=env)
    assert result.exit_code != 0
    message = str(result.exception) + result.output
    assert "refusing to start" in message
    assert "TOUCHSTREAM_INGEST_KEYS" in message and "TOUCHSTREAM_METRICS_KEYS" in message
    assert "TOUCHSTREAM_QUERY_KEYS" not in message.split("refusing to start")[1]
    placeholder = CliRunner().invoke(
        app, ["worker"], env={**env, "TOUCHSTREAM_INGEST_KEYS": '["change-me-please-123456"]'}
    )
    assert placeholder.exit_code != 0 and "placeholder" in str(placeholder.exception)


def test_wrong_values_are_reported_by_the_variable_the_operator_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOUCHSTREAM_WEB_PORT", "eighty")
    monkeypatch.setenv("TOUCHSTREAM_QUERY_KEYS", "[not json")
    monkeypatch.setenv("TOUCHSTREAM_KAFKA_SECURITY_PROTOCOL", "KERBEROS")
    with pytest.raises(SystemExit) as refused:
        load_settings()
    lines = str(refused.value).splitlines()
    assert lines[0] == "invalid settings:"
    assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
        "TOUCHSTREAM_KAFKA_SECURITY_PROTOCOL",
        "TOUCHSTREAM_QUERY_KEYS",
        "TOUCHSTREAM_WEB_PORT",
    ]


def test_topics_are_created_with_the_retention_set(broker, unique, monkeypatch) -> None:
    """TOUCHSTREAM_TOPIC_RETENTION_DAYS bounds how long the topics keep customer ids and
    pseudonyms (a forgotten customer leaves them too); the real broker accepts the config.
    Unset, the broker's default stays."""
    from kafka import KafkaAdminClient

    from touchstream.worker import ensure_worker_topics, output_topics

    assert load_settings().topics.created_with() == {}
    monkeypatch.setenv("TOUCHSTREAM_TOPIC_RETENTION_DAYS", "7")
    names = ("TOUCHPOINTS", "DEAD_LETTERS", "METRICS", "SIGNALS", "PROMISE_ALERTS", "IDENTITY")
    for name in (*names, "IDENTIFY", "ALERT_DEAD_LETTERS"):
        monkeypatch.setenv(f"TOUCHSTREAM_TOPIC_{name}", f"{unique}-{name.lower()}")
    settings = load_settings()
    assert settings.topics.created_with() == {"retention.ms": str(7 * 86_400_000)}
    wanted = [*output_topics(settings), settings.topics.identify]
    assert sorted(ensure_worker_topics(settings, broker.bootstrap)) == sorted(wanted)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        assert set(wanted) <= set(admin.list_topics())
    finally:
        admin.close()
    assert ensure_worker_topics(settings, broker.bootstrap) == []  # existing: left as they are
    monkeypatch.setenv("TOUCHSTREAM_TOPIC_RETENTION_DAYS", "-1")
    with pytest.raises(SystemExit, match="TOUCHSTREAM_TOPIC_RETENTION_DAYS"):
        load_settings()
