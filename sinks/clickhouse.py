"""ClickHouse: connecting (chDB in-process or a server over HTTP), migrations, batched writes.

The same code serves both: clickhouse-connect speaks to chDB through `chdb://PATH` and to a
server through `http(s)://user:password@host:8123/db`. chDB calls block and a chDB
directory belongs to one process, so every call goes through one `ClickHouse` object and its
single worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

log = logging.getLogger("touchstream.clickhouse")

MIGRATIONS_PACKAGE = "touchstream.sinks.migrations"


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse could not be reached (retried)."""


class ClickHouseRejected(RuntimeError):
    """ClickHouse answered and refused the statement: retrying cannot help."""


# Server error codes that mean "the statement is wrong", not "the server is away".
_REJECTION_CODES = re.compile(
    r"Code: (6|16|27|32|36|41|43|44|47|53|60|62|69|70|72|117|130|"
    r"164|236|349|386|395)\b"
)


def is_rejection(error: BaseException) -> bool:
    """A refusal (wrong statement or data), as opposed to ClickHouse being unreachable."""
    from clickhouse_connect.driver.exceptions import DataError, ProgrammingError

    if isinstance(error, ProgrammingError | DataError | TypeError | ValueError | KeyError):
        return True
    return bool(_REJECTION_CODES.search(str(error)))


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and error messages."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def chdb_path(url: str) -> Path | None:
    """The directory of a `chdb://` URL, absolute; None for a server URL."""
    if not url.startswith("chdb:"):
        return None
    return Path(url.removeprefix("chdb:").removeprefix("//")).expanduser().resolve()


def connect(url: str) -> Any:
    """A clickhouse-connect client for `chdb://path` or `http(s)://user:pw@host:port/db`."""
    import clickhouse_connect

    path = chdb_path(url)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(path))
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"unsupported ClickHouse URL {redact(url)}: use chdb:// or http(s)://")
    return clickhouse_connect.get_client(
        host=parsed.hostname or "localhost",
        port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
        username=unquote(parsed.username or "default"),
        password=unquote(parsed.password or ""),
        database=parsed.path.lstrip("/") or "default",
        secure=parsed.scheme == "https",
    )


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = re.fullmatch(r"(\d+)_(.+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text()))
    return sorted(found)


def split_statements(sql: str) -> list[str]:
    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    return [s.strip() for s in without_comments.split(";") if s.strip()]


# DateTime (what a TTL is computed in) ends on 2106-02-07: a TTL past it wraps around to
# 1970 and deletes everything at once
TTL_END = datetime(2106, 1, 1, tzinfo=UTC)


def max_ttl_days(now: datetime | None = None) -> int:
    return (TTL_END - (now or datetime.now(UTC))).days


def ttl_clause(days: int) -> str:
    return f"TTL toDateTime(occurred_at) + INTERVAL {days} DAY" if days else ""


def reconcile_ttl(client: Any, days: int) -> None:
    """Bring the touchpoints table's TTL in line with the setting (0 = keep forever)."""
    rows = client.query(
        "SELECT engine_full FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'touchpoints'"
    ).result_rows
    if not rows:
        return
    found = re.search(r"\bTTL\b.*?toIntervalDay\((\d+)\)", rows[0][0])
    current = int(found[1]) if found else 0
    if current == days:
        return
    if days:
        client.command(f"ALTER TABLE touchpoints MODIFY {ttl_clause(days)}")
    else:
        client.command("ALTER TABLE touchpoints REMOVE TTL")
    log.warning(
        "touchpoints TTL changed from %s to %s (TOUCHSTREAM_TOUCHPOINTS_TTL_DAYS)",
        f"{current} days" if current else "none",
        f"{days} days" if days else "none: rows are kept forever",
    )


def migrate(client: Any, touchpoints_ttl_days: int = 0) -> list[str]:
    """Apply the migrations not applied yet (recorded in `schema_migrations`), then keep
    the touchpoints TTL in step with the setting."""
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
        "applied_at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query("SELECT version FROM schema_migrations").result_rows}
    applied = []
    for version, name, sql in migration_files():
        if version in done:
            continue
        for statement in split_statements(sql):
            client.command(statement.replace("{touchpoints_ttl}", ttl_clause(touchpoints_ttl_days)))
        client.insert(
            "schema_migrations",
            [[version, name, datetime.now(UTC)]],
            column_names=["version", "name", "applied_at"],
        )
        applied.append(f"{version:03d}_{name}")
        log.info("applied migration %03d_%s", version, name)
    reconcile_ttl(client, touchpoints_ttl_days)
    return applied


def batch_id(table: str, keys: Sequence[str]) -> str:
    """A stable name for a batch (spill files, logs)."""
    digest = hashlib.sha256(table.encode())
    for key in keys:
        digest.update(key.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class ClickHouse:
    """One connection, one thread, retries with backoff. Safe to share across coroutines.

    `client_factory` is the connection boundary: tests inject one that fails for a while.
    """

    def __init__(
        self,
        url: str,
        client_factory: Callable[[str], Any] = connect,
        *,
        ttl_days: int = 0,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
    ) -> None:
        self.url = url
        self.client_factory = client_factory
        self.ttl_days = ttl_days
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._client: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        # (table, columns) -> their types, asked once per connection instead of per insert
        self._column_types: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.migrated = False

    # -- synchronous core (runs on the ClickHouse thread) -----------------------------------
    def _ensure(self) -> Any:
        if self._client is None:
            self._client = self.client_factory(self.url)
            if not self.migrated:
                migrate(self._client, self.ttl_days)
                self.migrated = True
        return self._client

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._column_types.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def call(
        self,
        fn: Callable[[Any], Any],
        *,
        retry_forever: bool = False,
        attempts: int = 1,
        refused: Callable[[BaseException], bool] = is_rejection,
    ) -> Any:
        """Run fn(client); on failure reconnect and retry with exponential backoff + jitter."""
        delay = self.retry_initial
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._lock:
                    return fn(self._ensure())
            except Exception as error:
                if refused(error):
                    raise ClickHouseRejected(redact(str(error))[:500]) from None
                with self._lock:
                    self._drop_client()
                if not retry_forever and attempt >= attempts:
                    raise ClickHouseUnavailable(
                        f"ClickHouse at {redact(self.url)}: {type(error).__name__}: "
                        f"{redact(str(error))[:300]}"
                    ) from None
                log.warning(
                    "ClickHouse at %s unavailable (%s: %s); retry %d in %.1fs",
                    redact(self.url),
                    type(error).__name__,
                    redact(str(error))[:200],
                    attempt,
                    delay,
                )
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(self.retry_max, delay * 2)

    def insert_columns(self, table: str, columns: dict[str, list[Any]]) -> None:
        """One column-oriented insert, retried until ClickHouse takes it (nothing is lost).

        A retry after a lost answer may insert the batch twice; the tables' ReplacingMergeTree
        keys collapse the copies (FINAL), which stays true across crashes, unlike insert
        deduplication (see migrations/001).
        """
        names = list(columns)
        data = [columns[name] for name in names]
        known = (table, tuple(names))

        def insert(client: Any) -> None:
            context = client.create_insert_context(
                table,
                column_names=names,
                # else clickhouse-connect describes the table before every insert: a second
                # statement, ~2 ms in chDB, several times that beside a busy event loop
                column_types=self._column_types.get(known),
                data=data,
                column_oriented=True,
                # a backfill of years of history spans many monthly partitions in one batch
                settings={"async_insert": 0, "max_partitions_per_insert_block": 0},
            )
            try:
                client.insert(context=context)
                self._column_types[known] = context.column_types
            finally:
                # clickhouse-connect's InsertContext refers to itself (a bound method kept as
                # an attribute): without this, every batch's columns (three small lists a
                # touchpoint) lived on until a full cyclic GC pass found them, which walked
                # them on the way (~250 MiB of garbage per 200k events with the GC off)
                vars(context).clear()

        self.call(insert, retry_forever=True)

    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
        *,
        user_query: bool = False,
    ) -> tuple[list[str], list[tuple]]:
        """`user_query`: an ops query. Once ClickHouse has answered, whatever it said (a
        syntax error, a limit reached, a refusal) is the caller's to fix: no retry."""

        def run(client: Any) -> tuple[list[str], list[tuple]]:
            result = client.query(sql, parameters=parameters or {}, settings=settings or {})
            return list(result.column_names), list(result.result_rows)

        try:
            if user_query:
                return self.call(run, attempts=1, refused=self.answered)
            return self.call(run, attempts=2)
        finally:
            if settings and settings.get("readonly"):
                # chDB keeps a query's `readonly` on its session (seen after a refused or a
                # parameterised query), which would refuse the writer's next statement
                with self._lock:
                    self._drop_client()

    def answered(self, error: BaseException) -> bool:
        """ClickHouse received the statement and refused it (as opposed to being away)."""
        if is_rejection(error) or re.search(r"\bCode: \d+", str(error)):
            return True
        return self.url.startswith("chdb:")  # in-process: nothing can be away

    def command(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        return self.call(
            lambda client: client.command(sql, parameters=parameters or {}), attempts=2
        )

    # -- asyncio front ----------------------------------------------------------------------
    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        with self._lock:
            self._drop_client()
        self._executor.shutdown(wait=False)
