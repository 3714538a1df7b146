"""Read-only SQL for ops: a function, and its HTTP endpoint on the worker's web server.

In embedded mode the worker owns the chDB directory, so `touchstream query` asks the worker
(POST /v1/query). Queries run with `readonly=2` (no writes, no DDL; unlike `readonly=1` it
lets us set the row and time limits per query) and take parameters ClickHouse-style:
`WHERE customer_id = {id:String}` with `params = {"id": "c1"}`, never string-formatted.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from touchstream.auth import key_allowed, presented_key
from touchstream.sinks.clickhouse import ClickHouse, ClickHouseRejected, ClickHouseUnavailable

log = logging.getLogger("touchstream.query")


class QueryRefused(ValueError):
    pass


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def has_second_statement(sql: str) -> bool:
    """A ';' outside string literals, quoted identifiers and comments."""
    quote: str | None = None
    i = 0
    while i < len(sql):
        char = sql[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        elif sql.startswith("--", i):
            i = sql.find("\n", i)
            if i < 0:
                return False
        elif sql.startswith("/*", i):
            i = sql.find("*/", i + 2)
            if i < 0:
                return False
            i += 1
        elif char == ";":
            return True
        i += 1
    return False


def readonly_query(
    clickhouse: ClickHouse,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    max_rows: int = 10_000,
    timeout_seconds: float = 30.0,
) -> dict[str, Any]:
    """Run one read-only statement; returns {"columns", "rows", "truncated"}."""
    statement = sql.strip().rstrip(";").strip()
    if not statement:
        raise QueryRefused("empty query")
    if has_second_statement(statement):
        raise QueryRefused("one statement per request (found ';' outside quotes)")
    settings = {
        "readonly": 2,
        "max_execution_time": timeout_seconds,
        "max_result_rows": max_rows + 1,
        "result_overflow_mode": "break",
    }
    columns, rows = clickhouse.query(statement, params or {}, settings)
    return {
        "columns": columns,
        "rows": [_plain(list(row)) for row in rows[:max_rows]],
        "truncated": len(rows) > max_rows,
    }


def attach_query_endpoint(app: Any, clickhouse: ClickHouse, settings: Any) -> None:
    import faust

    keys = [k.get_secret_value() for k in settings.api_keys]

    @app.page("/v1/query")
    class Query(faust.web.View):
        async def post(self, request: Any) -> Any:
            if not key_allowed(presented_key(request.headers), keys):
                return self.error(401, "missing or wrong API key (Authorization: Bearer KEY)")
            try:
                body = orjson.loads(await request.read())
                sql, params = body["sql"], body.get("params") or {}
                if not isinstance(sql, str) or not isinstance(params, dict):
                    raise TypeError
                max_rows = min(
                    int(body.get("max_rows", settings.query_max_rows)), settings.query_max_rows
                )
            except (ValueError, KeyError, TypeError):
                return self.error(400, 'body must be {"sql": "...", "params": {...}}')
            try:
                result = await clickhouse.run(
                    readonly_query,
                    clickhouse,
                    sql,
                    params,
                    max_rows=max_rows,
                    timeout_seconds=settings.query_timeout_seconds,
                )
            except QueryRefused as error:
                return self.error(400, str(error))
            except ClickHouseRejected as error:
                return self.error(400, str(error))
            except ClickHouseUnavailable as error:
                return self.error(503, str(error))
            return self.bytes(orjson.dumps(result), content_type="application/json")
