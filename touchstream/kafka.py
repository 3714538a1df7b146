"""Small kafka-python helpers shared by the SDK, the CLI and the tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from touchstream.settings import Settings

BROKER_ADDRESS_FILE = "broker.address"


def bootstrap_for(settings: Settings) -> str:
    """Where to connect. For `embedded`, the address a running `touchstream broker` wrote."""
    if not settings.embedded_broker:
        return ",".join(settings.bootstrap_servers())
    address_file = settings.data_dir / BROKER_ADDRESS_FILE
    if address_file.exists():
        return address_file.read_text().strip()
    raise RuntimeError(
        "broker_url is 'embedded' but no embedded broker is running: start one with "
        "`touchstream broker` (in another terminal), or set TOUCHSTREAM_BROKER_URL="
        "kafka://host:9092"
    )


def write_broker_address(data_dir: Path, bootstrap: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / BROKER_ADDRESS_FILE
    path.write_text(bootstrap + "\n")
    return path


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    configs: Mapping[str, str] | None = None,
    **security: object,
) -> list[str]:
    """Create missing topics, with `configs` (e.g. retention.ms); returns the names that
    were created."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security)
    try:
        existing = set(admin.list_topics())
        wanted = [name for name in dict.fromkeys(names) if name not in existing]
        if wanted:
            topics = [
                NewTopic(name, partitions, 1, topic_configs=dict(configs or {})) for name in wanted
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # a racing creator won
                admin.create_topics(topics)
        return wanted
    finally:
        admin.close()


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expected: int | None = None,
    idle_timeout_ms: int = 3000,
    **security: object,
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Records of a topic from the beginning, as (partition, offset, key, value); no group.

    Stops after `expected` records, or when nothing arrived for `idle_timeout_ms`. End
    offsets are not used: Tansu's ListOffsets can under-report the log end (seen here).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=idle_timeout_ms,
        **security,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        for seen, record in enumerate(consumer, start=1):
            yield record.partition, record.offset, record.key, record.value
            if expected is not None and seen >= expected:
                break
    finally:
        consumer.close()


class GroupProgress:
    """Which partitions of a topic hold records a group has not committed, asked round after
    round (the leader's timers) over the same two connections. Built per round, the clients
    cost a bootstrap, a metadata request and two sockets each time; they are made again
    only after an error. Thread-safe: the timers ask from worker threads."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic: str,
        security: Mapping[str, object] | None = None,
        timeout_ms: int = 10_000,
    ) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.security, self.timeout_ms = dict(security or {}), timeout_ms
        self._clients: tuple[KafkaConsumer, KafkaAdminClient] | None = None
        self._lock = threading.Lock()

    def unprocessed(self) -> set[int]:
        """The partitions holding records the group has not committed: the log end past the
        committed offset. A partition that never had a record, or whose records are all
        handled, is not one. Tansu reports the log end as its last record batch's first
        offset + 1, so a partition partly handled may be missed there; one with nothing
        handled never is, and that is the one the watermark needs to know of (it has no
        touchpoint stored). Raises on broker trouble (the clients are dropped)."""
        with self._lock:
            try:
                consumer, admin = self._connected()
                numbers = consumer.partitions_for_topic(self.topic) or set()
                partitions = [TopicPartition(self.topic, n) for n in sorted(numbers)]
                ends = (
                    consumer.end_offsets(partitions, timeout_ms=self.timeout_ms)
                    if partitions
                    else {}
                )
                done = admin.list_group_offsets(self.group).get(self.group, {})
            except Exception:
                self._close()
                raise
        unhandled = set()
        for tp, end in ends.items():
            commit = done.get(tp)
            if end > max(0, commit.offset if commit is not None else 0):  # -1: none committed
                unhandled.add(tp.partition)
        return unhandled

    def close(self) -> None:
        with self._lock:
            self._close()

    def __enter__(self) -> GroupProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connected(self) -> tuple[KafkaConsumer, KafkaAdminClient]:
        if self._clients is None:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                group_id=None,
                **self.security,
            )
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, **self.security)
            except Exception:
                consumer.close()
                raise
            self._clients = consumer, admin
        return self._clients

    def _close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            for client in clients:
                with contextlib.suppress(Exception):
                    client.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    """Messages of `topic` the group has committed (a worker's progress)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def wait_until_committed(bootstrap: str, group: str, topics: list[str], timeout: float) -> bool:
    """Until the group has committed every record of these topics; False on timeout.

    `topics` in pipeline order (input first, then the outputs its processing writes): each
    is counted only once the ones before it are committed, so records written meanwhile by
    the processing of the earlier topics are waited for too.
    """
    deadline = time.monotonic() + timeout
    for topic in topics:
        wanted = sum(1 for _ in read_topic(bootstrap, topic, idle_timeout_ms=1000))
        while committed(bootstrap, group, topic) < wanted:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)
    return True
