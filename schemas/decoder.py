"""The engine's touchpoint, decoded from JSON in one pass by msgspec.

`TouchpointEvent` (pydantic) is the contract: its JSON Schema, its errors. Validating with it
costs 11-13 µs an event; msgspec decodes the same payload into the structs of
`schemas/wire.py` in ~3 µs, 6 with the checks below, which are compiled with the engine.
The fast path only ever *accepts*: whatever it is not sure of (a type it does not take, a
rule it does not check, a repeated key, more than six digits of fraction in a timestamp)
goes to pydantic, which accepts it (converted here) or rejects it with its own errors. So a
rejection is always pydantic's, and tests/schemas/test_decoder.py shows on generated
payloads that whatever the fast path accepts pydantic accepts with the same values.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec

from touchstream.schemas.identifiers import IdentifierType
from touchstream.schemas.touchpoint import (
    DEFAULT_MAX_FUTURE_SKEW,
    EARLIEST_OCCURRED_AT,
    RATING_BOUNDS,
)
from touchstream.schemas.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    InputLimits,
    parse_touchpoint,
    read_alike,
)
from touchstream.schemas.wire import (  # re-exported: the engine's touchpoint and its parts
    _DECODER,
    _ENCODER,
    CustomerIdentifier,
    Expectation,
    Money,
    Rating,
    Tolerance,
    Touchpoint,
)

__all__ = [
    "CustomerIdentifier",
    "Expectation",
    "Money",
    "Rating",
    "Tolerance",
    "Touchpoint",
    "decode_touchpoint",
    "decode_within",
]

_INT64: Final = 2**63
_EXTERNAL: Final = IdentifierType.external


def decode_touchpoint(
    raw: bytes,
    *,
    now: datetime | None = None,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    earliest: datetime | None = None,
) -> Touchpoint:
    """`parse_touchpoint`, fast: the same acceptance, the same values, the same errors."""
    if len(raw) <= max_bytes:
        event = _fast(raw, now, max_future_skew, earliest or EARLIEST_OCCURRED_AT)
        if event is not None:
            return event
    return Touchpoint.from_event(
        parse_touchpoint(
            raw, now=now, max_future_skew=max_future_skew, max_bytes=max_bytes, earliest=earliest
        )
    )


def decode_within(raw: bytes, limits: InputLimits) -> Touchpoint:
    """`decode_touchpoint` under an input record's limits (the settings' part)."""
    return decode_touchpoint(
        raw,
        max_future_skew=limits.max_future_skew,
        max_bytes=limits.max_bytes,
        earliest=limits.earliest,
    )


def _fast(
    raw: bytes, now: datetime | None, skew: timedelta, earliest: datetime
) -> Touchpoint | None:
    """The decoded touchpoint when every rule holds surely, else None (pydantic decides)."""
    try:
        event = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not read_alike(raw, _ENCODER.encode(event)):
        return None
    at = event.occurred_at
    if at < earliest or at - (now or datetime.now(UTC)) > skew:
        return None
    for expectation in event.expectations:
        if expectation.promised == 0 and expectation.tolerance.kind == "relative":
            return None
    rating = event.rating
    if rating is not None:
        low, high = RATING_BOUNDS[rating.scale]
        if not low <= rating.value <= high:
            return None
    if event.attributes and not _flat_attributes(event.attributes):
        return None
    if event.customer_id is None and not event.identifiers:
        return None
    for identifier in event.identifiers:
        if (identifier.type is _EXTERNAL) != (identifier.name is not None):
            return None
    if not _spelled_right(event):
        return None
    if at.tzinfo is not UTC:
        msgspec.structs.force_setattr(event, "occurred_at", at.astimezone(UTC))
    return event


_DIGITS: Final = "0123456789"
_LOWER: Final = "abcdefghijklmnopqrstuvwxyz"
_UPPER: Final = _LOWER.upper()
_ALNUM: Final = frozenset(_LOWER + _UPPER + _DIGITS)
_FIRST_OF_SLUG: Final = frozenset(_LOWER)
_IDENTIFIER: Final = _ALNUM | frozenset("_.:@/-")  # ^[A-Za-z0-9][A-Za-z0-9_.:@/\-]*$
_SLUG: Final = frozenset(_LOWER + _DIGITS + "_")  # ^[a-z][a-z0-9_]*$
_ATTRIBUTE_KEY: Final = _ALNUM | frozenset("_.-")  # ^[A-Za-z0-9_.\-]+$
_CURRENCY: Final = frozenset(_UPPER)  # ^[A-Z]{3}$


def _only(text: str, allowed: frozenset[str]) -> bool:
    """Every character of `text` is one of `allowed` (the fastest of the ways tried)."""
    return allowed.issuperset(text)


def _identifier(text: str | None) -> bool:
    return text is None or (text[:1] in _ALNUM and _only(text, _IDENTIFIER))


def _slug(text: str | None) -> bool:
    return text is None or (text[:1] in _FIRST_OF_SLUG and _only(text, _SLUG))


def _spelled_right(event: Touchpoint) -> bool:
    """TouchpointEvent's patterns (the structs check lengths only: see schemas/wire.py). The
    lengths are checked before, so no string here is empty."""
    if not (
        _identifier(event.event_id)
        and _identifier(event.customer_id)
        and _identifier(event.case_id)
        and _identifier(event.team)
        and _identifier(event.agent)
        and _identifier(event.site)
    ):
        return False
    value = event.value
    if value is not None and not _only(value.currency, _CURRENCY):
        return False
    for expectation in event.expectations:
        if not _slug(expectation.metric):
            return False
    for identifier in event.identifiers:
        if not _slug(identifier.name):
            return False
    return all(_only(key, _ATTRIBUTE_KEY) for key in event.attributes)


def _flat_attributes(attributes: dict[str, Any]) -> bool:
    for item in attributes.values():
        if type(item) is int and not -_INT64 <= item < _INT64:
            return False
        if type(item) is float and not math.isfinite(item):
            return False
    return True
