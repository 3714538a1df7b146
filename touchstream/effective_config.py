"""The effective configuration as `touchstream config` prints it: every setting and every rule,
its value with secrets masked, and where the value came from.

An operator asking "why does the worker do that" needs the value in force, not the
default in the docs: an environment variable, a line of `.env` or a rules file may have
changed it. Settings are shown in their groups, each by the environment variable that
sets it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from touchstream.settings import ENV_NAMES, Settings, configured, touchstream_variables
from touchstream.sinks.clickhouse import redact
from touchstream.streams.rules import Rules, read_rules_file

COLUMNS = ["group", "name", "value", "source"]


@dataclass(frozen=True, slots=True)
class Entry:
    group: str
    name: str  # the environment variable of a setting, the dotted path of a rule
    value: str
    source: str  # default | environment | .env | rules file | given


def _text(value: Any) -> str:
    if value is None:
        return "unset"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def setting_entries(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    env_file: Path = Path(".env"),
) -> list[Entry]:
    """Every setting, group by group; in JSON mode pydantic masks secrets, and URLs lose
    their password."""
    found = configured(os.environ if environ is None else environ, env_file)
    dumped = settings.model_dump(mode="json")
    entries = []
    for name, (group, field) in ENV_NAMES.items():
        value = dumped[group][field] if group else dumped[field]
        if (group, field) == ("clickhouse", "url") and value:
            value = redact(value)
        model = getattr(settings, group) if group else settings
        info = type(model).model_fields[field]
        if name in found:
            source = found[name][1]
        elif getattr(model, field) == info.get_default(call_default_factory=True):
            source = "default"
        else:
            source = "given"
        entries.append(
            Entry(group or "general", f"TOUCHSTREAM_{name.upper()}", _text(value), source)
        )
    entries += [
        Entry("not settings", key, "ignored: not a setting (a typo?)", source)
        for key, source in unknown_names(environ, env_file)
    ]
    groups = [f for f in Settings.model_fields if isinstance(dumped[f], dict)]
    order = ["general", *groups, "not settings"]
    return sorted(entries, key=lambda e: (order.index(e.group), e.name))


KNOWN_SWITCHES = {"native"}  # TOUCHSTREAM_NATIVE, read before the settings: touchstream/native


def unknown_names(environ: Mapping[str, str] | None, env_file: Path) -> list[tuple[str, str]]:
    """TOUCHSTREAM_* variables no setting reads, with where they were set: a misspelt name
    is otherwise silently a default."""
    found = touchstream_variables(os.environ if environ is None else environ, env_file)
    return sorted(
        {
            (f"TOUCHSTREAM_{name.upper()}", source)
            for name, _, source in found
            if name not in ENV_NAMES and name not in KNOWN_SWITCHES
        }
    )


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
