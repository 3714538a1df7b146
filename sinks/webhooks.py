"""Alert subscribers: signed webhook deliveries with retries, a circuit breaker and a DLQ.

Each endpoint has its own queue and its own delivery task, so a slow or dead endpoint only
ever delays itself: the stream hands a signal over (`submit`, never blocking) and moves on.
Every attempt is reported (for the `alert_deliveries` table); a delivery that used its last
attempt goes to the alerts dead-letter topic.

Signature: `X-Touchstream-Signature: sha256=HEX(HMAC_SHA256(secret, f"{timestamp}.{body}"))`
with `X-Touchstream-Timestamp` (unix seconds): receivers recompute it and reject stale
timestamps. `X-Touchstream-Idempotency-Key` is the same for every attempt of a delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import orjson

from touchstream.schemas import Signal
from touchstream.sinks.subscribers import WebhookConfig

log = logging.getLogger("touchstream.webhooks")
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: constant-time compare, and refuse replays of old requests."""
    if abs((now or time.time()) - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def slack_body(signal: Signal) -> bytes:
    """Slack incoming-webhook format: a headline and the reasons."""
    title = signal.kind.value.replace("_", " ")
    reasons = "\n".join(f"• {r.factor}: {r.contribution:+.2f} ({r.detail})" for r in signal.reasons)
    action = f"\n*Suggested:* {signal.suggested_action}" if signal.suggested_action else ""
    text = (
        f"*{title}* for `{signal.customer_id}`: score {signal.score:.2f} "
        f"({signal.severity.value}){action}\n{reasons}"
    )
    return orjson.dumps(
        {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one delivery, as recorded in `alert_deliveries`."""

    delivery_id: str
    signal_id: str
    endpoint: str
    attempt: int
    attempted_at: datetime
    status_code: int
    outcome: str  # delivered | retry | failed | dead_lettered | circuit_open
    error: str
    duration_ms: float


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after the reset time."""

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self.failures_to_open = failures
        self.reset_seconds = reset_seconds
        self.consecutive = 0
        self.opened_at: float | None = None

    def allow(self, now: float) -> bool:
        return self.opened_at is None or now - self.opened_at >= self.reset_seconds

    def wait_seconds(self, now: float) -> float:
        return (
            0.0 if self.opened_at is None else max(0.0, self.reset_seconds - (now - self.opened_at))
        )

    def record(self, ok: bool, now: float) -> None:
        if ok:
            self.consecutive, self.opened_at = 0, None
            return
        self.consecutive += 1
        if self.consecutive >= self.failures_to_open:
            self.opened_at = now


class Endpoint:
    """A subscriber's queue and delivery loop."""

    def __init__(
        self,
        config: WebhookConfig,
        session: aiohttp.ClientSession,
        on_attempt: Callable[[Attempt], None],
        on_dead: Callable[[Signal, WebhookConfig, str], Awaitable[None]],
    ) -> None:
        self.config = config
        self.session = session
        self.on_attempt = on_attempt
        self.on_dead = on_dead
        self.queue: asyncio.Queue[Signal] = asyncio.Queue(config.queue_size)
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_seconds)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"webhook-{self.config.name}"
        )

    async def _run(self) -> None:
        while True:
            signal = await self.queue.get()
            try:
                await self.deliver(signal)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "webhook %s: delivery of %s crashed", self.config.name, signal.signal_id
                )
            finally:
                self.queue.task_done()

    def body(self, signal: Signal) -> bytes:
        return (
            slack_body(signal)
            if self.config.format == "slack"
            else (signal.model_dump_json().encode())
        )

    async def deliver(self, signal: Signal) -> None:
        config = self.config
        delivery_id = f"{signal.signal_id}:{config.name}"
        body = self.body(signal)
        delay = config.backoff_initial_seconds
        last_error = ""
        for attempt in range(1, config.max_attempts + 1):
            wait = self.breaker.wait_seconds(time.monotonic())
            if wait > 0:
                self._record(
                    delivery_id,
                    signal,
                    attempt,
                    0,
                    "circuit_open",
                    f"circuit open, waiting {wait:.1f}s",
                    0.0,
                )
                await asyncio.sleep(wait)
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Touchstream-Timestamp": str(timestamp),
                "X-Touchstream-Signature": sign(config.secret.get_secret_value(), timestamp, body),
                "X-Touchstream-Idempotency-Key": delivery_id,
                "X-Touchstream-Attempt": str(attempt),
            }
            started = time.perf_counter()
            status, error = 0, ""
            try:
                timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
                async with self.session.post(
                    config.url, data=body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    await response.read()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc or f'no answer in {config.timeout_seconds}s'}"
                error = error[:300]
            took = (time.perf_counter() - started) * 1000
            if 200 <= status < 300:
                self.breaker.record(True, time.monotonic())
                self._record(delivery_id, signal, attempt, status, "delivered", "", took)
                return
            self.breaker.record(False, time.monotonic())
            last_error = error or f"HTTP {status}"
            retryable = status == 0 or status in RETRYABLE_STATUS
            final = attempt == config.max_attempts or not retryable
            self._record(
                delivery_id,
                signal,
                attempt,
                status,
                "failed" if final else "retry",
                last_error,
                took,
            )
            if final:
                break
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # jitter spreads retries
            delay = min(config.backoff_max_seconds, delay * 2)
        log.warning(
            "webhook %s: giving up on %s after %s: %s",
            config.name,
            signal.signal_id,
            f"{attempt} attempt(s)",
            last_error,
        )
        self._record(delivery_id, signal, attempt, 0, "dead_lettered", last_error, 0.0)
        await self.on_dead(signal, config, last_error)

    def _record(
        self,
        delivery_id: str,
        signal: Signal,
        attempt: int,
        status: int,
        outcome: str,
        error: str,
        took: float,
    ) -> None:
        self.on_attempt(
            Attempt(
                delivery_id,
                signal.signal_id,
                self.config.name,
                attempt,
                datetime.now(UTC),
                status,
                outcome,
                error,
                took,
            )
        )


class Dispatcher:
    """Fans signals out to every subscriber that wants them; never blocks the caller."""

    def __init__(
        self,
        configs: list[WebhookConfig],
        on_attempt: Callable[[Attempt], None],
        on_dead: Callable[[Signal, WebhookConfig, str], Awaitable[None]],
    ) -> None:
        self.configs = configs
        self.on_attempt = on_attempt
        self.on_dead = on_dead
        self.endpoints: list[Endpoint] = []
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self.session = aiohttp.ClientSession()
        self.endpoints = [
            Endpoint(c, self.session, self.on_attempt, self.on_dead) for c in self.configs
        ]
        for endpoint in self.endpoints:
            endpoint.start()

    async def submit(self, signal: Signal, only: str | None = None) -> None:
        """Queue the signal for every subscriber that wants it (or only the one named)."""
        for endpoint in self.endpoints:
            if not endpoint.config.wants(signal) or only not in (None, endpoint.config.name):
                continue
            try:
                endpoint.queue.put_nowait(signal)
            except asyncio.QueueFull:
                reason = f"queue of {endpoint.config.name} full ({endpoint.config.queue_size})"
                endpoint._record(
                    f"{signal.signal_id}:{endpoint.config.name}",
                    signal,
                    0,
                    0,
                    "dead_lettered",
                    reason,
                    0.0,
                )
                await self.on_dead(signal, endpoint.config, reason)

    async def drain(self, timeout: float) -> bool:
        """Wait until every queue is empty (tests, shutdown); False on timeout."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(e.queue.join() for e in self.endpoints)), timeout
            )
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        for endpoint in self.endpoints:
            if endpoint.task:
                endpoint.task.cancel()
        if self.session:
            await self.session.close()
