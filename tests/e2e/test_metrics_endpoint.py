"""GET /metrics of a real worker: what it processed, rejected, raised and wrote."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests import scenarios
from tests.e2e.conftest import worker_env
from tests.e2e.helpers import replay_events
from tests.e2e.test_clickhouse_sink import publish
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.launcher import running_worker

pytestmark = pytest.mark.e2e


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_events_dead_letters_signals_and_rows(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = worker_env(
        broker, "metrics", tmp_path, TOUCHSTREAM_WEB_PORT=str(port), TOUCHSTREAM_LOG_FORMAT="json"
    )
    events = scenarios.story()
    topic = env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    publish(broker.bootstrap, topic, events)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send(topic, key=b"k", value=b"{not json")
    producer.send(topic, key=b"k", value=orjson.dumps({**events[0], "channel": "fax"}))
    producer.flush()
    producer.close()
    signals = len(replay_events(events).signals)
    with running_worker(env, tmp_path / "worker.log"):
        deadline = time.monotonic() + 120
        found: dict = {}
        while time.monotonic() < deadline:
            found = samples(port)
            written = value(found, "touchstream_sink_rows_total", table="touchpoints")
            if written >= len(events) and value(
                found, "touchstream_sink_rows_total", table="dead_letters"
            ):
                break
            time.sleep(1)
    assert value(found, "touchstream_events_total", outcome="applied") == len(events)
    assert value(found, "touchstream_events_total", outcome="rejected") == 2
    assert value(found, "touchstream_dead_letters_total", reason="invalid_json") == 1
    assert value(found, "touchstream_dead_letters_total", reason="invalid_event") == 1
    raised = sum(v for (name, _), v in found.items() if name == "touchstream_signals_total")
    assert raised == signals
    assert value(found, "touchstream_sink_rows_total", table="touchpoints") == len(events)
    assert value(found, "touchstream_sink_batch_seconds_count", table="touchpoints") >= 1
    assert ("touchstream_consumer_lag", (("topic", topic),)) in found
    lines = [orjson.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()]
    assert any("assigned" in line["message"] for line in lines)  # structured, every line
