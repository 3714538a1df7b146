"""BatchProducer without a broker: where records go and in which batches."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from kafka.partitioner.default import DefaultPartitioner

from touchstream.streams.runtime.produce import BatchProducer


class FakeBatch:
    def __init__(self, limit: int) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.limit = limit

    def append(self, key: bytes | None, value: bytes | None, timestamp: None) -> Any:
        if len(self.records) >= self.limit:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """The part of aiokafka's producer BatchProducer uses; remembers what was sent."""

    def __init__(self, partitions: int, batch_limit: int = 1000) -> None:
        self.partitions, self.batch_limit = partitions, batch_limit
        self.sent: list[tuple[str, int, list]] = []

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.batch_limit)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def send_batch(self, batch: FakeBatch, topic: str, partition: int) -> Any:
        self.sent.append((topic, partition, batch.records))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def producer_for(fake: FakeProducer) -> BatchProducer:
    app = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: fake))
    return BatchProducer(app)  # type: ignore[arg-type]


def test_keyed_records_go_where_kafkas_default_partitioner_puts_them() -> None:
    fake = FakeProducer(partitions=6)
    keys = [f"customer-{i}".encode() for i in range(120)] * 2
    asyncio.run(producer_for(fake).send([("out", None, k, b"v") for k in keys]))
    placed = {key: p for _, p, records in fake.sent for key, _ in records}
    cluster = SimpleNamespace(
        topics=lambda: {"out"},
        partitions_for_topic=lambda topic: set(range(6)),
        available_partitions_for_topic=lambda topic: set(range(6)),
    )
    kafka = DefaultPartitioner()
    for key in keys:
        assert placed[key] == kafka.partition("out", key, key, b"v", b"v", cluster)
    assert sum(len(r) for _, _, r in fake.sent) == len(keys)


def test_each_group_starts_its_own_batches_and_order_is_kept() -> None:
    fake = FakeProducer(partitions=2, batch_limit=3)
    records = [("state", 1, f"k{i}".encode(), b"v") for i in range(7)]
    markers = [("state", 1, b"__end__", None)]
    unkeyed = [("dead", None, None, b"x") for _ in range(4)]
    asyncio.run(producer_for(fake).send(records, markers, unkeyed))
    state = [records for topic, p, records in fake.sent if topic == "state"]
    assert [len(batch) for batch in state] == [3, 3, 1, 1]  # the marker alone, last
    assert [k for batch in state for k, _ in batch] == [f"k{i}".encode() for i in range(7)] + [
        b"__end__"
    ]
    dead = sorted(p for topic, p, records in fake.sent for _ in records if topic == "dead")
    assert dead == [0, 0, 1, 1]  # round robin
