"""SIGKILLs while customers merge: afterwards one customer per person, every event counted
once, and the merges and counts a replay of the same file gives."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import worker_env
from tests.e2e.test_faults import QUIET_LEADER, Budget, publish
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.generator import generate
from touchstream.inputs import InputRecord
from touchstream.kafka import committed, ensure_topics, read_topic, wait_until_committed
from touchstream.launcher import running_worker
from touchstream.replay import IdentityOptions, ReplayResult, replay
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.rules import Rules

TEST_TIMEOUT = 600
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT)]

EVENTS = int(os.environ.get("TOUCHSTREAM_IDENTITY_FAULT_EVENTS", "30000"))
ALONE_BY_PHONE = ("phone", "chat", "store", "delivery")  # channels that know a phone number


def _pseudonym(kind: str, person: str) -> str:
    return "h1:" + hashlib.blake2b(f"{kind}/{person}".encode(), digest_size=16).hexdigest()


def identified(events: list[dict]) -> list[dict]:
    """Each person known by an e-mail online and a phone number elsewhere; a web purchase
    (a login) carries both, and merges the two customers they had become."""
    out = []
    for event in events:
        person = event.pop("customer_id")
        email = {"type": "email", "value": _pseudonym("email", person)}
        phone = {"type": "phone", "value": _pseudonym("phone", person)}
        if event["channel"] in ALONE_BY_PHONE:
            shown = [phone]
        elif event["channel"] == "web" and event["kind"] == "purchase":
            shown = [email, phone]
        else:
            shown = [email]
        out.append({**event, "identifiers": shown})
    return out


def replayed(
    events: list[dict], source: str, identity: IdentityOptions = IdentityOptions()
) -> ReplayResult:
    """The same touchpoints through `touchstream replay`'s engine, in their order."""
    return replay(
        [InputRecord(n, orjson.dumps(e)) for n, e in enumerate(events, start=1)],
        rules=Rules(),
        model=RiskModel(),
        partitions=4,
        source=source,
        identity=identity,
    )


def merge_ids(result: ReplayResult) -> set[str]:
    return {m.merge_id for resolved, _ in result.identity for m in resolved.merges}


def test_sigkills_during_merges_leave_one_customer_and_every_event_once(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    _, generated = generate(customers=max(200, EVENTS // 15), months=2.5, seed=31)
    events = identified(sorted(generated, key=lambda e: e["occurred_at"])[:EVENTS])
    expected = replayed(events, "faults")
    merges = merge_ids(expected)
    counts = {c: s.event_count for c, s in expected.states.items() if not s.merged_into}
    assert len(merges) > EVENTS // 100 and sum(counts.values()) == len(events)

    budget = Budget(TEST_TIMEOUT - 60)
    port = free_port()
    env = worker_env(
        broker,
        "idkills",
        tmp_path,
        TOUCHSTREAM_WEB_PORT=str(port),
        TOUCHSTREAM_BATCH_SIZE="500",  # the resolver busy for longer: kills land in it
        **QUIET_LEADER,
    )
    identify, touchpoints = env["TOUCHSTREAM_TOPIC_IDENTIFY"], env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    group = env["TOUCHSTREAM_APP_ID"]
    ensure_topics(broker.bootstrap, [identify], 1)
    values = [(e["event_id"].encode(), orjson.dumps(e)) for e in events]
    quarter = len(values) // 4
    chance = random.Random(3)
    for round_ in range(3):  # a quarter more published, and killed while resolving it
        with running_worker(env, tmp_path / f"worker-{round_}.log") as worker:
            publish(broker.bootstrap, identify, values[round_ * quarter : (round_ + 1) * quarter])
            target = round_ * quarter + int(quarter * chance.uniform(0.1, 0.6))
            while committed(broker.bootstrap, group, identify) < target:
                assert budget.left() > 1.0
                time.sleep(0.05)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    publish(broker.bootstrap, identify, values[3 * quarter :])
    with running_worker(env, tmp_path / "worker-last.log"):
        # merge halves and redirects come out of the touchpoints topic's own processing
        topics = [identify, touchpoints, touchpoints, touchpoints]
        assert wait_until_committed(broker.bootstrap, group, topics, budget.left())

    clickhouse = ClickHouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        rows = clickhouse.query("SELECT event_id FROM touchpoints FINAL")[1]
        stored_merges = {r[0] for r in clickhouse.query("SELECT merge_id FROM identity_merges")[1]}
        letters = clickhouse.query(
            "SELECT error_kind, JSONExtractString(payload, 'event_id') FROM dead_letters"
        )[1]
    finally:
        clickhouse.close()
    assert len(rows) == len({r[0] for r in rows}) == len(events)  # each event one row
    # The resolver sends the batch it was publishing when killed again (resolved anew from
    # the graph it had persisted). The keyed stage knows each copy by its event id within
    # the grace; a backfill moves event time so fast that a copy can arrive past it: then
    # it is a late_event dead letter, of an event counted once (never a second time).
    assert {kind for kind, _ in letters} <= {"late_event"}
    assert {event_id for _, event_id in letters} <= {r[0] for r in rows}
    assert stored_merges == merges
    # one state per person, each event counted once: the changelog's last word per key
    changelog = f"{env['TOUCHSTREAM_APP_ID']}-customer-state-changelog"
    final: dict[str, CustomerState] = {}
    for _, _, key, value in read_topic(broker.bootstrap, changelog, idle_timeout_ms=3000):
        if key is not None and value is not None:
            final[orjson.loads(key)] = CustomerState.decode(value)
    live = {c: s.event_count for c, s in final.items() if not s.merged_into}
    assert live == counts
