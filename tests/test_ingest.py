"""How POST /v1/touchpoints cuts a body into items (no broker: the cutting alone)."""

from __future__ import annotations

import json

import orjson

from tests.factories import event_dict
from touchstream.ingest import split_items


def test_one_pretty_printed_event_is_one_item() -> None:
    """It was cut into one broken item a line (found by the docs' curl example)."""
    body = json.dumps(event_dict(event_id="pretty"), indent=2).encode()
    assert [orjson.loads(item)["event_id"] for item in split_items(body)] == ["pretty"]


def test_ndjson_is_one_item_a_line_and_blank_lines_are_skipped() -> None:
    lines = [json.dumps(event_dict(event_id=f"e{i}")) for i in range(3)]
    body = ("\n".join(lines[:2]) + "\n\n" + lines[2] + "\n").encode()
    assert split_items(body) == [line.encode() for line in lines]
    assert split_items(b'{"broken": \n{"event_id": "x"}') == [b'{"broken":', b'{"event_id": "x"}']


def test_an_array_is_its_elements_and_a_broken_array_one_broken_item() -> None:
    events = [event_dict(event_id=f"a{i}") for i in range(3)]
    items = split_items(json.dumps(events, indent=1).encode())
    assert [orjson.loads(item) for item in items] == [orjson.loads(orjson.dumps(e)) for e in events]
    assert split_items(b'[{"event_id": "a"},\n{"event_id"') == [b'[{"event_id": "a"},\n{"event_id"']


def test_an_object_is_passed_on_as_sent() -> None:
    """Byte for byte, so the duplicate-key check sees what the publisher sent."""
    body = b'  {"event_id": "d", "event_id": "e"}\n'
    assert split_items(body) == [body.strip()]
    assert split_items(b"  \n ") == []
