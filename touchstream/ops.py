"""Where ops queries go: the worker's endpoint (embedded chDB) or ClickHouse directly.

A chDB directory belongs to one process. While a worker runs it owns it, so the CLI asks the
worker over HTTP, once the worker has proven it owns *this* directory
(`touchstream/ownership.py`); when no worker answers, or the one that answers serves
another directory, the CLI opens chDB itself. With a ClickHouse server the CLI always
connects directly.
"""

from __future__ import annotations

import logging
from typing import Any

from touchstream.ownership import proves_ownership
from touchstream.query_client import QueryFailed, query_worker, worker_identity
from touchstream.query_endpoint import readonly_query
from touchstream.settings import Settings

log = logging.getLogger("touchstream.ops")


def worker_url(settings: Settings) -> str:
    return f"http://{settings.web.bind}:{settings.web.port}"


def run_query(
    settings: Settings,
    sql: str,
    params: dict[str, Any] | None = None,
    max_rows: int | None = None,
) -> dict[str, Any]:
    """{"columns", "rows", "truncated"} of one read-only query."""
    limit = min(max_rows or settings.web.query_max_rows, settings.web.query_max_rows)
    if settings.embedded_clickhouse and settings.web.port and owning_worker(settings):
        key = _query_key(settings)
        return query_worker(worker_url(settings), sql, params, api_key=key, max_rows=limit)
    clickhouse = settings.clickhouse_client()
    try:
        return readonly_query(
            clickhouse,
            sql,
            params,
            max_rows=limit,
            timeout_seconds=settings.web.query_timeout_seconds,
            max_memory_bytes=settings.web.query_max_memory_bytes,
        )
    finally:
        clickhouse.close()


def _query_key(settings: Settings) -> str | None:
    """The CLI sends the first query key, if any."""
    return next(iter(settings.endpoint_keys("query")), None)


def owning_worker(settings: Settings) -> bool:
    """Whether the worker at the configured port proves it owns our chDB directory."""
    url = worker_url(settings)
    try:
        identity = worker_identity(url, _query_key(settings))
    except OSError:
        log.debug("no worker at %s: opening chDB directly", url)
        return False
    except QueryFailed as error:
        log.warning("the process at %s did not identify itself (%s): not asking it", url, error)
        return False
    if proves_ownership(settings, identity.get("owner")):
        return True
    log.warning(
        "the worker at %s (app %s) serves %s, not %s: opening %s directly",
        url,
        identity.get("app_id"),
        identity.get("clickhouse"),
        settings.clickhouse_target,
        settings.clickhouse_target,
    )
    return False
