"""Publishing through the real embedded broker: exactly the valid events arrive, intact."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.factories import event_dict
from touchstream.broker import EmbeddedBroker
from touchstream.cli import app
from touchstream.kafka import read_topic
from touchstream.schemas import TouchpointEvent

pytestmark = pytest.mark.e2e

VALID = 10_000

# (payload line, field the rejection must name, or "" for the payload as a whole)
BAD_LINES: list[tuple[str, str]] = [
    ('{"event_id": "bad-1", "customer_id": ', ""),  # invalid JSON
    (json.dumps({k: v for k, v in event_dict(event_id="bad-2").items() if k != "kind"}), "kind"),
    (json.dumps(event_dict(event_id="bad-3", customer_id=42)), "customer_id"),
    (json.dumps(event_dict(event_id="bad-4", channel="telepathy")), "channel"),
    (json.dumps(event_dict(event_id="bad-5", occurred_at="2026-03-01T10:00:00")), "occurred_at"),
    (json.dumps(event_dict(event_id="bad-6", occurred_at="2999-01-01T00:00:00Z")), "occurred_at"),
    # otherwise valid, but padded past the 64 KiB limit
    ("{" + " " * 70_000 + json.dumps(event_dict(event_id="bad-7"))[1:], ""),
    (json.dumps(event_dict(event_id="bad-8", rating={"scale": "nps_10", "value": 11})), "rating"),
    ("[]", ""),
]


def _valid_event(index: int) -> dict:
    return event_dict(
        event_id=f"ok-{index}",
        customer_id=f"cust-{index % 997}",
        occurred_at=f"2026-02-{1 + index % 28:02d}T{index % 24:02d}:00:00Z",
        channel=["web", "app", "email", "store", "delivery"][index % 5],
    )


def test_publish_file_delivers_exactly_the_valid_events(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    expected: dict[str, dict] = {}
    bad_at: dict[int, str] = {}
    lines = []
    bad_iter = iter(BAD_LINES)
    for index in range(VALID):
        if index % 1000 == 500:
            bad, field = next(bad_iter, (None, None))
            if bad is not None:
                lines.append(bad)
                bad_at[len(lines)] = field
        event = _valid_event(index)
        expected[event["event_id"]] = event
        lines.append(json.dumps(event))
    for bad, field in bad_iter:
        lines.append(bad)
        bad_at[len(lines)] = field
    path.write_text("\n".join(lines) + "\n")

    env = {"TOUCHSTREAM_BROKER_URL": broker.url, "TOUCHSTREAM_TOPIC_TOUCHPOINTS": unique}
    result = CliRunner().invoke(app, ["publish", str(path)], env=env)
    assert result.exit_code == 0, result.output

    records = list(read_topic(broker.bootstrap, unique, expected=VALID, idle_timeout_ms=5000))
    received = {}
    for _, _, key, value in records:
        event = TouchpointEvent.model_validate_json(value)
        assert key == event.customer_id.encode()
        received[event.event_id] = event
    assert len(records) == VALID
    assert set(received) == set(expected)
    for event_id in ("ok-0", "ok-4242", f"ok-{VALID - 1}"):
        original = TouchpointEvent.model_validate(expected[event_id])
        assert received[event_id] == original

    rejects = [orjson.loads(line) for line in path.with_suffix(".jsonl.rejects.jsonl").open("rb")]
    assert {r["line"] for r in rejects} == set(bad_at)
    for reject in rejects:
        field = bad_at[reject["line"]]
        named = {e["loc"].split(".")[0] for e in reject["errors"]}
        assert field in named, reject
        assert reject["reason"]
    assert f"{VALID}" in result.output and f"{len(BAD_LINES)}" in result.output
