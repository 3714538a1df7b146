"""The effective configuration as `touchstream config` prints it: every setting and every rule,
its value with secrets masked, and where the value came from.

An operator asking "why does the worker do that" needs the value in force, not the
default in the docs: an environment variable, a line of `.env` or a rules file may have
changed it. Settings are grouped by what they configure; each group is a prefix list, and a
test keeps every setting in exactly one group.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from dotenv import dotenv_values

from touchstream.settings import Settings
from touchstream.sinks.clickhouse import redact
from touchstream.streams.rules import Rules, read_rules_file

# group -> setting names, or prefixes ending in "_", that belong to it
GROUPS: dict[str, tuple[str, ...]] = {
    "broker": (
        "broker_url",
        "kafka_",
        "producer_",
        "partitions",
        "topic_",
        "consumer_",
        "changelog_end_marker",
    ),
    "clickhouse": ("clickhouse_url", "data_dir", "touchpoints_ttl_days"),
    "web and keys": (
        "web_",
        "ingest_",
        "query_",
        "metrics_keys",
        "webhooks",
        "webhook_outbox_hours",
    ),
    "worker": (
        "app_id",
        "batch_",
        "standby_replicas",
        "worker_batch_bytes",
        "clock_tick_seconds",
        "promise_check_seconds",
        "wow_check_seconds",
        "partitions_assumed",
    ),
    "input limits": ("max_payload_bytes", "max_future_skew_seconds", "earliest_occurred_at"),
    "rules and learning": ("rules_file", "learn_"),
    "logs": ("log_",),
}
COLUMNS = ["group", "name", "value", "source"]


@dataclass(frozen=True, slots=True)
class Entry:
    group: str
    name: str  # the environment variable of a setting, the dotted path of a rule
    value: str
    source: str  # default | environment | .env | rules file | given


def group_of(field: str) -> str:
    """The one group a setting belongs to (KeyError names a setting no group lists)."""
    for group, members in GROUPS.items():
        if any(field.startswith(m) if m.endswith("_") else field == m for m in members):
            return group
    raise KeyError(f"setting {field!r} is in no group of touchstream/effective_config.py")


def _text(value: Any) -> str:
    if value is None:
        return "unset"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def setting_entries(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    env_file: Path = Path(".env"),
) -> list[Entry]:
    """Every setting; in JSON mode pydantic masks secrets, and URLs lose their password."""
    environ = os.environ if environ is None else environ
    from_env = {key.upper() for key in environ}
    from_file = {key.upper() for key in dotenv_values(env_file)} if env_file.is_file() else set()
    dumped = settings.model_dump(mode="json")
    entries = []
    for field, info in Settings.model_fields.items():
        name = f"TOUCHSTREAM_{field.upper()}"
        value = dumped[field]
        if field == "clickhouse_url" and value:
            value = redact(value)
        if name in from_env:
            source = "environment"
        elif name in from_file:
            source = ".env"
        elif getattr(settings, field) == info.get_default(call_default_factory=True):
            source = "default"
        else:
            source = "given"
        entries.append(Entry(group_of(field), name, _text(value), source))
    return sorted(entries, key=lambda e: (list(GROUPS).index(e.group), e.name))


def rule_entries(path: Path | None) -> list[Entry]:
    """Every rule, by dotted path; from the rules file where the file sets it."""
    given = read_rules_file(path) if path else {}
    rules = Rules.model_validate(given)
    entries: list[Entry] = []

    def walk(values: dict[str, Any], raw: Any, prefix: str) -> None:
        for key, value in values.items():
            inside = raw.get(key) if isinstance(raw, dict) else None
            path_ = f"{prefix}{key}"
            if isinstance(value, dict) and value:  # a group of rules, or a table of them
                walk(value, inside, path_ + ".")
                continue
            source = "rules file" if isinstance(raw, dict) and key in raw else "default"
            section = path_.split(".")[0] if "." in path_ else "general"
            entries.append(Entry(f"rules: {section}", path_, _text(value), source))

    walk(rules.model_dump(mode="json"), given, "")
    return entries


def effective(settings: Settings) -> list[Entry]:
    return setting_entries(settings) + rule_entries(settings.rules_file)
