"""Turning raw bytes into a `TouchpointEvent`, or into errors a publisher can act on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from pydantic import ValidationError

from touchstream.schemas.dead_letter import DeadLetter, FieldError
from touchstream.schemas.touchpoint import DEFAULT_MAX_FUTURE_SKEW, TouchpointEvent

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
_SHOWN_INPUT_CHARS = 120
_KEPT_PAYLOAD_BYTES = 16 * 1024
_AT_KEY: Final = b'"occurred_at"'


class TouchpointRejected(ValueError):
    """A payload that is not a valid touchpoint. `kind` groups reasons for dashboards."""

    def __init__(self, kind: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.errors = errors
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        return "; ".join(error.describe() for error in self.errors)


def _shorten(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    if len(text) > _SHOWN_INPUT_CHARS:
        return text[:_SHOWN_INPUT_CHARS] + f"... ({len(text)} chars)"
    return text


def _field_errors(error: ValidationError) -> list[FieldError]:
    out = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"])
        shown = None if item["type"] == "missing" else _shorten(item.get("input"))
        out.append(FieldError(loc=loc, type=item["type"], msg=item["msg"], input=shown))
    return out


def _kind_of(errors: list[FieldError]) -> str:
    types = {error.type for error in errors}
    if "json_invalid" in types:
        return "invalid_json"
    if "json_type" in types or "model_type" in types:
        return "not_an_object"
    if any(error.loc == "occurred_at" and "ahead" in error.msg for error in errors):
        return "future_timestamp"
    return "invalid_event"


def _context(
    now: datetime | None, max_future_skew: timedelta, earliest: datetime | None
) -> dict[str, Any]:
    return {
        "now": now or datetime.now(UTC),
        "max_future_skew": max_future_skew,
        "earliest": earliest,
    }


@dataclass(frozen=True, slots=True)
class InputLimits:
    """What an input record may be: the settings' part that the per-record step needs."""

    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    earliest: datetime | None = None


def parse_touchpoint(
    raw: bytes | str,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    earliest: datetime | None = None,
) -> TouchpointEvent:
    """Validate one JSON payload. Raises `TouchpointRejected` naming every broken rule."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise TouchpointRejected(
            "payload_too_large",
            [
                FieldError(
                    loc="",
                    type="payload_too_large",
                    msg=f"payload is {size} bytes, the limit is {max_bytes}",
                )
            ],
        )
    _refuse_duplicate_keys(raw)
    try:
        return TouchpointEvent.model_validate_json(
            raw, context=_context(now, max_future_skew, earliest)
        )
    except ValidationError as error:
        errors = _field_errors(error)
        raise TouchpointRejected(_kind_of(errors), errors) from None


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return found


def surely_unique_keys(raw: bytes | str) -> bool:
    """The fast, exact answer for the usual payload (no backslash), else False.

    Without a backslash every `"` in the text opens or closes a string (a key or a value).
    A parser keeps one of two equal keys, so a document with a repeated key parses to fewer
    strings, each of which took two quotes in the text.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if b"\\" in data:
        return False
    try:
        return data.count(b'"') == 2 * _strings(orjson.loads(data))
    except (orjson.JSONDecodeError, RecursionError):
        return False  # not JSON, or deeper than orjson reads: the slow path decides


def _strings(value: object) -> int:
    """The strings of a parsed document, keys included: counted in place, where the check
    used to write the document out again with orjson to count its quotes."""
    if isinstance(value, str):
        return 1
    count = 0
    if isinstance(value, dict):
        count = len(value)
        for item in value.values():
            count += _strings(item)
    elif isinstance(value, list):
        for item in value:
            count += _strings(item)
    return count


def read_alike(raw: bytes, encoded: bytes) -> bool:
    """Whether msgspec read `raw` as pydantic would, given msgspec's own encoding of what it
    read: equal (the resolver's and the SDK's output), or no key twice and no long fraction.
    Compiled: interpreted, these checks cost more than the decode (~1.5 µs an event)."""
    return raw == encoded or (_unique_keys(raw, encoded) and not _long_fraction(raw))


def _unique_keys(raw: bytes, encoded: bytes) -> bool:
    """No key given twice (msgspec keeps the last one silently; pydantic's path refuses).

    Without a backslash every `"` delimits a string. The structs omit their defaults when
    encoded, so the encoding holds the fewest strings the payload can have held: a payload
    with as many quotes has no key twice. Otherwise (a default given explicitly, a repeated
    key, escapes) the exact check decides."""
    if b"\\" not in raw and raw.count(b'"') == encoded.count(b'"'):
        return True
    return surely_unique_keys(raw)


def _long_fraction(raw: bytes) -> bool:
    """Whether the string after a `"occurred_at"` has more than 6 digits of a second (pydantic
    truncates them, msgspec rounds). Exact because the fast path has no escapes
    (`_unique_keys` sends those to pydantic); a regular expression over the payload cost 2 µs.
    """
    start = raw.find(_AT_KEY)
    while start != -1:
        opens = raw.find(b'"', start + len(_AT_KEY))
        text = raw[opens + 1 : raw.find(b'"', opens + 1)]
        point = max(text.rfind(b"."), text.rfind(b","))
        if point != -1 and text[point + 1 : point + 8].isdigit():
            return True
        start = raw.find(_AT_KEY, start + len(_AT_KEY))
    return False


def _refuse_duplicate_keys(raw: bytes | str) -> None:
    """A key given twice is ambiguous (parsers keep the first or the last): refused.
    Anything else wrong with the JSON is left to pydantic, which reports it better."""
    if surely_unique_keys(raw):
        return
    try:
        json.loads(raw, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as duplicate:
        key = str(duplicate)
        raise TouchpointRejected(
            "invalid_json",
            [
                FieldError(
                    loc=key,
                    type="duplicate_key",
                    msg=f"the key {key!r} appears more than once in one object",
                )
            ],
        ) from None
    except (ValueError, RecursionError):
        pass


def validate_touchpoint(
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    earliest: datetime | None = None,
) -> TouchpointEvent:
    """Validate an already-decoded mapping (CSV rows, SDK calls)."""
    try:
        return TouchpointEvent.model_validate(
            data, context=_context(now, max_future_skew, earliest)
        )
    except ValidationError as error:
        errors = _field_errors(error)
        raise TouchpointRejected(_kind_of(errors), errors) from None


def dead_letter_for(
    raw: bytes | str,
    rejection: TouchpointRejected,
    *,
    source: str,
    received_at: datetime,
    partition: int | None = None,
    offset: int | None = None,
    line: int | None = None,
) -> DeadLetter:
    """Package a rejected payload; the id is stable for the same source position and bytes."""
    data = raw.encode() if isinstance(raw, str) else raw
    digest = hashlib.sha256(f"{source}|{partition}|{offset}|{line}|".encode() + data).hexdigest()[
        :32
    ]
    kept = data[:_KEPT_PAYLOAD_BYTES]
    return DeadLetter(
        dead_letter_id=digest,
        received_at=received_at,
        source=source,
        partition=partition,
        offset=offset,
        line=line,
        error_kind=rejection.kind,
        errors=rejection.errors,
        payload=kept.decode("utf-8", errors="replace"),
        payload_bytes=len(data),
        truncated=len(data) > len(kept),
    )
