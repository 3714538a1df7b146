"""Every use of Faust's and aiokafka's private API, in one place.

The runtime goes past Faust where Faust's per-message machinery or its fixed settings cost
more than our whole per-event work (see feed.py, batches.py, produce.py, tables.py). Each
private name used is listed in `PRIVATE_NAMES`, and tests/streams/test_faust_api.py checks each
against the installed versions (and our copy of the drain loop against Faust's own source),
so an upgrade that changes one fails a test that names it instead of a worker in production.
That is also why pyproject.toml pins faust-streaming to 0.15.3 and aiokafka to 0.14.x:
move a pin only with those tests green.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from types import MethodType
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

# (owner, method): what this module calls or replaces. Instance attributes used besides:
# the consumer's `_thread` (ThreadDelegateConsumer), aiokafka's `_fetch_max_wait_ms`, and a
# memory store's `data` dict.
PRIVATE_NAMES: tuple[tuple[Any, str], ...] = (
    (faust_aiokafka.Consumer, "_drain_messages"),
    (faust_aiokafka.Consumer, "getmany"),
    (faust_aiokafka.Consumer, "_wait_next_records"),
    (faust_aiokafka.Consumer, "_to_message"),
    (faust_aiokafka.Consumer, "_commit_offsets"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer"),
    (faust_aiokafka.Producer, "_ensure_producer"),
)
DRAIN_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"  # 0.15.3
GETMANY_SHA256 = "4b168d84882a70d6e3e2f9804430a63b92f8fd117d3187cbb4aeb54305bda34e"  # 0.15.3
FETCH_MAX_WAIT_ATTRIBUTE = "_fetch_max_wait_ms"  # aiokafka.AIOKafkaConsumer, read by its fetcher
FEEDS_ATTRIBUTE = "_touchstream_feeds"  # ours, on the app: topic name -> feed.Feed


def replace_drain_loop(app: faust.App, drain: Callable[..., Any]) -> None:
    """Run `drain(consumer, fetcher)` as the consumer's drain loop (feed.py)."""
    consumer = app.consumer
    consumer._drain_messages = MethodType(drain, consumer)  # type: ignore[attr-defined]


def set_fetch_max_wait(app: faust.App, milliseconds: int) -> None:
    """faust-streaming 0.15 hard-codes aiokafka's `fetch_max_wait_ms=1500`. A fetch that
    finds nothing new may wait that long before the next one (the embedded broker answers
    at the deadline), which is event-to-signal latency; ours is a setting."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    create = thread._create_worker_consumer

    def create_with_our_wait(*args: Any, **kwargs: Any) -> Any:
        consumer = create(*args, **kwargs)
        setattr(consumer, FETCH_MAX_WAIT_ATTRIBUTE, milliseconds)  # read when it starts
        return consumer

    thread._create_worker_consumer = create_with_our_wait


async def commit_offsets(app: faust.App, offsets: dict[Any, int]) -> bool:
    """Commit exactly these offsets (Faust's public commit commits what *it* acked)."""
    return bool(await app.consumer._commit_offsets(offsets))  # type: ignore[attr-defined]


async def committed_offset(app: faust.App, tp: Any) -> int | None:
    """The group's committed offset of one partition, asked of the broker."""
    thread = app.consumer._thread  # type: ignore[attr-defined]
    committed = await thread.call_thread(thread._ensure_consumer().committed, tp)
    return None if committed is None else int(committed)


def kafka_producer(app: faust.App) -> Any:
    """The aiokafka producer under Faust's, for whole record batches (produce.py)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


def store_dict(table: Any) -> MutableMapping[str, bytes]:
    """A table's stored values: a memory store's own dict (its mapping front costs two
    Python calls a read), or the store itself."""
    store = table.data
    return getattr(store, "data", store)  # type: ignore[no-any-return]


def changelog_key(table: Any, key: str) -> bytes:
    """A key's bytes exactly as Faust writes them to the table's changelog."""
    topic, serializer = table.changelog_topic, table.key_serializer
    return topic.prepare_key(key, serializer, None, {})[0]  # type: ignore[no-any-return]


async def drain_into_feeds(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    """faust-streaming 0.15.3's `Consumer._drain_messages` with its `getmany` written in, where
    the records of topics that have a feed (`FEEDS_ATTRIBUTE` of the app) go onto it a whole
    fetch at a time, as aiokafka fetched them (its partitions in turn, feed.py): Faust's
    per-record work (a `Message`, the partition's high-water mark read through the consumer
    thread, an async generator step) showed as ~3 µs a record in a profile. No read-offset
    filter either: the batches' `Cursors` order them by offset. Every other topic (table
    changelogs) takes Faust's own path record by record. Both loops are checked against
    Faust's source by a test."""
    feeds = getattr(self.app, FEEDS_ATTRIBUTE)
    callback = self.callback
    to_message = self._to_message
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    acks_enabled_for = self.app.topics.acks_enabled_for
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            await self.sleep(0)
            if self.should_stop:
                continue
            # Faust's getmany from here
            records, active_partitions = await self._wait_next_records(1.0)
            generation_id = self.app.consumer_generation_id
            if records is None or self.should_stop:
                continue
            if not self.flow_active:
                self.log.dev("getmany called while flow not active. Seek back to committed.")
                try:
                    await self.perform_seek()
                except Exception as ex:
                    self.log.warning(f"exception performing seek when flow not active {ex}")
                continue

            def wanted(tp: Any, active: Any = active_partitions) -> bool:
                return active is None or tp in active or tp in self._buffered_partitions

            others: dict[Any, list[Any]] = {}
            fed: dict[Any, dict[Any, list[Any]]] = {}  # feed -> its partitions' records
            for tp, fetched in records.items():
                feed = feeds.get(tp.topic)
                if feed is None:
                    others[tp] = fetched
                elif wanted(tp):
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    fed.setdefault(feed, {})[tp] = fetched
            for feed, fetches in fed.items():
                feed.extend(fetches)
            for tp, record in self.scheduler.iterate(others):
                if not self.flow_active:
                    break
                if self.app.consumer_generation_id != generation_id:
                    self.log.dev("Generation id changed. Cancelling getmany.")
                    break
                if not wanted(tp):
                    continue
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                message = to_message(tp, record)
                # Faust's drain loop from here
                since_yield += 1
                if since_yield > 1000:
                    await asyncio.sleep(0)
                    since_yield = 0
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
