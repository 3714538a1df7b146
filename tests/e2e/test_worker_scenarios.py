"""The live path: real Tansu broker, real `touchstream worker` processes, planted stories."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests import scenarios
from tests.e2e.conftest import worker_env
from tests.e2e.helpers import replay_events, wait_for_records
from touchstream.broker import EmbeddedBroker
from touchstream.kafka import ensure_topics, read_topic
from touchstream.launcher import running_worker
from touchstream.streams.customer_state import CustomerState

pytestmark = pytest.mark.e2e

BAD = [
    b'{"event_id": "broken", ',
    json.dumps({**scenarios.story()[0], "event_id": "bad-channel", "channel": "fax"}).encode(),
    json.dumps({**scenarios.story()[0], "event_id": "bad-type", "customer_id": 7}).encode(),
    b"\xff\xfe not even utf-8",
]


@pytest.fixture(scope="module")
def live(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Publish the story twice over (every event duplicated) with poison in the middle,
    run one worker over it, then a second, fresh app over the same topic."""
    data_dir = tmp_path_factory.mktemp("live")
    story = scenarios.story()
    expected = replay_events(story, source="story")
    env_a = worker_env(broker, "scn-a", data_dir / "a")
    topic = env_a["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    ensure_topics(broker.bootstrap, [topic], 4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
    for index, event in enumerate(story):
        value = orjson.dumps(event)
        key = event["customer_id"].encode()
        producer.send(topic, key=key, value=value)
        producer.send(topic, key=key, value=value)  # at-least-once upstream: a duplicate
        if index % 150 == 75 and index // 150 < len(BAD):
            producer.send(topic, key=b"poison", value=BAD[index // 150])
    producer.flush()
    producer.close()

    want = len(expected.signals)
    results = {"expected": expected}
    for name, env in (
        ("a", env_a),
        ("b", worker_env(broker, "scn-b", data_dir / "b", TOUCHSTREAM_TOPIC_TOUCHPOINTS=topic)),
    ):
        with running_worker(env, data_dir / f"worker-{name}.log"):
            signals = wait_for_records(
                broker.bootstrap, env["TOUCHSTREAM_TOPIC_SIGNALS"], lambda r, n=want: len(r) >= n
            )
            dead = wait_for_records(
                broker.bootstrap,
                env["TOUCHSTREAM_TOPIC_DEAD_LETTERS"],
                lambda r: len(r) >= len(BAD),
            )
            metrics = wait_for_records(
                broker.bootstrap, env["TOUCHSTREAM_TOPIC_METRICS"], lambda r: len(r) > 0
            )
        changelog = f"app-scn-{name}-customer-state-changelog"
        state = {
            k: v for _, _, k, v in read_topic(broker.bootstrap, changelog, idle_timeout_ms=2000)
        }
        results[name] = {"signals": signals, "dead": dead, "metrics": metrics, "state": state}
    return results


def test_live_signals_equal_replay_signals(live: dict) -> None:
    expected = sorted(s.signal_id for s in live["expected"].signals)
    assert expected, "the story must raise signals"
    assert sorted(s["signal_id"] for s in live["a"]["signals"]) == expected


def test_slipping_customer_flagged_at_the_third_broken_promise_in_a_row(live: dict) -> None:
    flagged = [
        s
        for s in live["a"]["signals"]
        if s["customer_id"] == scenarios.SLIPPER and s["kind"] == "about_to_defect"
    ]
    assert len(flagged) == 1
    assert flagged[0]["trigger_event_id"] == f"{scenarios.SLIPPER}-0021"
    assert flagged[0]["reasons"][0]["factor"] == "broken_promises"
    assert flagged[0]["severity"] in ("high", "critical")


def test_fast_resolution_gets_recovery_wow(live: dict) -> None:
    wows = [
        s
        for s in live["a"]["signals"]
        if s["customer_id"] == scenarios.RECOVERED
        and s["kind"] == "wow_opportunity"
        and "recovery" in (s["suggested_action"] or "")
    ]
    assert len(wows) == 1


def test_erratic_customer_less_consistent_than_steady(live: dict) -> None:
    latest = {}
    for snapshot in live["a"]["metrics"]:
        current = latest.get(snapshot["customer_id"])
        if current is None or snapshot["as_of"] >= current["as_of"]:
            latest[snapshot["customer_id"]] = snapshot
    erratic, steady = latest[scenarios.ERRATIC], latest[scenarios.STEADY]
    assert erratic["quality_mean"] == pytest.approx(steady["quality_mean"], abs=0.05)
    assert erratic["consistency"] < steady["consistency"] - 0.2


def test_poison_lands_in_dead_letters_and_stream_keeps_going(live: dict) -> None:
    dead = live["a"]["dead"]
    assert len(dead) == len(BAD)
    assert all(d["partition"] is not None and d["offset"] is not None for d in dead)
    kinds = {d["error_kind"] for d in dead}
    assert "invalid_json" in kinds and "invalid_event" in kinds
    assert any("channel" in e["loc"] for d in dead for e in d["errors"])
    # the stream went on: events after every poison pill were processed (signals match)
    assert len(live["a"]["signals"]) == len(live["expected"].signals)


def test_duplicates_and_a_fresh_app_give_identical_state_and_ids(live: dict) -> None:
    assert sorted(s["signal_id"] for s in live["b"]["signals"]) == sorted(
        s["signal_id"] for s in live["a"]["signals"]
    )
    assert len(live["a"]["signals"]) == len({s["signal_id"] for s in live["a"]["signals"]})
    assert live["a"]["state"] and live["a"]["state"] == live["b"]["state"]
    replayed = live["expected"].states
    for customer in (scenarios.SLIPPER, scenarios.RECOVERED, scenarios.ERRATIC):
        key = orjson.dumps(customer)  # the table's changelog keys are JSON strings
        assert CustomerState.decode(live["a"]["state"][key]).event_count == (
            replayed[customer].event_count
        )


def test_replay_command_raises_the_live_signal_ids(live: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from touchstream.cli import app

    events = tmp_path / "story.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in scenarios.story()))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["replay", str(events), "--out", str(out)],
        env={"TOUCHSTREAM_PARTITIONS": "4", "TOUCHSTREAM_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    replayed = [orjson.loads(line) for line in (out / "signals.jsonl").read_bytes().splitlines()]
    assert sorted(s["signal_id"] for s in replayed) == sorted(
        s["signal_id"] for s in live["a"]["signals"]
    )
    customers = (out / "customers.jsonl").read_bytes().splitlines()
    assert len(customers) == len({e["customer_id"] for e in scenarios.story()})
    assert all(
        "risk_score" in orjson.loads(c) and "wow_score" in orjson.loads(c) for c in customers
    )
