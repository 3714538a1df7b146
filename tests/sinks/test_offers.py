"""Wow offers through the live write path into a real chDB, decided on the leader's timer as
event time moves: the same decisions as a replay of the same traffic, over-capacity rows
queryable, each day decided once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import orjson

from tests.e2e.helpers import replay_events
from touchstream.generator import generate
from touchstream.schemas import InputLimits
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.offers import decide, decide_and_store, store_decisions, store_published
from touchstream.sinks.promise_alerts import watermark
from touchstream.sinks.writer import store_batch
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine, partition_for
from touchstream.streams.offers import OVER_CAPACITY, PUBLISHED, Offer, ranking_key
from touchstream.streams.records import Processed, process_records
from touchstream.streams.rules import Rules

PARTITIONS = 4
DAY = 86_400.0


def test_live_decisions_equal_the_replay_and_the_rest_are_kept(tmp_path: Path) -> None:
    # a small team: two gestures a day in all, so capacity binds on most days
    rules = Rules.model_validate(
        {
            "wow": {
                "capacity_per_day": {
                    "support": 1,
                    "customer_success": 1,
                    "marketing": 0,
                    "account_management": 0,
                }
            }
        }
    )
    _, events = generate(customers=400, months=4, seed=11)
    expected = replay_events(events, rules=rules)
    assert expected.over_capacity > 0, "the test needs days over capacity"

    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    engine = Engine(rules, RiskModel(), {}, {}, PARTITIONS)
    timer_runs = []
    try:
        for start in range(0, len(events), 1_000):
            handle(clickhouse, engine, events[start : start + 1_000], tmp_path, start)
            # the leader's timer between two batches: only the days event time has left
            decided = decide(clickhouse, rules.wow)
            store_published(clickhouse, decided)
            store_decisions(clickhouse, decided)
            timer_runs.append(decided)
            assert decide(clickhouse, rules.wow) == []  # a day is decided once
        _, pending = clickhouse.query("SELECT count() FROM wow_offers FINAL WHERE decided = 0")
        assert pending[0][0] > 0  # the last day(s): event time has not left them behind yet
        decide_and_store(clickhouse, rules.wow, final=True)  # as the demo does at its end

        _, rows = clickhouse.query(
            "SELECT signal_id, decision, rank, team FROM wow_offers FINAL ORDER BY signal_id"
        )
        _, shown = clickhouse.query(
            "SELECT signal_id FROM signals FINAL WHERE kind = 'wow_opportunity'"
        )
    finally:
        clickhouse.close()

    assert sum(1 for run in timer_runs if run) >= 8  # decided along the way, day by day
    live = {sid: (decision, rank) for sid, decision, rank, _ in rows}
    replayed = {o.signal.signal_id: (o.decision, o.rank) for o in expected.offers}
    assert live == replayed
    assert {sid for (sid,) in shown} == {
        sid for sid, (decision, _) in replayed.items() if decision == PUBLISHED
    }
    assert sum(1 for d, _ in live.values() if d == OVER_CAPACITY) == expected.over_capacity
    assert {team for *_, team in rows if live} >= {"support", "customer_success"}


def test_published_offers_are_the_top_of_the_full_ranked_list() -> None:
    rules = Rules()
    _, events = generate(customers=2_000, months=2, seed=3)
    result = replay_events(events, rules=rules)
    ranked: dict[tuple[str, int], list[Offer]] = {}
    for offer in sorted(result.offers, key=ranking_key):
        ranked.setdefault((offer.team, offer.day), []).append(offer)
    for (team, _), offers in ranked.items():
        top = offers[: rules.wow.capacity(team)]
        assert {o.signal.signal_id for o in offers if o.decision == PUBLISHED} == {
            o.signal.signal_id for o in top
        }
    shown = Counter(s.kind.value for s in result.signals)["wow_opportunity"]
    assert shown == sum(1 for o in result.offers if o.decision == PUBLISHED)
    days = (max(o.day for o in result.offers) - min(o.day for o in result.offers)) + 1
    per_thousand_a_month = shown / 2_000 * 1000 / (days / 30.4)
    assert per_thousand_a_month <= 100, per_thousand_a_month
    assert len(result.offers) > shown  # the demo's traffic asks for more than a team can do


def test_a_partition_with_records_not_handled_holds_the_days_back(tmp_path: Path) -> None:
    """A worker starting on a backlog writes one partition's batch before another's: while
    a partition that holds records has no touchpoint in ClickHouse, no day is decided (the
    offers of its customers for those days have not arrived yet)."""
    rules = Rules()
    _, events = generate(customers=200, months=3, seed=5)
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    engine = Engine(rules, RiskModel(), {}, {}, PARTITIONS)
    late = [e for e in events if partition_for(e["customer_id"], PARTITIONS) == 3]
    first = [e for e in events if partition_for(e["customer_id"], PARTITIONS) != 3]
    try:
        handle(clickhouse, engine, first, tmp_path)
        ahead = watermark(clickhouse)
        assert ahead is not None  # a partition with no row and nothing to handle: not counted
        assert watermark(clickhouse, waiting={0, 1}) == ahead  # rows say how far those are
        assert watermark(clickhouse, waiting={3}) is None
        assert decide(clickhouse, rules.wow) and decide(clickhouse, rules.wow, waiting={3}) == []
        handle(clickhouse, engine, late[: len(late) // 2], tmp_path)
        behind = watermark(clickhouse, waiting={3})
        assert behind is not None and behind < ahead  # the least partition's latest
    finally:
        clickhouse.close()


def handle(
    clickhouse: ClickHouse, engine: Engine, events: list[dict], tmp_path: Path, first: int = 0
) -> None:
    """Events through the live per-record step and the live write path, one batch (their
    offsets from `first`)."""
    messages = [
        SimpleNamespace(
            key=e["customer_id"].encode(),
            value=orjson.dumps(e),
            topic="in",
            partition=partition_for(e["customer_id"], PARTITIONS),
            offset=first + i,
        )
        for i, e in enumerate(events)
    ]
    batch: list[tuple[Processed, int, int]] = []
    process_records(engine, InputLimits(), messages, (), batch)
    asyncio.run(store_batch(clickhouse, batch, tmp_path / "spill"))
