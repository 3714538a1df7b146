"""`touchstream config`: the value in force of every setting and rule, and where it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from touchstream.cli import app
from touchstream.effective_config import rule_entries, setting_entries
from touchstream.settings import ENV_NAMES, Settings

SECRET_KEY = "f3a9c1e07b2d4a6e8c5b"
SASL_PASSWORD = "s3cr3t-sasl-pw"
URL_PASSWORD = "hunter22"


def test_every_setting_has_one_environment_name_and_every_name_one_setting() -> None:
    places = [
        (group, field)
        for group, info in Settings.model_fields.items()
        if isinstance(info.default, BaseModel)
        for field in type(info.default).model_fields
    ] + [
        (name, "")
        for name, info in Settings.model_fields.items()
        if not isinstance(info.default, BaseModel)
    ]
    named = [(g, f) if g else (f, "") for g, f in ENV_NAMES.values()]
    assert sorted(named) == sorted(places)


def test_flat_names_set_the_grouped_settings_and_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOUCHSTREAM_WEB_PORT", "7001")
    monkeypatch.setenv("TOUCHSTREAM_TOPIC_SIGNALS", "sig")
    settings = Settings(web_port=7002, app_id="given")
    assert (settings.web.port, settings.topics.signals, settings.worker.app_id) == (
        7002,
        "sig",
        "given",
    )
    with pytest.raises(ValueError, match="no_such_setting"):
        Settings(no_such_setting=1)


def test_each_setting_says_where_it_came_from_and_secrets_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("TOUCHSTREAM_PARTITIONS=12\nTOUCHSTREAM_LOG_LEVEL=DEBUG\n")
    environ = {
        "TOUCHSTREAM_QUERY_KEYS": json.dumps([SECRET_KEY]),
        "TOUCHSTREAM_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
        "TOUCHSTREAM_CLICKHOUSE_URL": f"http://ops:{URL_PASSWORD}@ch.internal:8123/touch",
        "touchstream_log_level": "WARNING",  # the environment wins over .env, in any case
        "TOUCHSTREAM_QUERY_KEY": SECRET_KEY,  # misspelt: no setting reads it
    }
    monkeypatch.chdir(tmp_path)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    entries = {e.name: e for e in setting_entries(settings, environ, env_file)}

    assert len(entries) == len(ENV_NAMES) + 1
    assert (entries["TOUCHSTREAM_QUERY_KEY"].group, entries["TOUCHSTREAM_QUERY_KEY"].source) == (
        "not settings",
        "environment",
    )
    assert (entries["TOUCHSTREAM_PARTITIONS"].value, entries["TOUCHSTREAM_PARTITIONS"].source) == (
        "12",
        ".env",
    )
    assert (entries["TOUCHSTREAM_LOG_LEVEL"].value, entries["TOUCHSTREAM_LOG_LEVEL"].source) == (
        "WARNING",
        "environment",
    )
    assert entries["TOUCHSTREAM_APP_ID"].source == "default"
    assert entries["TOUCHSTREAM_QUERY_KEYS"].source == "environment"
    assert entries["TOUCHSTREAM_CLICKHOUSE_URL"].value == "http://ops:***@ch.internal:8123/touch"
    shown = " ".join(e.value for e in entries.values())
    for secret in (SECRET_KEY, SASL_PASSWORD, URL_PASSWORD):
        assert secret not in shown
    assert entries["TOUCHSTREAM_KAFKA_SASL_PASSWORD"].value == "**********"


def test_rules_from_a_file_are_told_apart_from_the_defaults(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        'version = "shop-2"\n[risk]\nhorizon_days = 60\n'
        '[risk.actions]\nlapse = "call on {channel}"\n'
    )
    entries = {e.name: e for e in rule_entries(rules_file)}
    assert (entries["risk.horizon_days"].value, entries["risk.horizon_days"].source) == (
        "60.0",
        "rules file",
    )
    assert entries["risk.actions.lapse"].value == "call on {channel}"
    assert entries["version"].source == "rules file"
    assert entries["risk.min_lapse"].source == "default"
    assert entries["risk.horizon_days"].group == "rules: risk"
    defaults = {e.name: e for e in rule_entries(None)}
    assert defaults.keys() == entries.keys()
    assert {e.source for e in defaults.values()} == {"default"}


def test_the_config_command_prints_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHSTREAM_WEB_PORT", "7070")
    monkeypatch.setenv("TOUCHSTREAM_INGEST_KEYS", json.dumps([SECRET_KEY]))
    result = CliRunner().invoke(app, ["config", "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["TOUCHSTREAM_WEB_PORT"] == {
        "group": "web",
        "name": "TOUCHSTREAM_WEB_PORT",
        "value": "7070",
        "source": "environment",
    }
    assert "risk.horizon_days" in by_name
    assert SECRET_KEY not in result.stdout

    table = CliRunner().invoke(app, ["config"], env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "TOUCHSTREAM_WEB_PORT" in table.stdout and "rules: wow" in table.stdout
