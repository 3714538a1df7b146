"""The embedded broker forgets everything when it restarts; the customers' state does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import worker_env
from tests.e2e.helpers import publish_identified, replay_events
from tests.e2e.test_clickhouse_sink import publish, scalar, wait_for
from tests.factories import event_dict
from tests.histories import IDENTITY_SECRET, one_person_on_three_channels
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


def test_merged_customers_stay_one_after_the_broker_lost_everything(tmp_path: Path) -> None:
    """The identity graph comes back from ClickHouse with the states: identifiers seen
    again name the customer they named before, and an id merged away still leads to it."""
    story = one_person_on_three_channels()[:5]  # e-mail, phone, card; two merges
    port = free_port()
    names = {
        "TOUCHSTREAM_WEB_PORT": str(port),
        "TOUCHSTREAM_IDENTITY_SECRET": IDENTITY_SECRET,
        "TOUCHSTREAM_IDENTITY_DEFAULT_REGION": "DE",
    }

    def publish_named(broker: EmbeddedBroker, env: dict[str, str], events: list[dict]) -> None:
        report = publish_identified(broker.bootstrap, env, events, IDENTITY_SECRET)
        assert report.accepted == len(events)

    with EmbeddedBroker(log_file=tmp_path / "tansu-1.log") as broker:
        env = worker_env(broker, "lost-ids", tmp_path / "data", **names)
        with running_worker(env, tmp_path / "worker-1.log"):
            publish_named(broker, env, story)
            assert wait_for(port, "SELECT count() FROM identity_merges FINAL", 2, 30) == 2
            assert wait_for(port, "SELECT max(event_count) FROM customer_metrics FINAL", 5) == 5
            assert wait_for(port, "SELECT countIf(name = 'o:') FROM identity_graph FINAL", 1)
            (survivor, absorbed), *_ = query_worker(
                f"http://127.0.0.1:{port}",
                "SELECT survivor, absorbed FROM identity_merges FINAL ORDER BY at",
            )["rows"]

    crm = {"type": "crm_id", "value": "CRM-42"}  # new: a fresh graph would start a customer
    later = [
        {**story[2], "event_id": "id-after-card", "occurred_at": "2026-01-20T10:00:00+00:00"},
        {
            **story[1],
            "event_id": "id-after-phone",
            "occurred_at": "2026-01-21T10:00:00+00:00",
            "identifiers": [*story[1]["identifiers"], crm],
        },
        {**story[0], "event_id": "id-after-email", "occurred_at": "2026-01-22T10:00:00+00:00"},
        {**story[0], "event_id": "id-last", "occurred_at": "2026-04-01T10:00:00+00:00"},
    ]
    by_alias = event_dict(  # a publisher that still names the customer by the merged-away id
        event_id="id-after-alias", customer_id=absorbed, occurred_at="2026-01-19T10:00:00Z"
    )
    with EmbeddedBroker(log_file=tmp_path / "tansu-2.log") as broker:
        env = worker_env(broker, "lost-ids", tmp_path / "data", **names)
        with running_worker(env, tmp_path / "worker-2.log"):
            publish(broker.bootstrap, env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"], [by_alias])
            mine = f"SELECT count() FROM touchpoints FINAL WHERE customer_id = '{survivor}'"
            assert wait_for(port, mine, 4, 60) == 4  # it went on to the survivor
            publish_named(broker, env, later)
            assert wait_for(port, mine, 8, 60) == 8  # every later touchpoint is the survivor's
            # the survivor's state holds every fragment's history: 5 before, 5 after (the
            # silence checks before the last touchpoint write a snapshot of the first 9)
            counted = "SELECT max(event_count) FROM customer_metrics WHERE customer_id = "
            assert wait_for(port, f"{counted}'{survivor}'", 9, 60) in (9, 10)
            assert scalar(port, "SELECT count() FROM identity_merges FINAL") == 2
            crm_of = "SELECT customer_id FROM identity_map FINAL WHERE identifier LIKE 'crm_id:%'"
            assert query_worker(f"http://127.0.0.1:{port}", crm_of)["rows"] == [[survivor]]
    log = (tmp_path / "worker-2.log").read_text()
    assert "graph restored from ClickHouse" in log and "rebuilt from" in log
