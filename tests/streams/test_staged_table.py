"""StagedTable: a batch's state writes wait for `take()`, one changelog record per key."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
import pytest

from touchstream.streams.customer_state import CustomerState
from touchstream.streams.runtime.tables import END_KEY, StagedTable


class Changelog:
    """The two things StagedTable asks of a Faust changelog topic."""

    def get_topic_name(self) -> str:
        return "changelog"

    def prepare_key(self, key: str, *args: Any) -> tuple[bytes, None]:
        return key.encode(), None


def counted(key: str, events: int) -> CustomerState:
    state = CustomerState(key)
    state.event_count = events
    return state


def staged(stored: dict[str, bytes] | None = None) -> tuple[StagedTable, dict[str, bytes]]:
    data = dict(stored or {})
    table = SimpleNamespace(data=data, changelog_topic=Changelog(), key_serializer="raw")
    return StagedTable(table, CustomerState.encode, CustomerState.decode), data


def test_writes_reach_the_store_and_the_changelog_only_at_take() -> None:
    states, store = staged({"old": counted("old", 3).encode()})
    states.partition = 2
    states["a"] = counted("a", 1)
    states["a"] = counted("a", 2)  # the same key twice in one batch
    del states["old"]
    assert set(store) == {"old"}  # nothing applied yet
    assert states["a"].event_count == 2 and states.get("old") is None
    assert set(states) == {"a"} and len(states) == 1

    records, ends = states.take()
    assert [(r[1], r[2]) for r in records] == [(2, b"a"), (2, b"old")]  # one record per key
    assert CustomerState.decode(records[0][3]).event_count == 2
    assert records[1][3] is None  # a tombstone
    assert ends == [("changelog", 2, END_KEY.encode(), None)]
    assert set(store) == {"a"} and CustomerState.decode(store["a"]).event_count == 2
    assert states.take(end_marker=False) == [[]]  # nothing staged any more


def test_a_write_is_a_copy_later_changes_need_another_write() -> None:
    """Encoded when written, as a value read from the store is decoded when read: both
    paths behave the same, and the batch keeps bytes, not objects."""
    states, _ = staged()
    state = counted("a", 1)
    states["a"] = state
    state.event_count = 5
    assert states["a"].event_count == 1
    assert states["a"] is not states["a"]
    states["a"] = state
    assert states["a"].event_count == 5


KEYS = ("c7-000001", "shop:42/a@b.c", 'odd "quoted" \\ key', "ключ")


@pytest.mark.parametrize("serializer", ["json", "raw"])
def test_changelog_keys_are_the_bytes_faust_itself_writes(serializer: str) -> None:
    """Recovery reads the changelog's keys back with Faust's codec: the fast encoder must
    give exactly its bytes (JSON for the worker's tables)."""
    app = faust.App(  # as the worker builds its tables (touchstream/app.py)
        "staged-keys", broker="kafka://127.0.0.1:1", store="memory://", key_serializer="raw"
    )
    table = app.Table("state", key_type=str, value_type=bytes, partitions=4)
    table.key_serializer = serializer  # the worker's tables get JSON
    states = StagedTable(table, CustomerState.encode, CustomerState.decode)
    for key in KEYS:
        states[key] = CustomerState(key)
    records, ends = states.take()
    topic = table.changelog_topic
    faust_bytes = [topic.prepare_key(k, serializer, None, {})[0] for k in (*KEYS, END_KEY)]
    assert [r[2] for r in records] + [e[2] for e in ends] == faust_bytes
    assert faust_bytes[0] == (b'"c7-000001"' if serializer == "json" else b"c7-000001")
