"""Which process owns an embedded chDB directory: proven by a token, never assumed.

A chDB directory can be opened by one process at a time, so while a worker runs, the CLI
asks it over HTTP. Which worker? Any process can listen on 127.0.0.1:6066. The worker
writes a fresh random token beside its chDB directory (`<dir>.owner`, mode 0600) and
announces it on GET /v1/identity; the CLI reads the file of the directory *it* is
configured for and compares. A worker with another directory cannot know that token.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from touchstream.settings import Settings
from touchstream.sinks.clickhouse import chdb_path, redact


def token_file(settings: Settings) -> Path | None:
    path = chdb_path(settings.clickhouse_target)
    return None if path is None else path.with_name(path.name + ".owner")


def claim(settings: Settings) -> str | None:
    """Write this process's token (the worker, at start); None for a ClickHouse server."""
    path = token_file(settings)
    if path is None:
        return None
    token = secrets.token_hex(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


def release(settings: Settings, token: str | None) -> None:
    """Remove the token if it is still ours (the worker, at a clean stop)."""
    path = token_file(settings)
    if token and path is not None and path.exists() and path.read_text() == token:
        path.unlink()


def proves_ownership(settings: Settings, announced: object) -> bool:
    """Whether a worker's announced token is the one beside our configured directory."""
    path = token_file(settings)
    if path is None or not isinstance(announced, str) or not path.exists():
        return False
    return hmac.compare_digest(path.read_text().encode(), announced.encode())


def attach_identity_endpoint(app: Any, settings: Settings, token: str | None) -> None:
    """GET /v1/identity: the app id, the ClickHouse target (redacted) and the owner token.
    Behind the query keys, as the data it leads to."""
    import faust

    from touchstream.auth import key_allowed, presented_key

    keys = settings.endpoint_keys("query")
    body = {
        "app_id": settings.worker.app_id,
        "clickhouse": redact(settings.clickhouse_target),
        "owner": token,
    }

    @app.page("/v1/identity")
    class Identity(faust.web.View):
        async def get(self, request: Any) -> Any:
            if not key_allowed(presented_key(request.headers), keys):
                return self.error(401, "missing or wrong API key (Authorization: Bearer KEY)")
            return self.json(body)
