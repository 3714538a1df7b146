"""Live mode: wall-clock ticks through the log find silence on partitions with no traffic."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests import histories
from tests.e2e.conftest import worker_env
from tests.e2e.helpers import wait_for_records
from touchstream.broker import EmbeddedBroker
from touchstream.kafka import ensure_topics
from touchstream.launcher import running_worker

pytestmark = pytest.mark.e2e


def test_clock_ticks_raise_silence_for_a_lone_customer(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = worker_env(broker, "ticks", tmp_path, TOUCHSTREAM_CLOCK_TICK_SECONDS="1")
    topic = env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    ensure_topics(broker.bootstrap, [topic], 4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    lapser = histories.steady_then_silent()
    lone = lapser.events
    for event in lone:  # nobody else: event time on this partition stops with the customer
        producer.send(topic, key=event["customer_id"].encode(), value=orjson.dumps(event))
    producer.flush()
    producer.close()
    with running_worker(env, tmp_path / "worker.log"):
        signals = wait_for_records(
            broker.bootstrap,
            env["TOUCHSTREAM_TOPIC_SIGNALS"],
            lambda r: any(s["kind"] == "about_to_defect" for s in r),
            timeout=90,
        )
        dead = wait_for_records(
            broker.bootstrap, env["TOUCHSTREAM_TOPIC_DEAD_LETTERS"], lambda r: True, timeout=5
        )
    defect = [s for s in signals if s["kind"] == "about_to_defect"]
    assert len(defect) == 1
    assert defect[0]["customer_id"] == lapser.customer and defect[0]["trigger"] == "timer"
    assert defect[0]["reasons"][0]["factor"] == "lapse"
    assert dead == []  # ticks are not dead letters
