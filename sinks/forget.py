"""Right to be forgotten in ClickHouse: remove a customer's rows, record that it was done.

Forget requests travel through the touchpoints topic like everything else
(schemas/control.py), so the processing loop removes the rows at the right point of the
stream: rows written before the request are removed, rows of later events stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from touchstream.sinks.clickhouse import ClickHouse
from touchstream.streams.identity import value_of

# how each table finds a customer's rows (dead letters only have the raw payload)
CUSTOMER_ROWS = {
    "touchpoints": "customer_id = {customer_id:String}",
    "customer_metrics": "customer_id = {customer_id:String}",
    "customer_metrics_daily": "customer_id = {customer_id:String}",
    "signals": "customer_id = {customer_id:String}",
    "wow_offers": "customer_id = {customer_id:String}",
    "dead_letters": "position(payload, {quoted:String}) > 0 "
    "OR multiSearchAny(payload, {identifiers:Array(String)})",
    "identity_map": "customer_id = {customer_id:String} OR identifier = {customer_id:String} "
    "OR has({keys:Array(String)}, identifier)",
    "identity_merges": "survivor = {customer_id:String} OR absorbed = {customer_id:String}",
    "identity_refusals": "has(customers, {customer_id:String}) "
    "OR has({keys:Array(String)}, identifier)",
    # the graph's entries: the customer's, its identifiers' and any naming it (met, alias)
    "identity_graph": "name = concat('c:', {customer_id:String}) "
    "OR has(arrayMap(k -> concat('k:', k), {keys:Array(String)}), name) "
    "OR position(value, {quoted:String}) > 0",
}


def forget_rows(
    clickhouse: ClickHouse,
    table: str,
    customer_id: str,
    requested_at: datetime,
    keys: Sequence[str] = (),
) -> int:
    """Delete the customer's rows from one table and record the count (idempotent).
    `keys`: the customer's identity keys (streams/identity.py); a dead letter holds only
    their pseudonyms, in its raw payload."""
    params = {
        "customer_id": customer_id,
        "quoted": orjson.dumps(customer_id).decode(),
        "keys": list(keys),
        "identifiers": [value_of(key) for key in keys],
    }
    where = CUSTOMER_ROWS[table]
    _, rows = clickhouse.query(f"SELECT count() FROM {table} WHERE {where}", params)
    removed = int(rows[0][0])
    if removed:
        clickhouse.command(f"DELETE FROM {table} WHERE {where}", params)
    _, done = clickhouse.query(
        "SELECT count() FROM forgotten_customers WHERE customer_id = {customer_id:String} AND "
        "requested_at = {at:DateTime64(3, 'UTC')} AND table_name = {table:String}",
        {"customer_id": customer_id, "at": requested_at.replace(tzinfo=None), "table": table},
    )
    if not done[0][0]:  # a repeated request (redelivery, replay) keeps the first record
        clickhouse.insert_columns(
            "forgotten_customers",
            {
                "customer_id": [customer_id],
                "requested_at": [requested_at],
                "table_name": [table],
                "rows_removed": [removed],
                "done_at": [datetime.now(UTC)],
            },
        )
    return removed
