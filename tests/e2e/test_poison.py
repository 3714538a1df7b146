"""A poison corpus mixed into valid traffic, through a real worker: every bad record is a
dead letter with a reason, every good one is processed, the stream never stops."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests import scenarios
from tests.e2e.conftest import worker_env
from tests.e2e.test_clickhouse_sink import scalar, wait_for
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.kafka import ensure_topics
from touchstream.launcher import running_worker
from touchstream.query_client import query_worker

pytestmark = pytest.mark.e2e


def poison(valid: dict) -> dict[str, bytes]:
    """At least 30 kinds of bad input, each derived from a valid event."""
    raw = orjson.dumps(valid)

    def edit(**changes: object) -> bytes:
        return orjson.dumps({**valid, **changes})

    def without(field: str) -> bytes:
        return orjson.dumps({k: v for k, v in valid.items() if k != field})

    return {
        "truncated json": raw[: len(raw) // 2],
        "empty payload": b"",
        "not json at all": b"hello, kafka",
        "invalid utf-8": b"\xff\xfe\xfd" + raw,
        "utf-16 encoded": raw.decode().encode("utf-16"),
        "utf-8 bom": b"\xef\xbb\xbf" + raw,
        "NaN": raw[:-1] + b', "sentiment": NaN}',
        "Infinity": raw[:-1] + b', "sentiment": Infinity}',
        "-Infinity": raw[:-1] + b', "sentiment": -Infinity}',
        "number overflowing a double": raw[:-1] + b', "sentiment": 1e400}',
        "400-digit integer": raw[:-1] + b', "sentiment": ' + b"9" * 400 + b"}",
        "deep nesting": raw[:-1] + b', "attributes": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "10 MB payload": raw[:-1] + b', "source": "' + b"x" * (10 * 1024 * 1024) + b'"}',
        "control characters in an id": edit(customer_id="c\u0000\u0007d"),
        "duplicate key": raw[:-1] + b', "event_id": "again"}',
        "unknown field": edit(loyalty_tier="gold"),
        "unknown channel": edit(channel="fax"),
        "unknown kind": edit(kind="teleportation"),
        "far-future timestamp": edit(occurred_at="2999-01-01T00:00:00Z"),
        "ancient timestamp": edit(occurred_at="1970-01-01T00:00:00Z"),
        "naive timestamp": edit(occurred_at="2026-01-05T10:00:00"),
        "timestamp not a date": edit(occurred_at="yesterday"),
        "empty customer id": edit(customer_id=""),
        "whitespace customer id": edit(customer_id="   "),
        "customer id too long": edit(customer_id="c" * 500),
        "customer id a number": edit(customer_id=12345),
        "missing event id": without("event_id"),
        "missing occurred_at": without("occurred_at"),
        "top-level array": orjson.dumps([valid]),
        "top-level string": b'"a touchpoint"',
        "top-level null": b"null",
        "rating out of range": edit(rating={"scale": "csat_5", "value": 9}),
        "attribute nested object": edit(attributes={"deep": {"er": 1}}),
        "too many attributes": edit(attributes={f"a{i}": i for i in range(40)}),
        "boolean timestamp": edit(occurred_at=True),
    }


def test_poison_corpus_becomes_dead_letters_and_the_good_events_go_through(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = worker_env(
        broker,
        "poison",
        tmp_path,
        TOUCHSTREAM_WEB_PORT=str(port),
        TOUCHSTREAM_MAX_PAYLOAD_BYTES=str(64 * 1024),
    )
    good = scenarios.story()
    bad = poison(good[0])
    assert len(bad) >= 30
    topic = env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    ensure_topics(broker.bootstrap, [topic], 4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=16 * 2**20)
    bad_items = list(bad.values())
    every = max(1, len(good) // len(bad_items))
    for i, event in enumerate(good):
        producer.send(topic, key=event["customer_id"].encode(), value=orjson.dumps(event))
        if i % every == 0 and bad_items:
            producer.send(topic, key=b"poison", value=bad_items.pop())
    for value in bad_items:
        producer.send(topic, key=b"poison", value=value)
    producer.flush()
    producer.close()

    with running_worker(env, tmp_path / "worker.log"):
        landed = wait_for(port, "SELECT count() FROM touchpoints", len(good))
        dead = wait_for(port, "SELECT count() FROM dead_letters", len(bad))
        reasons = query_worker(
            f"http://127.0.0.1:{port}",
            "SELECT error_kind, reason FROM dead_letters WHERE source = {t:String}",
            params={"t": topic},
        )["rows"]
        distinct = scalar(port, "SELECT uniqExact(event_id) FROM touchpoints")
    assert landed == distinct == len(good)
    assert dead == len(bad)
    assert all(kind and reason for kind, reason in reasons), reasons
