"""The embedded broker forgets everything when it restarts; the customers' state does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import worker_env
from tests.e2e.helpers import replay_events
from tests.e2e.test_clickhouse_sink import publish, wait_for
from tests.factories import event_dict
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.launcher import running_worker
from touchstream.query_client import query_worker

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
CUSTOMERS = ["restart-a", "restart-b", "restart-c"]


def orders(first: int, count: int) -> list[dict]:
    return [
        event_dict(
            event_id=f"{customer}-{n}",
            customer_id=customer,
            occurred_at=(T0 + timedelta(days=7 * n, hours=i)).isoformat(),
        )
        for n in range(first, first + count)
        for i, customer in enumerate(CUSTOMERS)
    ]


def test_state_is_rebuilt_from_clickhouse_after_the_broker_lost_everything(
    tmp_path: Path,
) -> None:
    before, after = orders(0, 10), orders(10, 10)
    port = free_port()
    names = {"TOUCHSTREAM_WEB_PORT": str(port)}
    metrics = (
        "SELECT customer_id, event_count, first_seen, last_seen "
        "FROM customer_metrics FINAL ORDER BY customer_id"
    )
    url = f"http://127.0.0.1:{port}"

    with EmbeddedBroker(log_file=tmp_path / "tansu-1.log") as broker:
        env = worker_env(broker, "restart", tmp_path / "data", **names)
        publish(broker.bootstrap, env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"], before)
        with running_worker(env, tmp_path / "worker-1.log"):
            assert wait_for(port, "SELECT count() FROM touchpoints FINAL", 30) == 30
            assert wait_for(port, "SELECT sum(event_count) FROM customer_metrics FINAL", 30) == 30

    # a new broker: no topics, no changelog, no committed offsets; the same ClickHouse
    with EmbeddedBroker(log_file=tmp_path / "tansu-2.log") as broker:
        env = worker_env(broker, "restart", tmp_path / "data", **names)
        publish(broker.bootstrap, env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"], after)
        with running_worker(env, tmp_path / "worker-2.log"):
            assert wait_for(port, "SELECT count() FROM touchpoints FINAL", 60) == 60
            assert wait_for(port, "SELECT min(event_count) FROM customer_metrics FINAL", 20) == 20
            rows = query_worker(url, metrics)["rows"]
    log = (tmp_path / "worker-2.log").read_text()
    assert "have no state here" in log and "rebuilt from" in log

    # exactly what an uninterrupted run gives
    uninterrupted = {m.customer_id: m for m in replay_events(before + after).final}
    assert [row[0] for row in rows] == CUSTOMERS
    for customer_id, count, first_seen, last_seen in rows:
        expected = uninterrupted[customer_id]
        assert count == expected.event_count == 20
        assert datetime.fromisoformat(first_seen).replace(tzinfo=UTC) == expected.first_seen
        assert datetime.fromisoformat(last_seen).replace(tzinfo=UTC) == expected.last_seen
