"""Reading touchpoints from files: JSON lines, or CSV with a column mapping.

A CSV header names a field by its dotted path (`rating.scale`, `expectations.0.promised`,
`attributes.region`); `--map column=path` renames columns that are called otherwise.
Empty cells are left out, so optional fields can be blank.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Payload = bytes | dict[str, Any]


@dataclass(frozen=True, slots=True)
class InputRecord:
    line: int  # 1-based line number in the file (CSV: the header is line 1)
    payload: Payload  # raw JSON bytes, or a decoded mapping from CSV


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """`["ts=occurred_at", ...]` -> {"ts": "occurred_at"}; raises ValueError on a bad pair."""
    mapping = {}
    for pair in pairs:
        column, sep, path = pair.partition("=")
        if not sep or not column or not path:
            raise ValueError(f"mapping {pair!r} must look like column=field.path")
        mapping[column] = path
    return mapping


def _assign(target: dict[str, Any], path: str, value: str) -> None:
    parts = path.split(".")
    node: Any = target
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        following = None if last else parts[index + 1]
        child_default: Any = [] if following is not None and following.isdigit() else {}
        if isinstance(node, list):
            slot = int(part)
            while len(node) <= slot:
                node.append({})
            if last:
                node[slot] = value
            else:
                if not node[slot]:
                    node[slot] = child_default
                node = node[slot]
        else:
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, child_default)


def row_to_event(row: Mapping[str, str | None], mapping: Mapping[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":
            continue
        _assign(event, mapping.get(column, column), cell)
    return event


def detect_format(path: Path) -> str:
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Every non-blank line of a JSONL file, stripped, with its 1-based line number."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped


def read_records(
    path: Path, fmt: str | None = None, mapping: Mapping[str, str] | None = None
) -> Iterator[InputRecord]:
    """Yield every non-blank record with its line number; nothing is validated here."""
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        for number, line in jsonl_lines(path):
            yield InputRecord(number, line)
    elif fmt == "csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield InputRecord(reader.line_num, row_to_event(row, mapping or {}))
    else:
        raise ValueError(f"unknown format {fmt!r}: use jsonl or csv")
