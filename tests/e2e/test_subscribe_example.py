"""The README's subscriber example works against a real broker."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.sinks.test_webhooks import make_signal
from touchstream.broker import EmbeddedBroker
from touchstream.kafka import ensure_topics

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "subscribe_signals.py"


def test_subscriber_example_reads_signals(broker: EmbeddedBroker, unique: str) -> None:
    spec = importlib.util.spec_from_file_location("subscribe_signals", EXAMPLE)
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    topic = f"{unique}-signals"
    ensure_topics(broker.bootstrap, [topic], 2)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    sent = [make_signal(i) for i in range(3)]
    for signal in sent:
        producer.send(
            topic, key=signal.customer_id.encode(), value=signal.model_dump_json().encode()
        )
    producer.flush()
    producer.close()
    # a group join on Tansu takes seconds: stop at the three signals, give up after 40 s idle
    stream = example.signals(broker.bootstrap, f"{unique}-svc", topic, idle_ms=40_000)
    got = list(itertools.islice(stream, len(sent)))
    stream.close()  # the consumer leaves its group: no retries after the broker stops
    assert sorted(s.signal_id for s in got) == sorted(s.signal_id for s in sent)
