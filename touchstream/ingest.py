"""HTTP ingest for services that cannot speak Kafka: POST /v1/touchpoints on the worker.

One JSON event, a JSON array, or NDJSON (one event per line). Every item is validated like
any published event; valid ones are produced to the touchpoints topic (keyed by customer)
and acknowledged by the broker before the answer, invalid ones are answered with their
errors and kept as dead letters. 202 {"accepted", "rejected": [...]}; 401 without a valid
key; 413 over the body limit; 429 while too many events are in flight (Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from touchstream.auth import key_allowed, presented_key
from touchstream.publisher import encode, needs_resolving, protect_identifiers
from touchstream.schemas import DeadLetter, TouchpointRejected, dead_letter_for, parse_touchpoint
from touchstream.settings import Settings

log = logging.getLogger("touchstream.ingest")


def split_items(body: bytes) -> list[bytes]:
    """The items of a request body: an array's elements, the one object (pretty-printed or
    not), or NDJSON lines. A body that is not one JSON value is NDJSON; a broken array is
    one broken item."""
    stripped = body.strip()
    try:
        whole = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        if stripped.startswith(b"["):
            return [stripped]
        lines = [line.strip() for line in stripped.split(b"\n")]
        return [line for line in lines if line]
    if isinstance(whole, list):
        return [orjson.dumps(item) for item in whole]
    return [stripped]  # as sent: the duplicate-key check sees the publisher's bytes


def attach_ingest(
    app: Any,
    settings: Settings,
    touchpoints: Any,
    identify: Any,
    dead_letters: Any,
    store_letters: Callable[[list[DeadLetter]], Awaitable[None]],
) -> None:
    """`store_letters` stores the dead letters of a request (sinks/writer.py), before the answer;
    they also go to the dead-letters topic, for its subscribers."""
    import faust

    keys = settings.endpoint_keys("ingest")
    limits = settings.input_limits
    secret, region = settings.identity_secret(), settings.identity.default_region
    in_flight = 0

    @app.page("/v1/touchpoints")
    class Ingest(faust.web.View):
        async def post(self, request: Any) -> Any:
            nonlocal in_flight
            if not key_allowed(presented_key(request.headers), keys):
                return self.error(401, "missing or wrong API key (Authorization: Bearer KEY)")
            limit = settings.web.ingest_max_body_bytes
            if (request.content_length or 0) > limit:
                return self.error(413, f"body over {limit} bytes: split the batch")
            body = await request.content.read(limit + 1)
            if len(body) > limit:
                return self.error(413, f"body over {limit} bytes: split the batch")
            items = split_items(body)
            if not items:
                return self.error(400, "empty body: send one JSON event or NDJSON lines")
            if in_flight + len(items) > settings.web.ingest_max_in_flight:
                return self.error(
                    429, "too many events in flight, retry shortly", headers={"Retry-After": "1"}
                )
            in_flight += len(items)
            try:
                return self.json(await self._accept(items), status=202)
            finally:
                in_flight -= len(items)

        async def _accept(self, items: list[bytes]) -> dict[str, Any]:
            received = datetime.now(UTC)
            pending, rejected, letters = [], [], []
            for index, item in enumerate(items):
                try:
                    event = parse_touchpoint(
                        item,
                        max_future_skew=limits.max_future_skew,
                        max_bytes=limits.max_bytes,
                        earliest=limits.earliest,
                    )
                    event = protect_identifiers(event, secret, region)
                except TouchpointRejected as error:
                    rejected.append(
                        {
                            "index": index,
                            "kind": error.kind,
                            "reason": error.reason,
                            "errors": [e.model_dump() for e in error.errors],
                        }
                    )
                    letter = dead_letter_for(
                        item,
                        error,
                        source="http:/v1/touchpoints",
                        received_at=received,
                        line=index + 1,
                    )
                    letters.append(letter)
                    pending.append(
                        await dead_letters.send(key=None, value=letter.model_dump_json().encode())
                    )
                    continue
                key, value = encode(event)
                topic = identify if needs_resolving(event) else touchpoints
                pending.append(await topic.send(key=key, value=value))
            if letters:
                pending.append(store_letters(letters))
            await asyncio.gather(*pending)  # stored and on the broker before we answer
            return {"accepted": len(items) - len(rejected), "rejected": rejected}
