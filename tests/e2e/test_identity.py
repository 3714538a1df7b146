"""One customer across channels through a real worker: identifiers published by the SDK,
resolved, merged, and queryable in ClickHouse."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.e2e.conftest import worker_env
from tests.e2e.helpers import publish_identified, wait_for_records
from tests.e2e.test_clickhouse_sink import scalar, wait_for
from tests.e2e.test_faults import publish, stored
from tests.e2e.test_identity_faults import identified, merge_ids, replayed
from tests.histories import IDENTITY_SECRET, one_person_on_three_channels
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.cli import app
from touchstream.generator import generate
from touchstream.kafka import ensure_topics, wait_until_committed
from touchstream.launcher import running_worker
from touchstream.query_client import query_worker
from touchstream.replay import IdentityOptions
from touchstream.sinks.clickhouse import ClickHouse

pytestmark = pytest.mark.e2e


def wait_for_zero(port: int, sql: str, timeout: float = 60.0) -> int:
    """Forget requests are applied per table, one after another."""
    deadline = time.monotonic() + timeout
    while (left := scalar(port, sql)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


SECRET = IDENTITY_SECRET


def test_identifiers_from_two_channels_become_one_customer(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = worker_env(
        broker,
        "identity",
        tmp_path,
        TOUCHSTREAM_WEB_PORT=str(port),
        TOUCHSTREAM_IDENTITY_SECRET=SECRET,
        TOUCHSTREAM_IDENTITY_DEFAULT_REGION="DE",
    )
    story = one_person_on_three_channels()
    with running_worker(env, tmp_path / "worker.log"):
        report = publish_identified(broker.bootstrap, env, story, SECRET)
        assert report.accepted == len(story) and not report.rejected
        merges = wait_for_records(
            broker.bootstrap, env["TOUCHSTREAM_TOPIC_IDENTITY"], lambda r: len(r) >= 2
        )
        survivor = merges[0]["survivor"]
        assert {m["survivor"] for m in merges} == {survivor}
        assert wait_for(port, "SELECT count() FROM identity_merges FINAL", 2) == 2
        # every touchpoint of the person counted once, under one customer
        sql = (
            f"SELECT max(event_count) FROM customer_metrics FINAL WHERE customer_id = '{survivor}'"
        )
        assert wait_for(port, sql, 5) == 5
        resolved = (
            "SELECT uniqExact(customer_id) FROM touchpoints_resolved WHERE event_id LIKE 'id-%'"
        )
        assert scalar(port, resolved) == 2  # the person, and "someone-else"
        assert (
            scalar(
                port, "SELECT count() FROM dead_letters WHERE error_kind = 'unresolved_identity'"
            )
            == 1
        )
        refused = "SELECT count() FROM identity_refusals WHERE reason = 'denied_identifier'"
        assert scalar(port, refused) == 1
        raw = "SELECT count() FROM touchpoints WHERE position(payload, 'example.com') > 0"
        assert scalar(port, raw) == 0  # only pseudonyms reached ClickHouse
        mapped = "SELECT uniqExact(customer_id) FROM identity_map FINAL WHERE kind = 'identifier'"
        assert scalar(port, mapped) == 1
        signals = "SELECT signal_id FROM signals FINAL ORDER BY signal_id"
        live_signals = query_worker(f"http://127.0.0.1:{port}", signals)["rows"]

        # ops find the person by any identifier, with their aliases and merges
        cli_env = {k: v for k, v in env.items() if k.startswith("TOUCHSTREAM_")}
        runner = CliRunner()
        phone = ["customer", "+49 171 2345678", "--type", "phone", "-o", "json"]
        shown = runner.invoke(app, phone, env=cli_env)
        assert shown.exit_code == 0, shown.output
        rows = [orjson.loads(line) for line in shown.stdout.splitlines() if line.startswith("{")]
        assert rows[0]["customer_id"] == survivor and rows[0]["event_count"] == 5
        aliases = {r["identifier"] for r in rows if r.get("kind") == "alias"}
        assert aliases == {m["absorbed"] for m in merges}
        assert {r["event_id"] for r in rows if "channel" in r} == {f"id-{n}" for n in range(1, 6)}
        unknown = runner.invoke(
            app, ["customer", "nobody@example.com", "--type", "email"], env=cli_env
        )
        assert unknown.exit_code == 1 and "no customer has the identifier" in unknown.output

        # forgetting one identifier forgets the person: every id, identifier and row
        forgot = runner.invoke(
            app, ["forget", "ANA.SILVA@example.com", "--type", "email"], env=cli_env
        )
        assert forgot.exit_code == 0, forgot.output
        ids = "', '".join([survivor, *aliases])
        done = (
            f"SELECT uniqExact(customer_id) FROM forgotten_customers WHERE customer_id IN ('{ids}')"
        )
        assert wait_for(port, done, 3) == 3
        for sql in (
            f"SELECT count() FROM touchpoints WHERE customer_id IN ('{ids}')",
            f"SELECT count() FROM customer_metrics WHERE customer_id IN ('{ids}')",
            "SELECT count() FROM identity_map",
            "SELECT count() FROM identity_merges",
        ):
            assert wait_for_zero(port, sql) == 0, sql
        assert scalar(port, "SELECT count() FROM touchpoints") == 1  # someone else's
    # a replay of the same file: the same merges, customers and signals
    again = replayed(story, "story", IdentityOptions(SECRET.encode(), "DE"))
    assert {m["merge_id"] for m in merges} == merge_ids(again)
    final = {s.customer_id: s.event_count for s in again.final}
    assert final == {survivor: 5, "someone-else": 1}
    assert [row[0] for row in live_signals] == sorted(s.signal_id for s in again.signals)


def test_live_signals_of_merged_customers_equal_the_replay(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A backfill named by e-mail and phone only, through one worker: each touchpoint that
    links two customers waits on the survivor's partition for the absorbed state, so live
    raises the signals a replay of the same file (merges applied in event-time order) does."""
    _, generated = generate(customers=250, months=3, seed=5)
    events = identified(sorted(generated, key=lambda e: e["occurred_at"])[:6000])
    expected = replayed(events, "backfill")
    merges = merge_ids(expected)
    assert len(merges) > 100 and len(expected.signals) > 100
    env = worker_env(broker, "idlive", tmp_path, TOUCHSTREAM_BATCH_SIZE="500")
    identify, touchpoints = env["TOUCHSTREAM_TOPIC_IDENTIFY"], env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    ensure_topics(broker.bootstrap, [identify], 1)
    with running_worker(env, tmp_path / "worker.log"):
        publish(
            broker.bootstrap, identify, [(e["event_id"].encode(), orjson.dumps(e)) for e in events]
        )
        topics = [identify, touchpoints, touchpoints, touchpoints]
        assert wait_until_committed(broker.bootstrap, env["TOUCHSTREAM_APP_ID"], topics, 240)
    _, _, live, _ = stored([tmp_path])  # what the engine raised, wow offers included
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        stored_merges = {r[0] for r in clickhouse.query("SELECT merge_id FROM identity_merges")[1]}
    finally:
        clickhouse.close()
    assert stored_merges == merges
    signals = {s.signal_id for s in expected.signals if s.kind.value != "wow_opportunity"}
    signals |= {offer.signal.signal_id for offer in expected.offers}
    only_live, only_replayed = sorted(live - signals), sorted(signals - live)
    assert (only_live, only_replayed) == ([], []), f"{len(only_live)} / {len(only_replayed)}"
