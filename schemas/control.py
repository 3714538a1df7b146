"""Control records: what the worker itself puts on the touchpoints topic (clock ticks,
forget requests, the two halves of a merge, a touchpoint that waits for its merges), and
the forget marker it passes on to the output topics.

Wire formats, so subscribers of the output topics can recognise a marker too. A merge's
records are keyed by a customer, like touchpoints, so they reach that customer's partition;
their value's first key says what they are (a touchpoint's is "event_id").
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

import msgspec
import orjson

from touchstream.schemas.dead_letter import FieldError
from touchstream.schemas.validation import TouchpointRejected

CLOCK_KEY = b"__clock__"
FORGET_KEY = b"__forget__"
FORGET_PREFIX = b'{"forget"'


def invalid_control(key: bytes | None, error: Exception) -> TouchpointRejected:
    """A control record that cannot be read: a dead letter that says so."""
    kind = "invalid_control_record"
    return TouchpointRejected(kind, [FieldError(loc="", type=kind, msg=f"{key!r}: {error}")])


def forget_marker(
    customer_id: str, requested_at: datetime, identifiers: Sequence[str] = ()
) -> bytes:
    """A forget request: on the identify topic `customer_id` may be any identity key
    (streams/identity.py); the resolver passes one on for the customer and each alias, with
    their identifiers' pseudonyms (for the rows that hold them only in a raw payload)."""
    request: dict[str, object] = {"forget": customer_id, "requested_at": requested_at.isoformat()}
    if identifiers:
        request["identifiers"] = list(identifiers)
    return orjson.dumps(request)


def parse_marker(raw: bytes) -> tuple[str, datetime, tuple[str, ...]]:
    """(customer or identity key, when it was requested, identifier pseudonyms)."""
    data = orjson.loads(raw)
    identifiers = tuple(str(value) for value in data.get("identifiers", ()))
    return str(data["forget"]), datetime.fromisoformat(data["requested_at"]), identifiers


MERGE_PREFIX = b'{"merge"'  # resolver -> the absorbed key's partition: hand your state over
ABSORB_PREFIX = b'{"absorb"'  # that partition -> the survivor's: merge this state in
AFTER_PREFIX = b'{"after"'  # resolver -> the survivor's: this touchpoint, once those are in
VIA_PREFIX = b'{"via"'  # a record sent on from a merged-away key, with the keys it came through
MERGE_HALVES = (MERGE_PREFIX, ABSORB_PREFIX)
CONTROL_PREFIXES = (*MERGE_HALVES, AFTER_PREFIX, VIA_PREFIX, FORGET_PREFIX)  # no touchpoint does
MAX_HOPS = 32  # keys a record may be sent on through (a chain of merges is far shorter)


class _After(msgspec.Struct):
    after: list[str]
    touchpoint: msgspec.Raw


_AFTER = msgspec.json.Decoder(_After)


class _Via(msgspec.Struct):
    via: list[str]
    record: msgspec.Raw


_VIA = msgspec.json.Decoder(_Via)


def sent_on(via: Sequence[str], record: bytes) -> bytes:
    """A record (touchpoint, merge half, waiting touchpoint) sent on from merged-away keys
    to the customer they now are: `via` the keys it came through, so a loop of redirects
    (merge requests written by someone else than the resolver) ends instead of circling."""
    return b'{"via":%b,"record":%b}' % (orjson.dumps(list(via)), record)


def parse_via(raw: bytes) -> tuple[list[str], bytes]:
    """(the keys the record came through, the record as it was before)."""
    wrapped = _VIA.decode(raw)
    record = bytes(wrapped.record)
    if record.startswith(VIA_PREFIX):
        raise ValueError("a sent-on record inside another")
    return wrapped.via, record


def merge_request(absorbed: str, survivor: str, merge_id: str) -> bytes:
    return orjson.dumps({"merge": absorbed, "into": survivor, "merge_id": merge_id})


def absorb_request(absorbed: str, survivor: str, merge_id: str, state: bytes | None) -> bytes:
    """`state`: the absorbed key's encoded state (None: it had none)."""
    encoded = None if state is None else base64.b64encode(state).decode()
    return orjson.dumps(
        {"absorb": absorbed, "into": survivor, "merge_id": merge_id, "state": encoded}
    )


def parse_merge(raw: bytes) -> tuple[str, str, str, bytes | None]:
    """(absorbed, survivor, merge id, encoded state or None) of either half."""
    data = orjson.loads(raw)
    absorbed = data["merge"] if "merge" in data else data["absorb"]
    state = data.get("state")
    return (
        str(absorbed),
        str(data["into"]),
        str(data["merge_id"]),
        None if state is None else base64.b64decode(state, validate=True),
    )


def after_merges(absorbed: Sequence[str], touchpoint: bytes) -> bytes:
    """The touchpoint that made merges, for the survivor's partition: it is judged once the
    absorbed customers' states have joined the survivor's (until then it waits there)."""
    return b'{"after":%b,"touchpoint":%b}' % (orjson.dumps(list(absorbed)), touchpoint)


def parse_after(raw: bytes) -> tuple[list[str], bytes]:
    """(the absorbed ids waited for, the touchpoint as published)."""
    record = _AFTER.decode(raw)
    return record.after, bytes(record.touchpoint)
