"""Read-only SQL for ops: a function, and its HTTP endpoint on the worker's web server.

In embedded mode the worker owns the chDB directory, so `touchstream query` asks the worker
(POST /v1/query). A query is checked by ClickHouse's own parser and analyzer first (one
SELECT over our tables, built-in functions, nothing on the host or network:
`sinks/query_guard.py`), then runs with `readonly=2` and fixed limits of time, memory and
result size, and takes parameters ClickHouse-style: `WHERE customer_id = {id:String}` with
`params = {"id": "c1"}`, never string-formatted. A refusal or a limit reached is the
caller's to fix: never retried.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

import orjson

from touchstream.auth import key_allowed, presented_key
from touchstream.sinks.clickhouse import (
    ClickHouse,
    ClickHouseRejected,
    ClickHouseUnavailable,
    migration_files,
)
from touchstream.sinks.query_guard import QueryRefused, check_query, limits

log = logging.getLogger("touchstream.query")

__all__ = ["QueryRefused", "readonly_query"]

_CREATED = re.compile(
    r"CREATE\s+(?:TABLE|MATERIALIZED\s+VIEW|VIEW)\s+IF\s+NOT\s+EXISTS\s+(\w+)", re.I
)


def our_tables() -> set[str]:
    """The tables our migrations create (the only ones an ops query may read)."""
    names = {"schema_migrations"}
    for _, _, sql in migration_files():
        names.update(_CREATED.findall(sql))
    return names


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


class _Catalogue:
    """Per ClickHouse target: its database's names of our tables, its built-in functions."""

    def __init__(self, clickhouse: ClickHouse) -> None:
        _, rows = clickhouse.query("SELECT currentDatabase()", user_query=True)
        database = rows[0][0]
        self.tables = {f"{database}.{name}" for name in our_tables()}
        _, rows = clickhouse.query(
            "SELECT name FROM system.functions WHERE origin = 'System'", user_query=True
        )
        self.builtins = {row[0] for row in rows}


_catalogues: WeakKeyDictionary[ClickHouse, _Catalogue] = WeakKeyDictionary()


def _catalogue(clickhouse: ClickHouse) -> _Catalogue:
    """Looked up once per ClickHouse object (two small queries)."""
    found = _catalogues.get(clickhouse)
    if found is None:
        found = _catalogues[clickhouse] = _Catalogue(clickhouse)
    return found


def readonly_query(
    clickhouse: ClickHouse,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    max_rows: int = 10_000,
    timeout_seconds: float = 30.0,
    max_memory_bytes: int = 512 * 1024 * 1024,
) -> dict[str, Any]:
    """Run one checked, bounded, read-only statement; returns {"columns", "rows", "truncated"}.

    Raises QueryRefused (the policy says no) or ClickHouseRejected (ClickHouse said no, or a
    limit was reached), never retried."""
    statement = sql.strip().rstrip(";").strip()
    if not statement:
        raise QueryRefused("empty query")
    if has_second_statement(statement):
        raise QueryRefused("one statement per request (found ';' outside quotes)")
    bounded = limits(timeout_seconds, max_rows, max_memory_bytes)
    catalogue = _catalogue(clickhouse)

    def explain(query: str) -> list[str]:
        # the parse alone runs without settings, so a SETTINGS clause seen is the user's;
        # the analysis (which may evaluate constant subqueries) runs with the limits
        settings = None if query.startswith("EXPLAIN AST") else bounded
        _, rows = clickhouse.query(query, params or {}, settings, user_query=True)
        return [str(row[0]) for row in rows]

    check_query(statement, explain, catalogue.tables, catalogue.builtins)
    columns, rows = clickhouse.query(statement, params or {}, bounded, user_query=True)
    return {
        "columns": columns,
        "rows": [_plain(list(row)) for row in rows[:max_rows]],
        "truncated": len(rows) > max_rows,
    }


def attach_query_endpoint(app: Any, clickhouse: ClickHouse, settings: Any) -> None:
    import faust

    keys = settings.endpoint_keys("query")

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
                    int(body.get("max_rows", settings.web.query_max_rows)),
                    settings.web.query_max_rows,
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
                    timeout_seconds=settings.web.query_timeout_seconds,
                    max_memory_bytes=settings.web.query_max_memory_bytes,
                )
            except QueryRefused as error:
                return self.error(403, str(error))
            except ClickHouseRejected as error:
                return self.error(400, str(error))
            except ClickHouseUnavailable as error:
                return self.error(503, str(error))
            return self.bytes(orjson.dumps(result), content_type="application/json")
