from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from touchstream.inputs import InputRecord
from touchstream.kafka import read_topic
from touchstream.publisher import PublishReport, TouchpointPublisher
from touchstream.replay import ReplayResult, replay
from touchstream.streams.churn import RiskModel
from touchstream.streams.rules import Rules


def wait_for_records(
    bootstrap: str, topic: str, done: Callable[[list[dict]], bool], timeout: float = 120.0
) -> list[dict]:
    """Poll a topic until `done(records)` or the timeout; returns the decoded values."""
    deadline = time.monotonic() + timeout
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = [
            orjson.loads(v)
            for _, _, _, v in read_topic(bootstrap, topic, idle_timeout_ms=1500)
            if v
        ]
        if done(records):
            return records
        time.sleep(1.0)
    return records


def replay_events(
    events: list[dict], source: str = "test", rules: Rules | None = None
) -> ReplayResult:
    """What the live worker must produce for these events: the replay over 4 partitions."""
    records = [InputRecord(i, orjson.dumps(e)) for i, e in enumerate(events, 1)]
    return replay(records, rules=rules or Rules(), model=RiskModel(), partitions=4, source=source)


def publish_identified(
    bootstrap: str, env: dict[str, str], events: list[dict], secret: str
) -> PublishReport:
    """Events named by identifiers, through the SDK as a publisher sends them (pseudonymised
    with `secret`, phone numbers read in region DE), to the worker's identify topic."""
    with TouchpointPublisher(
        bootstrap,
        env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"],
        identify_topic=env["TOUCHSTREAM_TOPIC_IDENTIFY"],
        identity_secret=secret.encode(),
        default_region="DE",
    ) as publisher:
        for n, item in enumerate(events):
            publisher.publish(item, n)
        return publisher.flush(30)
