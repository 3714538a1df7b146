"""Webhook deliveries against a real local HTTP receiver (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.factories import snapshot
from touchstream.broker import free_port
from touchstream.schemas import Reason, Signal
from touchstream.sinks.subscribers import WebhookConfig
from touchstream.sinks.webhooks import (
    Attempt,
    CircuitBreaker,
    Dispatcher,
    slack_body,
    verify,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def make_signal(n: int = 0, severity: str = "high", kind: str = "about_to_defect") -> Signal:
    metrics = snapshot(f"c{n}", NOW)
    return Signal(
        signal_id=f"sig{n:05d}xxxx",
        kind=kind,
        customer_id=f"c{n}",
        score=0.7,
        severity=severity,
        raised_at=NOW,
        trigger="timer",
        reasons=[
            Reason(factor="silence", value=3.0, contribution=0.4, detail="quiet"),
            Reason(factor="expectation_gap", value=-2, contribution=0.3),
        ],
        metrics=metrics,
    )


class Receiver:
    """Records requests; `behaviour(n)` decides the answer of the n-th request."""

    def __init__(self, behaviour: Callable[[int], Any]) -> None:
        self.behaviour = behaviour
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((time.monotonic(), dict(request.headers), body))
        answer = self.behaviour(len(self.requests))
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            return web.Response(status=200)
        return web.Response(status=answer)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def config(url: str, **overrides: Any) -> WebhookConfig:
    values = {
        "name": "ops",
        "url": url,
        "secret": "s3cret",
        "max_attempts": 4,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "timeout_seconds": 1.0,
        **overrides,
    }
    return WebhookConfig.model_validate(values)


async def run_dispatch(
    configs: list[WebhookConfig],
    signals: list[Signal],
    timeout: float = 20.0,
    attempts: list[Attempt] | None = None,
) -> tuple[list[Attempt], list[tuple]]:
    """`attempts`: a list to record into, for a test that looks while it runs."""
    attempts = [] if attempts is None else attempts
    dead: list[tuple] = []

    async def on_dead(signal: Signal, cfg: WebhookConfig, error: str) -> None:
        dead.append((signal.signal_id, cfg.name, error))

    dispatcher = Dispatcher(configs, attempts.append, on_dead)
    await dispatcher.start()
    for signal in signals:
        await dispatcher.submit(signal)
    assert await dispatcher.drain(timeout)
    await dispatcher.stop()
    return attempts, dead


def test_signature_verifies_with_the_secret_and_body_is_the_signal() -> None:
    async def scenario() -> None:
        async with Receiver(lambda n: 200) as receiver:
            attempts, dead = await run_dispatch([config(receiver.url)], [make_signal()])
        ((_, headers, body),) = receiver.requests
        assert verify(
            "s3cret", headers["X-Touchstream-Timestamp"], body, headers["X-Touchstream-Signature"]
        )
        assert not verify(
            "wrong", headers["X-Touchstream-Timestamp"], body, headers["X-Touchstream-Signature"]
        )
        assert not verify(
            "s3cret",
            headers["X-Touchstream-Timestamp"],
            body + b" ",
            headers["X-Touchstream-Signature"],
        )
        assert Signal.model_validate_json(body).signal_id == make_signal().signal_id
        assert headers["X-Touchstream-Idempotency-Key"] == "sig00000xxxx:ops"
        assert [a.outcome for a in attempts] == ["delivered"] and dead == []

    asyncio.run(scenario())


def test_500s_and_timeouts_are_retried_with_growing_backoff() -> None:
    answers = {1: 500, 2: 2.0, 3: 503}  # error, timeout (1 s limit), error, then OK

    async def scenario() -> None:
        async with Receiver(lambda n: answers.get(n, 200)) as receiver:
            attempts, dead = await run_dispatch([config(receiver.url)], [make_signal()])
        assert [a.outcome for a in attempts] == ["retry", "retry", "retry", "delivered"]
        assert attempts[1].status_code == 0 and "Timeout" in attempts[1].error
        assert dead == []
        keys = {r[1]["X-Touchstream-Idempotency-Key"] for r in receiver.requests}
        assert len(keys) == 1  # every attempt carries the same idempotency key
        gaps = [b[0] - a[0] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
        assert gaps[2] > gaps[0]  # backoff grows (timeout attempt excluded by construction)

    asyncio.run(scenario())


def test_after_the_last_attempt_the_delivery_is_dead_lettered() -> None:
    async def scenario() -> None:
        async with Receiver(lambda n: 500) as receiver:
            attempts, dead = await run_dispatch(
                [config(receiver.url, max_attempts=3)], [make_signal()]
            )
        assert len(receiver.requests) == 3
        assert [a.outcome for a in attempts] == ["retry", "retry", "failed", "dead_lettered"]
        assert dead == [("sig00000xxxx", "ops", "HTTP 500")]

    asyncio.run(scenario())


def test_client_errors_are_not_retried() -> None:
    async def scenario() -> None:
        async with Receiver(lambda n: 410) as receiver:
            attempts, dead = await run_dispatch([config(receiver.url)], [make_signal()])
        assert len(receiver.requests) == 1 and dead and attempts[-1].outcome == "dead_lettered"

    asyncio.run(scenario())


def test_dead_endpoint_does_not_delay_a_healthy_one() -> None:
    """The healthy subscriber gets every signal while the slow one's first attempt is still
    waiting for its timeout: ordered by what happened, not by a stopwatch."""

    async def scenario() -> None:
        async with Receiver(lambda n: 5.0) as slow, Receiver(lambda n: 200) as healthy:
            stuck = config(
                slow.url,
                name="slow",
                timeout_seconds=2.0,
                max_attempts=2,
                breaker_reset_seconds=0.5,
            )
            attempts: list[Attempt] = []
            task = asyncio.create_task(
                run_dispatch(
                    [stuck, config(healthy.url, name="healthy")],
                    [make_signal(i) for i in range(3)],
                    timeout=60,
                    attempts=attempts,
                )
            )

            async def healthy_has_all() -> None:
                while len(healthy.requests) < 3:
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(healthy_has_all(), 30)
            assert not [a for a in attempts if a.endpoint == "slow"]  # still on its first
            _, dead = await task
        assert {d[1] for d in dead} == {"slow"}

    asyncio.run(scenario())


def test_filters_by_kind_and_severity() -> None:
    cfg = config("http://127.0.0.1:1/x", kinds=["wow_opportunity"], min_severity="high")
    assert not cfg.wants(make_signal(severity="critical"))
    assert cfg.wants(make_signal(severity="critical", kind="wow_opportunity"))
    assert not cfg.wants(make_signal(severity="medium", kind="wow_opportunity"))


def test_circuit_breaker_opens_and_half_opens() -> None:
    breaker = CircuitBreaker(failures=3, reset_seconds=10)
    for t in range(3):
        assert breaker.allow(t)
        breaker.record(False, t)
    assert not breaker.allow(5) and breaker.wait_seconds(5) == pytest.approx(7)
    assert breaker.allow(13)
    breaker.record(True, 13)
    assert breaker.allow(13) and breaker.consecutive == 0


def test_slack_format() -> None:
    body = orjson.loads(slack_body(make_signal()))
    assert "about to defect" in body["text"] and "silence: +0.40" in body["text"]
    assert body["blocks"][0]["type"] == "section"


def test_stale_timestamps_are_refused() -> None:
    from touchstream.sinks.webhooks import sign

    body = b"{}"
    old = int(time.time()) - 3600
    assert not verify("k", str(old), body, sign("k", old, body))


def test_outbox_finds_the_signals_an_endpoint_has_no_final_delivery_for(tmp_path: Any) -> None:
    """After a crash: signals stored but never delivered (or still retrying) are found again,
    whole, and those delivered or dead-lettered are not."""
    from touchstream.sinks.clickhouse import ClickHouse
    from touchstream.sinks.outbox import attempt_columns, undelivered_signals
    from touchstream.streams.rows import signal_columns

    clickhouse = ClickHouse(f"chdb://{tmp_path / 'chdb'}")
    try:
        signals = [make_signal(n) for n in range(4)]
        # every field comes back: a risk's expected loss and model, a wow's team and value
        signals[2] = signals[2].model_copy(
            update={"expected_loss": 120.5, "horizon_days": 60.0, "risk_model": "m-1a2b"}
        )
        signals[3] = make_signal(3, "low", "wow_opportunity").model_copy(
            update={"team": "support", "expected_value": 42.25}
        )
        clickhouse.insert_columns("signals", signal_columns(signals))

        def attempt(n: int, endpoint: str, outcome: str) -> Attempt:
            sid = signals[n].signal_id
            return Attempt(f"{sid}:{endpoint}", sid, endpoint, 1, NOW, 200, outcome, "", 1.0)

        attempts = [
            attempt(0, "a", "delivered"),
            attempt(1, "a", "dead_lettered"),
            attempt(2, "a", "retry"),  # died while retrying
            attempt(0, "b", "delivered"),
        ]
        clickhouse.insert_columns("alert_deliveries", attempt_columns(attempts))
        for_a = undelivered_signals(clickhouse, "a", hours=1)
        for_b = undelivered_signals(clickhouse, "b", hours=1)
        assert [s.model_dump(exclude={"score"}) for s in for_a] == [
            s.model_dump(exclude={"score"}) for s in signals[2:]
        ]
        assert [s.score for s in for_a] == pytest.approx([0.7, 0.7])  # stored as Float32
        assert [s.signal_id for s in for_b] == [s.signal_id for s in signals[1:]]
        assert undelivered_signals(clickhouse, "a", hours=0) == []  # outside the window
    finally:
        clickhouse.close()
