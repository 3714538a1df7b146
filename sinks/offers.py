"""Wow offers from ClickHouse: decide the pending ones of the days event time has left
behind against the teams' capacity (streams/offers.py), store the decisions, and return the
published ones for the signals topic and the webhooks.

Live, the worker's leader runs `decide` on a timer; after `touchstream replay --clickhouse`
and at the end of the demo it runs over every day with `final=True`. A crash between the
publication and the stored decision decides the same offers again the same way: the same
signal ids, which the signals table and the webhook receivers absorb.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, date, datetime

from touchstream.schemas import Signal
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.promise_alerts import watermark
from touchstream.streams.offers import DAY, PUBLISHED, Offer, allot, decidable_before
from touchstream.streams.rows import offer_columns, signal_columns
from touchstream.streams.rules import WowRules

log = logging.getLogger("touchstream.offers")
EPOCH = date(1970, 1, 1)

PENDING_SQL = """
SELECT signal FROM wow_offers FINAL
WHERE decided = 0 AND day < {before:Date}
ORDER BY day, team, signal_id
"""
PUBLISHED_SQL = """
SELECT team, day, count() FROM wow_offers FINAL
WHERE decision = 'published' AND day IN {days:Array(Date)}
GROUP BY team, day
"""


def pending_offers(
    clickhouse: ClickHouse, rules: WowRules, final: bool = False, waiting: Collection[int] = ()
) -> list[Offer]:
    """Offers not decided yet, of the days that can be decided (every day with `final`).
    `waiting`: partitions holding records not handled yet (`watermark`)."""
    if final:
        before = date(9999, 12, 31)
    else:
        latest = watermark(clickhouse, waiting)
        if latest is None:
            return []
        before = datetime.fromtimestamp(decidable_before(latest, rules) * DAY, UTC).date()
    _, rows = clickhouse.query(PENDING_SQL, {"before": before})
    return [Offer(Signal.model_validate_json(row[0])) for row in rows]


def decide(
    clickhouse: ClickHouse, rules: WowRules, final: bool = False, waiting: Collection[int] = ()
) -> list[Offer]:
    """Decide what can be decided (nothing is written: `store_published`, then the
    publication, then `store_decisions`)."""
    pending = pending_offers(clickhouse, rules, final, waiting)
    if not pending:
        return []
    days = sorted({datetime.fromtimestamp(o.day * DAY, UTC).date() for o in pending})
    _, rows = clickhouse.query(PUBLISHED_SQL, {"days": days})
    already = {(str(team), (day - EPOCH).days): int(n) for team, day, n in rows}
    return allot(pending, rules, already)


def published(decided: list[Offer]) -> list[Signal]:
    return [o.signal for o in decided if o.decision == PUBLISHED]


def store_published(clickhouse: ClickHouse, decided: list[Offer]) -> None:
    signals = published(decided)
    if signals:
        clickhouse.insert_columns("signals", signal_columns(signals))


def store_decisions(clickhouse: ClickHouse, decided: list[Offer]) -> None:
    if not decided:
        return
    clickhouse.insert_columns("wow_offers", offer_columns(decided, datetime.now(UTC)))
    shown = len(published(decided))
    log.info(
        "wow offers decided: %d published, %d over capacity (days %s to %s)",
        shown,
        len(decided) - shown,
        min(o.signal.raised_at for o in decided).date().isoformat(),
        max(o.signal.raised_at for o in decided).date().isoformat(),
    )


def decide_and_store(clickhouse: ClickHouse, rules: WowRules, final: bool = False) -> list[Offer]:
    """Offline (a replay, the end of the demo): decide and store, nothing to publish to."""
    decided = decide(clickhouse, rules, final)
    store_published(clickhouse, decided)
    store_decisions(clickhouse, decided)
    return decided
