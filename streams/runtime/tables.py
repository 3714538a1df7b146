"""Faust tables as the engine sees them: typed mappings whose writes wait for the batch.

The engine reads and writes customer states and partition clocks through plain mappings;
`StagedTable` turns that into one changelog write per key per batch, sent by the runtime
after the batch's outputs (`persist` in streams/runtime/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import orjson

from touchstream.streams.runtime.faust_api import changelog_key, store_dict
from touchstream.streams.runtime.produce import OutRecord

END_KEY = "__end__"


class StagedTable(MutableMapping[str, Any]):
    """A Faust table of raw bytes, seen as a typed mapping whose writes wait for `take()`.

    The loop stages every write of a batch here and takes them at the end of the batch:
    one changelog write per key per batch (as Kafka Streams' record cache does), sent only
    once the batch's outputs and rows are acknowledged, so never a state that is ahead of
    its outputs. Reads and writes go to `table.data` directly, so they do not depend on Faust's
    "current event" (which `take_events` does not set per event, faust-streaming #497).

    A write is encoded at once, so a value read and written back dies with its event: kept
    as objects until the end of the batch, each state's dozen lists and dicts were walked by
    the cyclic GC. A later change to the object is not written unless it is written again,
    exactly as for a value read from the store.
    """

    def __init__(
        self, table: Any, encode: Callable[[Any], bytes], decode: Callable[[bytes], Any]
    ) -> None:  # table: a Faust table (its `data` and `changelog_topic` are used)
        self.table = table
        self.encode = encode
        self.decode = decode
        self.partition = 0  # the partition of the message being handled
        self._staged: dict[str, tuple[bytes | None, int]] = {}  # encoded, partition

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        staged = self._staged.get(key)
        raw = self._store().get(key) if staged is None else staged[0]
        return default if raw is None else self.decode(raw)

    def has(self, key: str) -> bool:
        """Whether a key has a value, without decoding it."""
        staged = self._staged.get(key)
        return self._store().get(key) is not None if staged is None else staged[0] is not None

    def _store(self) -> MutableMapping[str, bytes]:
        return store_dict(self.table)

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged[key] = (self.encode(value), self.partition)

    def __delitem__(self, key: str) -> None:
        """Staged like a write; flushed as a changelog tombstone."""
        self._staged[key] = (None, self.partition)

    def _keys(self) -> set[str]:
        keys = set(self.table.data.keys())
        for key, (raw, _) in self._staged.items():
            if raw is None:
                keys.discard(key)
            else:
                keys.add(key)
        return keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def _key_bytes(self) -> Callable[[str], bytes]:
        """A key's bytes exactly as Faust writes them, so its recovery reads them back.
        Faust's own path costs ~2 µs a key; a direct encoder is used when it gives the same
        bytes for keys with quotes, escapes and non-ASCII letters (JSON for our tables)."""

        def faust(key: str) -> bytes:
            return changelog_key(self.table, key)

        probes = ("c-1", 'a"b\\c/d\n\t', "ключ:1", END_KEY)
        for direct in (orjson.dumps, str.encode):
            if all(direct(probe) == faust(probe) for probe in probes):
                return direct
        return faust

    def take(self, end_marker: bool = True) -> list[list[OutRecord]]:
        """Apply the staged writes; returns their changelog records, to be sent (in order,
        after the outputs they follow) with `send_until_acked(producer, *groups)`.

        `end_marker`: then one tombstone of END_KEY on every partition written, as a batch
        of its own. Tansu answers ListOffsets(latest) with the *base* offset of a
        partition's last record batch + 1 (measured), so Faust's recovery would stop before
        the rest of that batch and restore stale state; a one-record last batch hides
        nothing. Harmless on Apache Kafka (one small record per partition per batch).
        """
        name = self.table.changelog_topic.get_topic_name()
        key_bytes = self._key_bytes()
        records: list[OutRecord] = []
        store = self._store()
        for key, (raw, partition) in self._staged.items():
            if raw is None:
                store.pop(key, None)
            else:
                store[key] = raw
            records.append((name, partition, key_bytes(key), raw))
        self._staged.clear()
        if not end_marker:
            return [records]
        end = key_bytes(END_KEY)
        written = sorted({r[1] for r in records if r[1] is not None})
        return [records, [(name, p, end, None) for p in written]]
