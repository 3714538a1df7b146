"""The ops surface of a running worker under hostile use, and the CLI's choice of worker."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from tests.e2e.conftest import worker_env
from tests.e2e.test_clickhouse_sink import publish, wait_for
from tests.hostile_queries import HOSTILE
from tests.sinks.test_query_guard import Listener
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.cli import app
from touchstream.generator import generate
from touchstream.kafka import ensure_topics
from touchstream.launcher import running_worker

pytestmark = pytest.mark.e2e

QUERY_KEY = "query-key-0123456789abcdef"
METRICS_KEY = "metrics-key-0123456789abcdef"


def post_query(base: str, sql: str) -> tuple[int, str, float]:
    request = urllib.request.Request(
        f"{base}/v1/query",
        data=orjson.dumps({"sql": sql}),
        method="POST",
        headers={"Authorization": f"Bearer {QUERY_KEY}"},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), time.monotonic() - started


def events_done(base: str) -> float:
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return sum(float(v) for v in re.findall(r"^touchstream_events_total\{.*\} (\S+)$", text, re.M))


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]


def test_hostile_queries_are_refused_or_bounded_while_the_stream_goes_on(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    port = free_port()
    env = worker_env(
        broker,
        "hostile",
        tmp_path,
        TOUCHSTREAM_WEB_PORT=str(port),
        TOUCHSTREAM_QUERY_KEYS=f'["{QUERY_KEY}"]',
        TOUCHSTREAM_METRICS_KEYS=f'["{METRICS_KEY}"]',
        TOUCHSTREAM_QUERY_TIMEOUT_SECONDS="3",
        TOUCHSTREAM_QUERY_MAX_MEMORY_BYTES=str(256 * 1024 * 1024),
    )
    topic = env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"]
    _, events = generate(customers=600, months=6, seed=3)
    first, rest = events[:5000], events[5000:]
    publish(broker.bootstrap, topic, first)
    base = f"http://127.0.0.1:{port}"
    listener = Listener()
    out = tmp_path / "outfile"
    stop = threading.Event()

    def trickle() -> None:  # ~600 events/s for as long as the test runs
        ensure_topics(broker.bootstrap, [topic], 4)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5)
        for start in range(0, len(rest), 60):
            if stop.is_set():
                break
            for event in rest[start : start + 60]:
                producer.send(topic, key=event["customer_id"].encode(), value=orjson.dumps(event))
            time.sleep(0.1)
        producer.flush()
        producer.close()

    results = []
    with running_worker(env, tmp_path / "worker.log") as worker:
        assert wait_for(port, "SELECT count() FROM touchpoints", len(first), api_key=QUERY_KEY)
        publisher = threading.Thread(target=trickle, daemon=True)
        publisher.start()
        rss_before = rss_mib(worker.pid)

        def rate(seconds: float) -> float:
            start = events_done(base)
            time.sleep(seconds)
            return (events_done(base) - start) / seconds

        before = rate(4)
        during_start, t0 = events_done(base), time.monotonic()
        for name, sql in HOSTILE:
            status, body, took = post_query(base, sql.format(port=listener.port, out=out))
            results.append({"query": name, "status": status, "seconds": round(took, 2)})
            assert status in (400, 403), (name, status, body[:300])
            assert "root:x" not in body
            assert took < 3 + 2, (name, took)
        during = (events_done(base) - during_start) / (time.monotonic() - t0)
        after = rate(4)
        rss_peak = rss_mib(worker.pid)
        assert worker.poll() is None  # still up
        ok, body, _ = post_query(base, "SELECT count() FROM touchpoints")
        assert ok == 200 and json.loads(body)["rows"][0][0] > len(first)
        for path in ("/table/", "/table/customer-state/", "/router/", "/graph/", "/stats/"):
            try:
                with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            assert status == 404, f"Faust's {path} page serves the tables' contents"
        with pytest.raises(urllib.error.HTTPError, match="401"):
            urllib.request.urlopen(f"{base}/metrics", timeout=10)  # the metrics key is set
        with urllib.request.urlopen(f"{base}/health", timeout=10) as response:
            assert json.loads(response.read()) == {"ready": True}
        stop.set()
        publisher.join(30)
    listener.close()
    assert listener.connections == 0 and not out.exists()
    report = {
        "queries": results,
        "events_per_second": {"before": before, "during": during, "after": after},
        "worker_rss_mib": {"before": rss_before, "after": rss_peak},
    }
    (tmp_path / "hostile-report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    assert before > 0 and during > 0 and after > 0, report["events_per_second"]
    assert rss_peak - rss_before < 600, report["worker_rss_mib"]  # 256 MiB query limit
    assert {r["status"] for r in results} <= {400, 403}
    assert sum(r["status"] == 403 for r in results) >= 20


def test_the_cli_answers_from_the_directory_it_is_configured_for(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Two workers, two data directories: each CLI gets its own data, never the other's."""
    ports = {"one": free_port(), "two": free_port()}
    counts = {"one": 3, "two": 5}
    envs = {}
    for name, port in ports.items():
        env = worker_env(broker, f"own-{name}", tmp_path / name, TOUCHSTREAM_WEB_PORT=str(port))
        _, events = generate(customers=counts[name], months=1, seed=1)
        events = [{**e, "event_id": f"{name}-{e['event_id']}"} for e in events]
        publish(broker.bootstrap, env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"], events)
        envs[name] = env
    runner = CliRunner()
    sql = "SELECT uniqExact(customer_id) FROM touchpoints"

    def cli(data_dir: Path, port: int) -> tuple[int | None, str]:
        """(the count the CLI printed, or None; everything it printed)"""
        result = runner.invoke(
            app,
            ["query", sql, "-o", "json"],
            env={"TOUCHSTREAM_DATA_DIR": str(data_dir), "TOUCHSTREAM_WEB_PORT": str(port)},
        )
        rows = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        return (next(iter(rows[0].values())) if rows else None), result.output

    with (
        running_worker(envs["one"], tmp_path / "one.log"),
        running_worker(envs["two"], tmp_path / "two.log"),
    ):
        for name, port in ports.items():
            wait_for(port, sql, counts[name])
        for name, port in ports.items():
            assert cli(tmp_path / name, port)[0] == counts[name]
        # pointed at worker one's port, with worker two's directory: never one's data
        crossed, said = cli(tmp_path / "two", ports["one"])
        assert crossed != counts["one"], said
        assert crossed in (None, counts["two"]), said
        # a directory no worker owns is opened directly, even while one listens on the port
        (tmp_path / "three").mkdir()
        alone, said = cli(tmp_path / "three", ports["one"])
        assert alone == 0, said
