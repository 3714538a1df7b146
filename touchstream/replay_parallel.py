"""A replay split across processes by partition, put back together as one.

Partitions never meet in the engine: each has its own event-time clock and its own
customers. So process i replays the partitions p with p % jobs == i, reading the whole file
but decoding only its own records (a record's partition comes from its `customer_id`,
read first on its own). The parts meet once, when every part has applied its events: for
the end of the replay (the latest event of all of them, where every customer's final
metrics are taken) and for the wow offers, decided over all parts (a team's capacity is
company-wide). Each part then sends its lines with their place in the order one process
writes them (event time, then line), and the parent merges them.

Touchpoints named by identifiers can join customers of any partition, so a file with them
runs in one process (`NeedsOneProcess`), as do `--clickhouse` and `--no-sort-by-time`.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import msgspec

from touchstream.inputs import InputRecord, detect_format, jsonl_lines, read_records
from touchstream.learner import learn_from_events
from touchstream.replay import (
    IdentityOptions,
    NeedsOneProcess,
    Progress,
    ReplayRefused,
    ReplayResult,
    ReplayRun,
    fewer_collections,
)
from touchstream.replay_files import ReplayFiles, json_line, offer_line
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import partition_for
from touchstream.streams.offers import OVER_CAPACITY, Offer, OfferKey, decide, is_offer
from touchstream.streams.rules import Rules

REPORT_EVERY = 20_000  # records between two progress messages of a part


@dataclass(frozen=True)
class ReplayJob:
    """What every part needs to replay its share of a file (pickled to it)."""

    file: Path
    fmt: str | None
    mapping: Mapping[str, str]
    rules: Rules
    model_json: str  # RiskModel.to_json: the compiled model does not pickle
    partitions: int
    source: str
    as_of: datetime | None
    max_bytes: int
    earliest: datetime | None
    identity: IdentityOptions
    jobs: int
    # one time for every part's dead letters, as one process has
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class _Key(msgspec.Struct):
    customer_id: Any = None


_KEY = msgspec.json.Decoder(_Key)


def owner(line: int, payload: Any, partitions: int, jobs: int, memo: dict[str, int]) -> int:
    """Which part replays a record (its line and payload): the one of its customer's
    partition; a record without a readable `customer_id` (a dead letter to be) goes by its
    line."""
    if isinstance(payload, bytes):
        try:  # ~0.3 us: msgspec skips the other fields faster than a search of the bytes
            customer = _KEY.decode(payload).customer_id
        except msgspec.DecodeError:
            customer = None
    else:
        customer = payload.get("customer_id")
    if not isinstance(customer, str) or not customer:
        return line % jobs
    partition = memo.get(customer)
    if partition is None:
        partition = memo[customer] = partition_for(customer, partitions)
    return partition % jobs


def may_name_by_identifiers(file: Path, fmt: str | None, mapping: Mapping[str, str]) -> bool:
    """Whether the file can hold a touchpoint named by identifiers (then one process)."""
    if (fmt or detect_format(file)) == "csv":
        with file.open(encoding="utf-8") as text:
            header = text.readline()
        return "identifiers" in header or any("identifiers" in p for p in mapping.values())
    if file.stat().st_size == 0:
        return False
    with file.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b'"identifiers"') != -1


def one_process_because(job: ReplayJob, *, clickhouse: bool, sort_by_time: bool) -> str:
    """Why the replay of `job` runs in one process ("" when it can run in `job.jobs`)."""
    if job.jobs < 2:
        return "one job"
    if clickhouse:
        return "--clickhouse keeps every row of the replay in one process"
    if not sort_by_time:
        return "--no-sort-by-time keeps the file's order, which only one process sees whole"
    if may_name_by_identifiers(job.file, job.fmt, job.mapping):
        return "the file names customers by identifiers, which can join any two partitions"
    return ""


def learn_before(job: ReplayJob, as_of: datetime, progress: Progress | None = None) -> RiskModel:
    """The risk model a replay in one process learns before `as_of`: from the file's valid
    events, in event time (the yearly values are sums, and the order of a float sum shows in
    the model's version). `progress` sees the file read."""
    run = ReplayRun(
        job.rules, RiskModel(), job.partitions, job.source, job.identity, False, progress
    )
    records = read_records(job.file, job.fmt, job.mapping)
    events = run.read(records, job.max_bytes, job.earliest, sort_by_time=True)
    return learn_from_events((event for _, event in events), as_of.timestamp(), job.rules)


def replay_file(job: ReplayJob, progress: Progress | None = None) -> ReplayFiles:
    """The replay of `job.file` in `job.jobs` processes: the same files as `replay` in one.
    Raises NeedsOneProcess when a part meets a touchpoint named by identifiers."""
    context = multiprocessing.get_context("spawn")  # no inherited threads or locks
    pipes: list[Connection] = []
    processes = []
    for index in range(job.jobs):
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_part, args=(job, index, theirs), name=f"replay-{index}", daemon=True
        )
        process.start()
        theirs.close()
        pipes.append(ours)
        processes.append(process)
    try:
        files = _gather(job, pipes, progress)
    except BaseException:  # a part failed, or Ctrl-C: the others stop now
        for process in processes:
            process.kill()
        raise
    finally:
        for process in processes:
            process.join(timeout=5)
    return files


def _gather(job: ReplayJob, pipes: list[Connection], progress: Progress | None) -> ReplayFiles:
    read = [0] * len(pipes)
    ran: list[tuple[int, int] | None] = [None] * len(pipes)  # (applied, of) per part
    applied: dict[int, tuple[float | None, list[OfferKey]]] = {}
    parts: dict[int, _Part] = {}
    index_of = {id(pipe): index for index, pipe in enumerate(pipes)}
    waiting = list(pipes)
    while waiting:
        for ready in wait(waiting):
            assert isinstance(ready, Connection)
            index = index_of[id(ready)]
            try:
                kind, value = ready.recv()
            except EOFError:
                raise RuntimeError(f"replay part {index} ended without a result") from None
            if kind == "error":
                raise RuntimeError(f"replay part {index} failed:\n{value}")
            if kind == "one process":
                raise NeedsOneProcess(value)
            if kind == "refused":
                raise ReplayRefused(value)
            if kind == "read":
                read[index] = value
                if progress:
                    progress("read", min(read), None)
            elif kind == "run":
                ran[index] = value
                counts = [r for r in ran if r is not None]
                if progress and len(counts) == len(ran):
                    progress("run", sum(d for d, _ in counts), sum(t for _, t in counts))
            elif kind == "applied":
                applied[index] = value
                if len(applied) == len(pipes):  # every part has applied its events
                    _meet(job, pipes, applied)
            elif kind == "done":
                parts[index] = value
                waiting.remove(ready)
    return _merge([parts[i] for i in range(len(pipes))])


def _meet(
    job: ReplayJob, pipes: list[Connection], applied: dict[int, tuple[float | None, list[OfferKey]]]
) -> None:
    """Where the parts meet: the end of the replay (the latest event of all), and the wow
    offers decided over all of them (a team's capacity is company-wide)."""
    marks = [mark for mark, _ in applied.values() if mark is not None]
    end = job.as_of.timestamp() if job.as_of else max(marks, default=0.0)
    pending = ((key, index) for index, (_, keys) in applied.items() for key in keys)
    decisions: dict[int, dict[str, tuple[str, int, int]]] = {i: {} for i in applied}
    for (key, index), decision, rank, capacity in decide(
        ((key, (key, index)) for key, index in pending), job.rules.wow
    ):
        decisions[index][key.signal_id] = (decision, rank, capacity)
    for index, pipe in enumerate(pipes):
        pipe.send((end, decisions[index]))


@dataclass
class _Part:
    """A part's lines, each with its place in the order of a replay in one process."""

    signals: list[tuple[tuple[float, ...], bytes]]  # replay order (event time, line, ...)
    dead_letters: list[tuple[tuple[float, ...], bytes]]
    offers: list[tuple[tuple[int, str, int], bytes]]  # day, team, rank
    customers: list[tuple[str, bytes]]  # by customer id
    applied: int
    duplicates: int
    late: int
    kinds: Counter[str]
    over_capacity: int


def _merge(parts: list[_Part]) -> ReplayFiles:
    def merged(name: str) -> list[bytes]:
        return [line for _, line in sorted(item for p in parts for item in getattr(p, name))]

    return ReplayFiles(
        signals=merged("signals"),
        customers=merged("customers"),
        dead_letters=merged("dead_letters"),
        offers=merged("offers"),
        applied=sum(p.applied for p in parts),
        duplicates=sum(p.duplicates for p in parts),
        late=sum(p.late for p in parts),
        kinds=sum((p.kinds for p in parts), Counter()),
        over_capacity=sum(p.over_capacity for p in parts),
    )


def _part(job: ReplayJob, index: int, pipe: Connection) -> None:
    """One process's share: its partitions' records, read, applied, finished, as lines."""
    try:
        with fewer_collections() as collections:
            reports = _Reports(pipe)
            model = RiskModel.from_json(job.model_json)
            run = ReplayRun(
                job.rules,
                model,
                job.partitions,
                job.source,
                job.identity,
                keep_rows=False,
                progress=reports,
                resolve=False,
                received_at=job.received_at,
            )
            records = _own(job, index, reports)
            events = run.read(records, job.max_bytes, job.earliest, sort_by_time=True)
            collections.settle()
            run.apply(events, job.as_of)
            result = run.result
            keys = [OfferKey.of(s) for s in result.signals if is_offer(s)]
            reports.send("applied", (max(run.watermarks.values(), default=None), keys))
            end, decisions = pipe.recv()
            run.finish(end)
            pipe.send(("done", _lines(result, decisions)))
    except NeedsOneProcess as why:
        _tell(pipe, ("one process", str(why)))
    except ReplayRefused as why:
        _tell(pipe, ("refused", str(why)))
    except KeyboardInterrupt:
        pass  # Ctrl-C reached the whole process group: the parent stops too
    except BaseException:
        _tell(pipe, ("error", traceback.format_exc()))
    pipe.close()
    # everything is sent: skip freeing a million objects one by one at exit (~0.5 s)
    os._exit(0)


def _tell(pipe: Connection, message: tuple[str, Any]) -> None:
    """The last message of a part that failed; the parent may be gone already."""
    with suppress(OSError):
        pipe.send(message)


def _lines(result: ReplayResult, decisions: dict[str, tuple[str, int, int]]) -> _Part:
    signals, offers, kinds = [], [], Counter[str]()
    for order, signal in zip(result.signal_order, result.signals, strict=True):
        if is_offer(signal):
            decision, rank, capacity = decisions[signal.signal_id]
            offer = Offer(signal, decision, rank, capacity)
            key = OfferKey.of(signal)
            offers.append(((key.day, key.team, rank), offer_line(offer)))
            if decision == OVER_CAPACITY:
                continue
        signals.append((order, json_line(signal)))
        kinds[signal.kind.value] += 1
    return _Part(
        signals=signals,
        dead_letters=[
            (order, json_line(d))
            for order, d in zip(result.dead_letter_order, result.dead_letters, strict=True)
        ],
        offers=offers,
        customers=[(m.customer_id, json_line(m)) for m in result.final],
        applied=result.applied,
        duplicates=result.duplicates,
        late=result.late,
        kinds=kinds,
        over_capacity=sum(1 for decision, _, _ in decisions.values() if decision == OVER_CAPACITY),
    )


def _own(job: ReplayJob, index: int, reports: _Reports) -> Iterator[InputRecord]:
    """This part's records. Every part reads every line, and half or more are another's:
    a JSONL line becomes a record only when it is ours."""
    if (job.fmt or detect_format(job.file)) == "jsonl":
        lines: Iterator[tuple[int, Any]] = jsonl_lines(job.file)
    else:
        records = read_records(job.file, job.fmt, job.mapping)
        lines = ((record.line, record.payload) for record in records)
    memo: dict[str, int] = {}
    line = 0
    for line, payload in lines:
        if line % REPORT_EVERY == 0:
            reports.send("read", line)
        if owner(line, payload, job.partitions, job.jobs, memo) == index:
            yield InputRecord(line, payload)
    reports.send("read", line)


class _Reports:
    """Progress to the parent: the lines this part has read (it reads them all), then the
    events it has applied out of its own."""

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe

    def send(self, kind: str, value: Any) -> None:
        self.pipe.send((kind, value))

    def __call__(self, stage: str, completed: int, total: int | None) -> None:
        if stage == "run" and (completed % REPORT_EVERY == 0 or completed == total):
            self.send("run", (completed, total))
