"""Contract tests: the private Faust and aiokafka API that streams/runtime/faust_api.py uses is
still there, with the shape we rely on. An upgrade that changes one fails here, by name."""

from __future__ import annotations

import hashlib
import inspect

import aiokafka
import faust
import pytest
from faust.transport.consumer import ThreadDelegateConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from touchstream.streams.runtime import faust_api


@pytest.mark.parametrize(
    ("owner", "name"), faust_api.PRIVATE_NAMES, ids=lambda x: getattr(x, "__name__", x)
)
def test_each_private_method_we_use_exists(owner: type, name: str) -> None:
    assert callable(getattr(owner, name, None)), f"{owner.__name__}.{name} is gone"


def test_the_drain_loop_we_copied_is_still_fausts() -> None:
    """drain_into_feeds is a copy of Consumer._drain_messages with our feeds put in: when Faust
    changes its loop, re-read the new one, port the change, then record its hash."""
    source = inspect.getsource(faust_aiokafka.Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == faust_api.DRAIN_LOOP_SHA256
    ours = inspect.signature(faust_api.drain_into_feeds)
    assert list(ours.parameters) == ["self", "fetcher"]


def test_the_getmany_we_wrote_into_the_drain_loop_is_still_fausts() -> None:
    """drain_into_feeds also holds Consumer.getmany, written in (whole fetches onto the
    feeds): when Faust changes it, port the change, then record its hash."""
    source = inspect.getsource(faust_aiokafka.Consumer.getmany)
    assert hashlib.sha256(source.encode()).hexdigest() == faust_api.GETMANY_SHA256


def test_signatures_we_call() -> None:
    commit = inspect.signature(faust_aiokafka.Consumer._commit_offsets)
    assert list(commit.parameters)[:2] == ["self", "offsets"]
    assert list(inspect.signature(faust_aiokafka.Producer._ensure_producer).parameters) == ["self"]
    ensure = inspect.signature(faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer)
    assert list(ensure.parameters) == ["self"]
    call = inspect.signature(faust_aiokafka.AIOKafkaConsumerThread.call_thread)
    assert list(call.parameters)[:2] == ["self", "fun"]
    assert issubclass(faust_aiokafka.Consumer, ThreadDelegateConsumer)
    assert "_thread" in inspect.get_annotations(ThreadDelegateConsumer)


def test_aiokafka_reads_the_fetch_wait_we_set_when_it_starts() -> None:
    attribute = faust_api.FETCH_MAX_WAIT_ATTRIBUTE
    assert f"self.{attribute} = fetch_max_wait_ms" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.__init__
    )
    assert f"fetch_max_wait_ms=self.{attribute}" in inspect.getsource(
        aiokafka.AIOKafkaConsumer.start
    )


def test_a_memory_table_keeps_its_values_in_a_dict_and_keys_as_prepared() -> None:
    app = faust.App("contract-test", store="memory://", key_serializer="raw")
    table = app.Table("t", key_type=str, value_type=bytes)
    store = faust_api.store_dict(table)
    assert type(store) is dict
    store["k"] = b"v"
    assert table.data["k"] == b"v"  # the same values Faust's own reads see
    assert faust_api.changelog_key(table, 'a"b') == b'"a\\"b"'  # JSON, as Faust writes it
