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
import logging
from types import MethodType
from typing import Any

import faust
from faust.types import TP

log = logging.getLogger("touchstream.feed")

FEEDS_ATTRIBUTE = "_touchstream_feeds"


class Feed:
    """Records of one topic, as the consumer fetched them, waiting for the batch loop."""

    def __init__(self, app: faust.App, topic: str, high_water: int) -> None:
        self.app = app
        self.topic = topic
        self.high_water = high_water  # above this, fetching of the topic's partitions pauses
        self.records: list[Any] = []
        self.paused: set[Any] = set()
        self.arrived = asyncio.Event()

    def put(self, message: Any) -> None:
        self.records.append(message)
        tp = TP(message.topic, message.partition)  # Faust's own type, which it asserts
        if len(self.records) >= self.high_water and tp not in self.paused:
            self.paused.add(tp)
            self.app.consumer.on_buffer_full(tp)  # Faust's own pause (kept during recovery)
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
        consumer = app.consumer
        consumer._drain_messages = MethodType(_drain_messages, consumer)  # type: ignore[method-assign]
    name = topic.get_topic_name()
    feeds[name] = Feed(app, name, high_water)
    app.topics.add(topic)  # the conductor subscribes to what it holds
    return feeds[name]


def set_fetch_max_wait(app: faust.App, milliseconds: int) -> None:
    """faust-streaming 0.15 hard-codes aiokafka's `fetch_max_wait_ms=1500`. A fetch that
    finds nothing new may wait that long before the next one (the embedded broker answers
    at the deadline), which is event-to-signal latency; ours is a setting."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    create = thread._create_worker_consumer

    def create_with_our_wait(*args: Any, **kwargs: Any) -> Any:
        consumer = create(*args, **kwargs)
        consumer._fetch_max_wait_ms = milliseconds  # read when its fetcher starts
        return consumer

    thread._create_worker_consumer = create_with_our_wait


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    """faust-streaming 0.15's `Consumer._drain_messages`, with records of our topics put on
    their feed (no read-offset filter either: `Cursors` order them by offset)."""
    feeds: dict[str, Feed] = getattr(self.app, FEEDS_ATTRIBUTE)
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    acks_enabled_for = self.app.topics.acks_enabled_for
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            records = getmany(timeout=1.0)
            await self.sleep(0)
            if self.should_stop:
                continue
            async for tp, message in records:
                since_yield += 1
                if since_yield > 1000:
                    await asyncio.sleep(0)
                    since_yield = 0
                feed = feeds.get(tp.topic)
                if feed is not None:
                    feed.put(message)
                    continue
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is None or offset >= r_offset:
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    await self.wait_first(callback(message), self.suspend_flow.wait())
                    set_read_offset(tp, offset)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            self.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            self.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        self.log.exception("Drain messages raised: %r", exc)
        raise
