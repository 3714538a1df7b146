"""Talking to the worker's read-only query endpoint (embedded mode)."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from typing import Any

import orjson


class QueryFailed(RuntimeError):
    pass


def worker_identity(base_url: str, api_key: str | None, timeout: float = 5.0) -> dict[str, Any]:
    """GET /v1/identity; raises OSError when nothing answers, QueryFailed on an HTTP error."""
    request = urllib.request.Request(f"{base_url.rstrip('/')}/v1/identity")
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:
        raise QueryFailed(f"HTTP {error.code} from {base_url}/v1/identity") from None


def query_worker(
    base_url: str,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    api_key: str | None = None,
    max_rows: int | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """POST /v1/query; returns {"columns", "rows", "truncated"} or raises QueryFailed."""
    body: dict[str, Any] = {"sql": sql, "params": params or {}}
    if max_rows is not None:
        body["max_rows"] = max_rows
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/v1/query",
        data=orjson.dumps(body),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        with contextlib.suppress(orjson.JSONDecodeError):
            detail = orjson.loads(detail).get("error", detail)
        raise QueryFailed(f"HTTP {error.code}: {detail}") from None
