"""The ops query path reads our tables and nothing else, within fixed limits (real chDB)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.hostile_queries import ALLOWED, HOSTILE
from tests.sinks.test_clickhouse import rows
from touchstream.query_endpoint import QueryRefused, readonly_query
from touchstream.sinks.clickhouse import ClickHouse, ClickHouseRejected
from touchstream.sinks.query_guard import check_ast
from touchstream.streams.rows import touchpoint_columns


class Listener:
    """A TCP port on 127.0.0.1 that counts who connects (the 'network' a query must not reach)."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while self.running:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.socket.close()


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    target = ClickHouse(f"chdb://{tmp_path_factory.mktemp('guard') / 'ch'}")
    target.insert_columns("touchpoints", touchpoint_columns(rows(3000), datetime.now(UTC), 1.0))
    try:
        yield target
    finally:
        target.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


@pytest.mark.parametrize(("name", "sql"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_query_is_refused_or_bounded(
    clickhouse: ClickHouse, listener: Listener, tmp_path: Path, name: str, sql: str
) -> None:
    out = tmp_path / "written"
    started = time.monotonic()
    with pytest.raises((QueryRefused, ClickHouseRejected)) as refused:
        readonly_query(
            clickhouse,
            sql.format(port=listener.port, out=out),
            max_rows=100,
            timeout_seconds=2.0,
            max_memory_bytes=256 * 1024 * 1024,
        )
    took = time.monotonic() - started
    assert took < 2.0 + 1.5, f"{name}: {took:.1f}s, past the 2 s limit (a retry?)"
    assert "root:" not in str(refused.value)  # no file content in the message either
    assert not out.exists()
    assert listener.connections == 0, f"{name} reached the network"


@pytest.mark.parametrize("sql", ALLOWED)
def test_ordinary_queries_still_work(clickhouse: ClickHouse, sql: str) -> None:
    result = readonly_query(clickhouse, sql, max_rows=100)
    assert result["rows"], sql


def test_parameters_are_bound_not_spliced(clickhouse: ClickHouse) -> None:
    result = readonly_query(
        clickhouse,
        "SELECT count() FROM touchpoints WHERE customer_id = {id:String}",
        {"id": "x') UNION ALL SELECT * FROM file('/etc/passwd', 'LineAsString') --"},
    )
    assert result["rows"] == [[0]]


def test_limits_are_clickhouse_errors_never_retried(clickhouse: ClickHouse) -> None:
    started = time.monotonic()
    with pytest.raises(ClickHouseRejected, match=r"TIMEOUT_EXCEEDED|Timeout exceeded"):
        readonly_query(
            clickhouse,
            "SELECT count() FROM touchpoints a, touchpoints b, touchpoints c",
            timeout_seconds=1.0,
        )
    assert time.monotonic() - started < 2.5  # once, not twice
    with pytest.raises(ClickHouseRejected, match=r"MEMORY_LIMIT_EXCEEDED|memory limit"):
        readonly_query(
            clickhouse,
            "SELECT groupArray(range(100000)) FROM touchpoints",
            max_memory_bytes=64 * 1024 * 1024,
        )


def test_the_parse_check_reads_clickhouse_ast_lines() -> None:
    select = ["SelectWithUnionQuery (children 1)", " ExpressionList (children 1)"]
    check_ast([*select, "  SelectQuery (children 1)", " Identifier Native"])
    with pytest.raises(QueryRefused, match="SETTINGS"):
        check_ast([*select, "  SelectQuery (children 2)", "   Set"])
    with pytest.raises(QueryRefused, match="INTO OUTFILE"):
        check_ast([*select, " Literal '/tmp/x'"])
    with pytest.raises(QueryRefused, match="only SELECT"):
        check_ast(["InsertQuery   (children 3)"])
    with pytest.raises(QueryRefused, match="table functions"):
        check_ast([*select, "     TableExpression (children 1)", "      Function url (children 1)"])
