"""Ops surface through a running worker: CLI queries, read-only endpoint, forget."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from tests.e2e.conftest import worker_env
from tests.e2e.test_clickhouse_sink import publish, scalar, wait_for
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.cli import app
from touchstream.generator import generate
from touchstream.launcher import running_worker
from touchstream.query_client import QueryFailed, query_worker
from touchstream.sinks.forget import CUSTOMER_ROWS

pytestmark = pytest.mark.e2e


def test_ops_cli_endpoint_safety_and_forget(broker: EmbeddedBroker, tmp_path: Path) -> None:
    _, events = generate(customers=40, months=3, seed=11)
    victim = events[0]["customer_id"]
    # the victim's bad events become dead letters: a forget must reach them too
    broken = [{**events[0], "event_id": f"broken-{n}", "channel": "fax"} for n in range(3)]
    port = free_port()
    env = worker_env(broker, "ops", tmp_path, TOUCHSTREAM_WEB_PORT=str(port))
    topic = env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    publish(broker.bootstrap, topic, events + broken)
    cli_env = {k: v for k, v in env.items() if k.startswith("TOUCHSTREAM_")}
    runner = CliRunner()
    url = f"http://127.0.0.1:{port}"
    with running_worker(env, tmp_path / "worker.log"):
        assert wait_for(port, "SELECT count() FROM touchpoints", len(events)) == len(events)
        wait_for(port, "SELECT count() FROM customer_metrics FINAL", 40)
        wait_for(port, "SELECT count() FROM signals FINAL", 5)  # its own sink, a bit behind
        victims_dead = (
            "SELECT count() FROM dead_letters WHERE position(payload, {quoted:String}) > 0"
        )
        quoted = {"quoted": orjson.dumps(victim).decode()}
        assert (
            wait_for(port, victims_dead.replace("{quoted:String}", f"'{quoted['quoted']}'"), 3) == 3
        )

        shown = runner.invoke(app, ["customer", victim], env=cli_env)
        assert shown.exit_code == 0, shown.output
        assert "consistency" in shown.output and "recent touchpoints" in shown.output
        listed = runner.invoke(
            app,
            [
                "query",
                "SELECT kind, count() AS n FROM touchpoints FINAL GROUP BY kind ORDER BY kind",
                "-o",
                "json",
            ],
            env=cli_env,
        )
        assert listed.exit_code == 0, listed.output
        kinds = [orjson.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
        assert sum(k["n"] for k in kinds) == len(events)
        recent = runner.invoke(app, ["signals", "--limit", "5", "-o", "csv"], env=cli_env)
        assert recent.exit_code == 0 and recent.stdout.startswith("raised_at,kind")

        # the endpoint is read-only and parameterised
        for attack in (
            "DROP TABLE touchpoints",
            "INSERT INTO signals (signal_id) VALUES ('x')",
            "SELECT 1; DROP TABLE touchpoints",
            "ALTER TABLE touchpoints DELETE WHERE 1",
        ):
            with pytest.raises(QueryFailed):
                query_worker(url, attack)
        injected = query_worker(
            url,
            "SELECT count() FROM touchpoints WHERE customer_id = {id:String}",
            {"id": f"{victim}' OR 1=1 --"},
        )
        assert injected["rows"] == [[0]]
        assert scalar(port, "SELECT count() FROM touchpoints") == len(events)

        before = {
            t: scalar(port, f"SELECT count() FROM {t} FINAL")
            for t in ("touchpoints", "customer_metrics", "signals")
        }
        mine = scalar(port, f"SELECT count() FROM touchpoints WHERE customer_id = '{victim}'")
        assert mine > 0
        forgot = runner.invoke(app, ["forget", victim], env=cli_env)
        assert forgot.exit_code == 0, forgot.output
        assert wait_for(
            port,
            f"SELECT uniqExact(table_name) FROM forgotten_customers WHERE customer_id = '{victim}'",
            len(CUSTOMER_ROWS),
        ) == len(CUSTOMER_ROWS)
        for table in ("touchpoints", "customer_metrics", "signals", "wow_offers"):
            left = scalar(port, f"SELECT count() FROM {table} WHERE customer_id = '{victim}'")
            assert left == 0, table
        assert query_worker(url, victims_dead, quoted)["rows"] == [[0]]
        assert scalar(port, "SELECT count() FROM touchpoints FINAL") == (
            before["touchpoints"] - mine
        )
        removed = query_worker(
            url,
            "SELECT rows_removed FROM forgotten_customers FINAL WHERE "
            "customer_id = {id:String} AND table_name = 'touchpoints'",
            {"id": victim},
        )
        assert removed["rows"] == [[mine]]

        # the state is gone too: a new event starts the customer from scratch
        fresh = {**events[-1], "event_id": "after-forget", "customer_id": victim}
        publish(broker.bootstrap, topic, [fresh])
        assert (
            wait_for(
                port,
                "SELECT count() FROM customer_metrics FINAL WHERE customer_id = "
                f"'{victim}' AND event_count = 1",
                1,
            )
            == 1
        )
