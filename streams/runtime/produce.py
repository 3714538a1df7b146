"""Many records to the broker at once, as one aiokafka record batch per topic-partition.

Faust's `topic.send` costs tens of microseconds a record (a FutureMessage, its producer
buffer, aiokafka's per-record path); a batch is built with a few microseconds a record.
The worker sends about two records per event (metrics snapshot, changelog), so this is
on the hot path. Records of one partition keep their order: aiokafka sends one batch per
partition at a time (a partition with a batch in flight is muted), so groups sent by one
call land in order, each group in batches of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from typing import Any

import faust

from touchstream.streams.partitioner import murmur2
from touchstream.streams.runtime.faust_api import kafka_producer

log = logging.getLogger("touchstream.worker")

OutRecord = tuple[str, int | None, bytes | None, bytes | None]  # topic, partition, key, value


class BatchProducer:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._partitions: dict[str, int] = {}
        self._round_robin = itertools.count()

    async def send(self, *groups: Iterable[OutRecord]) -> None:
        """Send and wait until the broker acknowledged every record. A record without a
        partition goes where Kafka's default partitioner would put its key. Each group
        starts new batches (the changelog end markers need a batch of their own)."""
        producer = kafka_producer(self.app)
        pending: list[Any] = []
        for records in groups:
            await self._enqueue(producer, records, pending)
        await asyncio.gather(*pending)

    async def _enqueue(self, producer: Any, records: Iterable[OutRecord], pending: list) -> None:
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic, partition, key, value in records:
            if partition is None:
                count = self._partitions.get(topic) or await self._count(producer, topic)
                if key is None:
                    partition = next(self._round_robin) % count
                else:  # Kafka's default partitioner (compiled: ~0.1 µs a key)
                    partition = (murmur2(key) & 0x7FFFFFFF) % count
            by_partition.setdefault((topic, partition), []).append((key, value))
        for (topic, partition), items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    continue
                if batch.record_count():
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:  # too big
                    pending.append(
                        await producer.send(topic, value=value, key=key, partition=partition)
                    )
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))

    async def _count(self, producer: Any, topic: str) -> int:
        count = self._partitions[topic] = len(await producer.partitions_for(topic))
        return count


async def send_until_acked(producer: BatchProducer, *groups: list[OutRecord]) -> None:
    """Send and wait for the broker's acks, retrying the whole lot until it is taken.

    Never raises for a broker problem: the batch loop must not die (its offsets stay
    uncommitted until this returns). Re-sent records are harmless downstream
    (deterministic ids, idempotent sinks, changelog writes of the same state).
    """
    delay = 0.2
    while True:
        try:
            await producer.send(*groups)
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "publishing %d records failed (%s); retrying in %.1fs",
                sum(len(group) for group in groups),
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)
