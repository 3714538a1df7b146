"""HTTP ingest and webhook subscribers through a real worker process."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests import scenarios
from tests.e2e.conftest import worker_env
from tests.e2e.helpers import replay_events, wait_for_records
from tests.e2e.test_clickhouse_sink import wait_for
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.kafka import read_topic
from touchstream.launcher import running_worker
from touchstream.query_client import QueryFailed, query_worker
from touchstream.sinks.webhooks import verify

pytestmark = pytest.mark.e2e

INGEST_KEY = "ingest-0123456789abcdef"
QUERY_KEY = "query-0123456789abcdef"


class ReceiverThread:
    """Two webhook endpoints on 127.0.0.1: /good answers 200, /bad answers 500."""

    def __init__(self) -> None:
        self.port = free_port()
        self.good: list[tuple[dict, bytes]] = []
        self.bad = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    async def _good(self, request: web.Request) -> web.Response:
        self.good.append((dict(request.headers), await request.read()))
        return web.Response(status=200)

    async def _bad(self, request: web.Request) -> web.Response:
        self.bad += 1
        return web.Response(status=500)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/good", self._good)
        app.router.add_post("/bad", self._bad)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> ReceiverThread:
        threading.Thread(target=self._serve, daemon=True).start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def post(url: str, body: bytes, key: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/x-ndjson"}
    )
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read() or b"{}")


def test_http_ingest_and_webhooks(broker: EmbeddedBroker, tmp_path: Path) -> None:
    port = free_port()
    with ReceiverThread() as receiver:
        hooks = [
            {"name": "good", "url": f"http://127.0.0.1:{receiver.port}/good", "secret": "g0od"},
            {
                "name": "bad",
                "url": f"http://127.0.0.1:{receiver.port}/bad",
                "secret": "b4d",
                "max_attempts": 2,
                "backoff_initial_seconds": 0.05,
                # its breaker opens after the third signal: a 30 s pause each time it
                # fails again was most of this test's time (tests/sinks/test_webhooks.py
                # times the breaker)
                "breaker_reset_seconds": 1.0,
                "kinds": ["about_to_defect"],
            },
        ]
        env = worker_env(
            broker,
            "ingest",
            tmp_path,
            TOUCHSTREAM_WEB_PORT=str(port),
            TOUCHSTREAM_INGEST_KEYS=f'["{INGEST_KEY}"]',
            TOUCHSTREAM_QUERY_KEYS=f'["{QUERY_KEY}"]',
            TOUCHSTREAM_WEBHOOKS=orjson.dumps(hooks).decode(),
            TOUCHSTREAM_INGEST_MAX_BODY_BYTES="1048576",
        )
        url = f"http://127.0.0.1:{port}/v1/touchpoints"
        story = scenarios.story()
        body = b"\n".join(orjson.dumps(e) for e in story)
        bad = [b'{"event_id": "x1", "customer_id": "c", "channel": "fax"}', b"{not json"]
        with running_worker(env, tmp_path / "worker.log"):
            assert post(url, body, None)[0] == 401
            assert post(url, body, "wrong-key")[0] == 401
            assert post(url, body, QUERY_KEY)[0] == 401  # a query key cannot ingest
            assert post(url, b"x" * 1_100_000, INGEST_KEY)[0] == 413
            status, answer = post(url, body + b"\n" + b"\n".join(bad), INGEST_KEY)
            assert status == 202
            assert answer["accepted"] == len(story)
            assert [r["index"] for r in answer["rejected"]] == [len(story), len(story) + 1]
            fields = {e["loc"] for e in answer["rejected"][0]["errors"]}
            assert {"channel", "occurred_at", "kind"} <= fields
            assert answer["rejected"][1]["kind"] == "invalid_json"

            on_topic = list(
                read_topic(
                    broker.bootstrap,
                    env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"],
                    expected=len(story),
                    idle_timeout_ms=5000,
                )
            )
            assert len(on_topic) == len(story)

            # the story's risks: the slipping customer's broken promises, then the lapses of
            # those who fall silent while the background customers go on
            defects = sum(s.kind.value == "about_to_defect" for s in replay_events(story).signals)
            assert defects >= 1
            dlq = wait_for_records(
                broker.bootstrap,
                "signals-alerts-dead-letters",
                lambda r: len(r) >= defects,
                timeout=90,
            )
            query = f"http://127.0.0.1:{port}"
            wait_for(
                port,
                "SELECT count() FROM alert_deliveries WHERE outcome = 'dead_lettered'",
                defects,
                api_key=QUERY_KEY,
            )
            outcomes = query_worker(
                query,
                "SELECT endpoint, outcome, count() FROM "
                "alert_deliveries GROUP BY endpoint, outcome "
                "ORDER BY endpoint, outcome",
                api_key=QUERY_KEY,
            )["rows"]
            with pytest.raises(QueryFailed, match="401"):  # an ingest key cannot query
                query_worker(query, "SELECT 1", api_key=INGEST_KEY)
            signals = query_worker(query, "SELECT count() FROM signals FINAL", api_key=QUERY_KEY)[
                "rows"
            ][0][0]
        assert dlq[0]["endpoint"] == "bad" and dlq[0]["signal"]["kind"] == "about_to_defect"
        table = {(endpoint, outcome): n for endpoint, outcome, n in outcomes}
        assert table[("bad", "failed")] == table[("bad", "dead_lettered")] == defects
        assert table[("bad", "retry")] == defects  # max_attempts = 2
        assert receiver.bad == 2 * defects
        assert table[("good", "delivered")] == len(receiver.good) == signals
        headers, payload = receiver.good[0]
        assert verify(
            "g0od", headers["X-Touchstream-Timestamp"], payload, headers["X-Touchstream-Signature"]
        )


def test_signals_queued_when_the_worker_dies_are_delivered_after_the_restart(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The outbox: SIGKILL while every delivery is still retrying; after the restart each
    stored signal reaches the subscriber, with its original idempotency key."""
    import os
    import signal as signals_module

    from tests.e2e.test_clickhouse_sink import publish, scalar

    port = free_port()
    receiver = ReceiverThread()  # its port is chosen; nothing listens there yet
    hooks = [
        {
            "name": "late",
            "url": f"http://127.0.0.1:{receiver.port}/good",
            "secret": "s3cret",
            "max_attempts": 20,
            "backoff_initial_seconds": 30,
        }
    ]
    env = worker_env(
        broker,
        "outbox",
        tmp_path,
        TOUCHSTREAM_WEB_PORT=str(port),
        TOUCHSTREAM_WEBHOOKS=orjson.dumps(hooks).decode(),
    )
    publish(broker.bootstrap, env["TOUCHSTREAM_TOPIC_TOUCHPOINTS"], scenarios.story())
    with running_worker(env, tmp_path / "worker-1.log") as first:
        stored = wait_for(port, "SELECT count() FROM signals FINAL", 1)
        assert stored >= 1
        wait_for(port, "SELECT count() FROM alert_deliveries", 1)  # the first try failed
        delivered = scalar(port, "SELECT count() FROM alert_deliveries WHERE outcome = 'delivered'")
        os.killpg(first.pid, signals_module.SIGKILL)
        first.wait(10)
    assert delivered == 0
    with receiver, running_worker(env, tmp_path / "worker-2.log"):
        wait_for(port, "SELECT count() FROM alert_deliveries WHERE outcome = 'delivered'", stored)
        ids = query_worker(f"http://127.0.0.1:{port}", "SELECT signal_id FROM signals FINAL")
    keys = sorted(headers["X-Touchstream-Idempotency-Key"] for headers, _ in receiver.good)
    assert keys == sorted(f"{row[0]}:late" for row in ids["rows"])
    logs = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))
    assert "without a final delivery, queued again" in logs  # the operator sees the outbox
    assert "s3cret" not in logs
