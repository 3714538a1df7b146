"""Company-level promise calibration through a real worker: the live timer raises the same
promise_overcommitted alert, once, as the replay of the same history."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests import histories
from tests.e2e.conftest import worker_env
from tests.e2e.helpers import replay_events, wait_for_records
from touchstream.broker import EmbeddedBroker
from touchstream.kafka import ensure_topics, read_topic, wait_until_committed
from touchstream.launcher import running_worker
from touchstream.replay import write_to_clickhouse
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.promise_alerts import judge
from touchstream.streams.rules import Rules

pytestmark = pytest.mark.e2e


def test_the_live_worker_raises_the_replays_alert_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    stories = histories.deliveries_by_team(40, late_share=0.3, weeks=5)
    events = sorted((e for h in stories for e in h.events), key=lambda e: e["occurred_at"])
    replayed = ClickHouse(f"chdb://{tmp_path / 'replay'}")
    try:
        write_to_clickhouse(replay_events(events), replayed, Rules().wow_margin)
        expected = [a.alert_id for a in judge(replayed, Rules(), lookback_windows=None)]
    finally:
        replayed.close()
    assert len(expected) == 1

    env = worker_env(broker, "promises", tmp_path / "worker", TOUCHSTREAM_PROMISE_CHECK_SECONDS="1")
    topic, alerts_topic = (
        env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"],
        env["TOUCHSTREAM_TOPIC_PROMISE_ALERTS"],
    )
    ensure_topics(broker.bootstrap, [topic], 4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for event in events:
        producer.send(topic, key=event["customer_id"].encode(), value=orjson.dumps(event))
    producer.flush()
    producer.close()
    with running_worker(env, tmp_path / "worker.log"):
        live = wait_for_records(broker.bootstrap, alerts_topic, lambda r: len(r) >= 1)
        assert wait_until_committed(broker.bootstrap, env["TOUCHSTREAM_APP_ID"], [topic], 120)
        time.sleep(4)  # every event is in ClickHouse; the 1-second timer judges a few more times
    assert [a["alert_id"] for a in live] == expected
    again = [v for *_, v in read_topic(broker.bootstrap, alerts_topic, idle_timeout_ms=1500)]
    assert len(again) == 1
    alert = orjson.loads(again[0])
    assert (alert["team"], alert["broken"], alert["promises"]) == ("courier-west", 12, 40)
