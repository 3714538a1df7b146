"""Memory of the worker's state side for many customers: `python -m bench.state_memory`.

One event per customer through the worker's own handling (validation, engine, the staged
table and its encoding), batch by batch as the worker takes them, with no broker and no
ClickHouse, so the number is what the customer state itself costs a worker: the table's
encoded values, the engine's indexes and the objects around them. The pipeline's peak RSS
(bench/harness.py) adds Faust, aiokafka and, with the embedded engine, chDB.
"""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import track

console = Console(stderr=True)


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Changelog:
    """The two things StagedTable asks of a Faust changelog topic."""

    def get_topic_name(self) -> str:
        return "changelog"

    def prepare_key(self, key: str, *args: Any) -> tuple[bytes, None]:
        return key.encode(), None


EMIT = "TOUCHSTREAM_BENCH_EMIT"


def emit(customers: int, path: Path) -> None:
    """The first event of every customer, pickled to `path`."""
    from touchstream.generator import generate

    _, events = generate(customers=customers, months=0.5, seed=5)
    first: dict[str, bytes] = {}
    for event in events:
        first.setdefault(event["customer_id"], orjson.dumps(event))
    path.write_bytes(pickle.dumps(list(first.items())))


def main(
    customers: int = typer.Option(1_000_000, help="Customers, one event each."),
    batch: int = typer.Option(5000, help="Events per batch (the worker's default)."),
) -> None:
    """Peak RSS of the state of CUSTOMERS customers in one worker process."""
    if EMIT in os.environ:
        emit(customers, Path(os.environ[EMIT]))
        return
    from touchstream.settings import Settings
    from touchstream.streams.bgnbd import BGNBDParams
    from touchstream.streams.customer_state import CustomerState
    from touchstream.streams.engine import Engine, partition_for
    from touchstream.streams.records import process_record
    from touchstream.streams.rules import Rules
    from touchstream.streams.runtime.tables import StagedTable
    from touchstream.worker import tune_gc

    with (
        console.status(f"generating events for {customers:,} customers..."),
        tempfile.TemporaryDirectory() as tmp,
    ):
        # in a child process, so its garbage does not pad this process's heap
        path = Path(tmp) / "records"
        subprocess.run(
            [sys.executable, "-m", "bench.state_memory", "--customers", str(customers)],
            env={**os.environ, EMIT: str(path)},
            check=True,
        )
        records: list[tuple[str, bytes]] = pickle.loads(path.read_bytes())
    gc.collect()
    table = SimpleNamespace(data={}, changelog_topic=_Changelog(), key_serializer="raw")
    clocks = SimpleNamespace(data={}, changelog_topic=_Changelog(), key_serializer="raw")
    states = StagedTable(table, CustomerState.encode, CustomerState.decode)
    watermarks = StagedTable(clocks, orjson.dumps, float)
    engine = Engine(Rules(), BGNBDParams(), states, watermarks, 4)
    limits = Settings().input_limits
    tune_gc()
    before = rss_mib()
    started = time.perf_counter()
    for offset, (customer, value) in enumerate(track(records, "handling", console=console)):
        partition = partition_for(customer, 4)
        states.partition = watermarks.partition = partition
        process_record(engine, limits, customer.encode(), value, "in", partition, offset)
        if offset % batch == batch - 1:
            states.take()
            watermarks.take()
    states.take()
    seconds = time.perf_counter() - started
    handled = len(records)
    gc.collect()
    after = rss_mib()  # the input records are still held, as they were for `before`
    stored = len(table.data)
    values = sum(len(v) for v in table.data.values()) / max(1, stored)
    print(f"| customers in state | {stored:,} |")
    print(f"| RSS before the first event / after the last (MiB) | {before:,.0f} / {after:,.0f} |")
    print(f"| RSS per customer, all included (bytes) | {(after - before) * 2**20 / stored:,.0f} |")
    print(f"| encoded state per customer (bytes) | {values:,.0f} |")
    print(f"| handled (events/s, one event per customer) | {handled / seconds:,.0f} |")


if __name__ == "__main__":
    typer.run(main)
