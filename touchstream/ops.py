"""Where ops queries go: the worker's endpoint (embedded chDB) or ClickHouse directly.

A chDB directory belongs to one process. While a worker runs it owns it, so the CLI asks the
worker over HTTP; when no worker answers, the CLI opens chDB itself. With a ClickHouse
server the CLI always connects directly.
"""

from __future__ import annotations

import logging
from typing import Any

from touchstream.query_client import query_worker
from touchstream.settings import Settings
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.query_api import readonly_query

log = logging.getLogger("touchstream.ops")


def worker_url(settings: Settings) -> str:
    return f"http://{settings.web_bind}:{settings.web_port}"


def run_query(
    settings: Settings,
    sql: str,
    params: dict[str, Any] | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """{"columns", "rows", "truncated"} of one read-only query."""
    limit = min(max_rows or settings.query_max_rows, settings.query_max_rows)
    if settings.embedded_clickhouse and settings.web_port:
        key = settings.api_keys[0].get_secret_value() if settings.api_keys else None
        try:
            return query_worker(worker_url(settings), sql, params, api_key=key, max_rows=limit)
        except OSError:
            log.debug("no worker at %s: opening chDB directly", worker_url(settings))
    clickhouse = ClickHouse(settings.clickhouse, ttl_days=settings.touchpoints_ttl_days)
    try:
        return readonly_query(
            clickhouse, sql, params, max_rows=limit, timeout_seconds=settings.query_timeout_seconds
        )
    finally:
        clickhouse.close()
