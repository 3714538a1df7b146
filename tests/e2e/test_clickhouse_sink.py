"""Topics into ClickHouse (chDB) through the real worker: exact counts, even across SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from tests.e2e.conftest import worker_env
from tests.e2e.helpers import replay_events, wait_for_records
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.generator import generate
from touchstream.kafka import ensure_topics
from touchstream.launcher import running_worker
from touchstream.query_client import query_worker
from touchstream.sinks.clickhouse import ClickHouse

pytestmark = pytest.mark.e2e


def publish(bootstrap: str, topic: str, events: list[dict]) -> None:
    ensure_topics(bootstrap, [topic], 4)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    for event in events:
        producer.send(topic, key=event["customer_id"].encode(), value=orjson.dumps(event))
    producer.flush()
    producer.close()


def scalar(port: int, sql: str, api_key: str | None = None) -> int:
    return query_worker(f"http://127.0.0.1:{port}", sql, api_key=api_key)["rows"][0][0]


def wait_for(
    port: int, sql: str, want: int, timeout: float = 150.0, api_key: str | None = None
) -> int:
    deadline = time.monotonic() + timeout
    value = -1
    while time.monotonic() < deadline:
        try:
            value = scalar(port, sql, api_key)
        except OSError:
            value = -1
        if value >= want:
            return value
        time.sleep(1.0)
    return value


def expected_signals(events: list[dict]) -> set[str]:
    result = replay_events(events)
    return {s.signal_id for s in result.signals}


def test_every_event_lands_once_and_signals_match_the_topic(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    _, events = generate(customers=150, months=4, seed=3)
    port = free_port()
    env = worker_env(broker, "chsink", tmp_path, TOUCHSTREAM_WEB_PORT=str(port))
    publish(broker.bootstrap, env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"], events)
    want_signals = expected_signals(events)
    with running_worker(env, tmp_path / "worker.log"):
        assert wait_for(port, "SELECT count() FROM touchpoints", len(events)) == len(events)
        on_topic = wait_for_records(
            broker.bootstrap,
            env["TOUCHSTREAM_TOPIC_SIGNALS"],
            lambda r: len(r) >= len(want_signals),
        )
        wait_for(port, "SELECT uniqExact(signal_id) FROM signals", len(want_signals))
        rows = query_worker(f"http://127.0.0.1:{port}", "SELECT signal_id FROM signals FINAL")[
            "rows"
        ]
        customers = scalar(port, "SELECT count() FROM customer_metrics FINAL")
        distinct = scalar(port, "SELECT uniqExact(event_id) FROM touchpoints")
        levels = query_worker(
            f"http://127.0.0.1:{port}",
            "SELECT level, count() FROM touchpoints FINAL GROUP BY level",
        )
    assert distinct == len(events)
    assert customers == len({e["customer_id"] for e in events})
    assert {r[0] for r in rows} == {s["signal_id"] for s in on_topic} == want_signals
    assert len(rows) == len(want_signals)
    assert {r[0] for r in levels["rows"]} >= {"met", "none"}


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def inserted_offsets(path: Path) -> dict[int, set[int]]:
    clickhouse = ClickHouse(f"chdb://{path}")
    try:
        _, rows = clickhouse.query("SELECT kafka_partition, kafka_offset FROM touchpoints")
    finally:
        clickhouse.close()
    found: dict[int, set[int]] = {}
    for partition, offset in rows:
        found.setdefault(partition, set()).add(offset)
    return found


@pytest.fixture(scope="module")
def killed_run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A worker SIGKILLed a third of the way through 26k events."""
    tmp_path = tmp_path_factory.mktemp("kill")
    _, events = generate(customers=600, months=6, seed=5)
    port = free_port()
    env = worker_env(
        broker, "chkill", tmp_path, TOUCHSTREAM_WEB_PORT=str(port), TOUCHSTREAM_BATCH_SIZE="500"
    )
    topic = env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    publish(broker.bootstrap, topic, events)
    with running_worker(env, tmp_path / "worker-1.log") as first:
        progressed = wait_for(port, "SELECT count() FROM touchpoints", len(events) // 3)
        assert 0 < progressed < len(events), "kill must land mid-run"
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
    return {
        "events": events,
        "env": env,
        "port": port,
        "tmp": tmp_path,
        "committed": committed_offsets(broker.bootstrap, env["TOUCHSTREAM_APP_ID"], topic),
        "inserted": inserted_offsets(tmp_path / "chdb"),
    }


def test_sigkill_never_leaves_committed_offsets_ahead_of_clickhouse(killed_run: dict) -> None:
    """Offsets advance only after ClickHouse has the rows: everything below the committed
    offset of every partition is in the table when the worker dies."""
    committed, inserted = killed_run["committed"], killed_run["inserted"]
    assert committed and all(offset > 0 for offset in committed.values())
    for partition, offset in committed.items():
        missing = set(range(offset)) - inserted.get(partition, set())
        assert not missing, f"partition {partition}: committed {offset}, rows missing"


def test_sigkill_restart_completes_exactly(killed_run: dict, broker: EmbeddedBroker) -> None:
    """The restart reads on from the committed offsets: every event lands once, and the
    signals, metrics and dead letters are those of an uninterrupted run."""
    events, env, port = killed_run["events"], killed_run["env"], killed_run["port"]
    want_signals = expected_signals(events)
    with running_worker(env, killed_run["tmp"] / "worker-2.log"):
        landed = wait_for(
            port, "SELECT uniqExact(event_id) FROM touchpoints", len(events), timeout=90
        )
        wait_for(port, "SELECT uniqExact(signal_id) FROM signals", len(want_signals), timeout=20)
        total = scalar(port, "SELECT count() FROM touchpoints FINAL")
        signal_rows = query_worker(
            f"http://127.0.0.1:{port}", "SELECT signal_id FROM signals FINAL"
        )["rows"]
        metrics_rows = scalar(port, "SELECT count() FROM customer_metrics FINAL")
        # redelivered events are recognised by offset, not mistaken for late arrivals
        spurious = scalar(port, "SELECT count() FROM dead_letters")
    assert landed == total == len(events)
    assert sorted(r[0] for r in signal_rows) == sorted(want_signals)
    assert metrics_rows == len({e["customer_id"] for e in events})
    assert spurious == 0
