"""Bulk delivery of our topics' records, past Faust's per-message machinery.

Faust hands every record through its drain loop (a task per message to wait on it), the
conductor (flow-control checks, an Event per message, a channel queue), the stream (a
`sleep(0)`, processors, an ack per event). Profiled, that costs more than our whole
per-event work. For the topics touchstream reads itself (acks off, offsets committed by
`CommittedBatches`), the consumer's drain loop instead appends the record to a list per topic,
and a batch loop takes whole lists. Faust still owns the consumer group, assignment, table
recovery and flow control; every other topic (table changelogs) takes Faust's own path.

What a record may be processed against is decided elsewhere: batches wait for Faust's flow
control (no work while a rebalance or a table recovery is running), and `Cursors` admit only
the next offset of a partition this worker owns.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import faust
from faust.types import TP

from touchstream.streams.runtime.faust_api import (
    FEEDS_ATTRIBUTE,
    drain_into_feeds,
    replace_drain_loop,
)

log = logging.getLogger("touchstream.feed")


class Feed:
    """Records of one topic, as the consumer fetched them, waiting for the batch loop."""

    def __init__(self, app: faust.App, topic: str, high_water: int) -> None:
        self.app = app
        self.topic = topic
        self.high_water = high_water  # above this, fetching of the topic's partitions pauses
        self.records: list[Any] = []
        self.paused: set[Any] = set()
        self.arrived = asyncio.Event()

    def extend(self, fetches: dict[Any, list[Any]]) -> None:
        """A fetch: aiokafka's records (`topic`, `partition`, `offset`, `key`, `value`...)
        by partition (aiokafka's TopicPartition). They are put in turn, one of each partition,
        as Faust's scheduler hands them out: a batch then holds every partition's next
        records rather than one partition's thousands, so event time moves on together on
        all of them. The wow offers' and promise windows' watermark (sinks/promise_alerts.py:
        the least of the partitions' latest touchpoints) then moves on as the batches do;
        one partition written weeks ahead of the others once let days be decided before
        their offers had arrived, when a partition without touchpoints did not count."""
        if len(fetches) == 1:
            self.records.extend(*fetches.values())
        else:
            turns = itertools.zip_longest(*fetches.values())
            self.records.extend([r for turn in turns for r in turn if r is not None])
        if len(self.records) >= self.high_water:
            for fetched in fetches:
                tp = TP(fetched.topic, fetched.partition)  # Faust's own type, which it asserts
                if tp not in self.paused:
                    self.paused.add(tp)
                    self.app.consumer.on_buffer_full(tp)  # Faust's own pause (kept in recovery)
        self.arrived.set()

    async def take(self, size: int, within: float) -> list[Any]:
        """Up to `size` records: as soon as there are `size`, or `within` seconds after the
        first one arrived."""
        while not self.records:
            self.arrived.clear()
            await self.arrived.wait()
        if len(self.records) < size:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while len(self.records) < size and (left := deadline - loop.time()) > 0:
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), left)
                except TimeoutError:
                    break
        taken, self.records = self.records[:size], self.records[size:]
        if self.paused and len(self.records) < self.high_water // 2:
            for tp in self.paused:
                self.app.consumer.on_buffer_drop(tp)
            self.paused.clear()
        return taken


def feed_for(app: faust.App, topic: faust.TopicT, high_water: int) -> Feed:
    """Subscribe to `topic` and route its records to a `Feed` instead of Faust's streams."""
    feeds: dict[str, Feed] | None = getattr(app, FEEDS_ATTRIBUTE, None)
    if feeds is None:
        feeds = {}
        setattr(app, FEEDS_ATTRIBUTE, feeds)
        replace_drain_loop(app, drain_into_feeds)
    name = topic.get_topic_name()
    feeds[name] = Feed(app, name, high_water)
    app.topics.add(topic)  # the conductor subscribes to what it holds
    return feeds[name]
