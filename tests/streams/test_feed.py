"""The feed's order: a fetch's partitions in turn, as Faust's scheduler handed them out."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition
from faust.types import TP

from touchstream.streams.runtime.feed import Feed


class _Consumer:
    def __init__(self) -> None:
        self.paused: list[Any] = []

    def on_buffer_full(self, tp: Any) -> None:
        self.paused.append(tp)


def _records(partition: int, offsets: range) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic="in", partition=partition, offset=o) for o in offsets]


def _feed(high_water: int) -> tuple[Feed, _Consumer]:
    consumer = _Consumer()
    app: Any = SimpleNamespace(consumer=consumer)
    return Feed(app, "in", high_water), consumer


def test_a_fetch_goes_on_one_record_of_each_partition_at_a_time() -> None:
    """A batch taken from the front holds every partition's next records, not one
    partition's thousands (which let event time run ahead on it: docs/performance.md)."""

    async def run() -> None:
        feed, consumer = _feed(high_water=1_000)
        feed.extend(
            {
                TopicPartition("in", 0): _records(0, range(0, 4)),
                TopicPartition("in", 1): _records(1, range(10, 11)),
                TopicPartition("in", 2): _records(2, range(20, 22)),
            }
        )
        taken = await feed.take(5, within=0.0)
        assert [(r.partition, r.offset) for r in taken] == [
            (0, 0),
            (1, 10),
            (2, 20),
            (0, 1),
            (2, 21),
        ]
        assert [(r.partition, r.offset) for r in feed.records] == [(0, 2), (0, 3)]
        assert consumer.paused == []

    asyncio.run(run())


def test_a_fetch_past_the_high_water_pauses_its_partitions_once() -> None:
    feed, consumer = _feed(high_water=3)
    feed.extend({TopicPartition("in", 0): _records(0, range(2))})
    assert consumer.paused == []
    fetch = {
        TopicPartition("in", 0): _records(0, range(2, 4)),
        TopicPartition("in", 3): _records(3, range(30, 31)),
    }
    feed.extend(fetch)
    feed.extend({TopicPartition("in", 0): _records(0, range(4, 5))})
    assert consumer.paused == [TP("in", 0), TP("in", 3)]
    assert all(type(tp) is TP for tp in consumer.paused)  # Faust's own type, as it asserts
    assert [r.offset for r in feed.records] == [0, 1, 2, 30, 3, 4]
