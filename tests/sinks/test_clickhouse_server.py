"""The HTTP path against a real ClickHouse server, when one is configured.

Set TOUCHSTREAM_TEST_CLICKHOUSE_URL=http://user:password@127.0.0.1:8123/db to run it; the
same code as chDB (migrations, idempotent inserts, read-only queries) runs over HTTP.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

import pytest

from tests.streams.builders import delivery
from touchstream.query_endpoint import readonly_query
from touchstream.sinks.clickhouse import ClickHouse, ClickHouseRejected
from touchstream.streams.rows import touchpoint_columns

URL = os.environ.get("TOUCHSTREAM_TEST_CLICKHOUSE_URL")
pytestmark = pytest.mark.skipif(not URL, reason="TOUCHSTREAM_TEST_CLICKHOUSE_URL not set")


def test_server_roundtrip_is_idempotent_and_readonly() -> None:
    assert URL is not None
    clickhouse = ClickHouse(URL)
    run = uuid.uuid4().hex[:8]
    events = [(delivery(f"srv-{run}", i, 2, 3, event_id=f"{run}-{i}"), 0, i) for i in range(20)]
    columns = touchpoint_columns(events, datetime.now(UTC), 1.0)
    clickhouse.insert_columns("touchpoints", columns)
    clickhouse.insert_columns("touchpoints", columns)  # a redelivery
    result = readonly_query(
        clickhouse,
        "SELECT count() FROM touchpoints FINAL WHERE customer_id = {c:String}",
        {"c": f"srv-{run}"},
    )
    assert result["rows"] == [[20]]
    with pytest.raises(ClickHouseRejected):
        readonly_query(clickhouse, "DROP TABLE touchpoints")
    clickhouse.close()
