"""The benchmark: the full pipeline and a bare-aiokafka baseline, measured in one run.

    python -m bench.harness [--events N] [--customers C] [--latency-rate R] [--no-scaling]

Everything runs on the embedded broker and chDB of this machine. Absolute numbers drift on
shared machines, so the pipeline is reported as a ratio of a baseline measured minutes
earlier on the same topic: a bare aiokafka loop that parses every record with orjson and
updates a per-customer dict (the ceiling for a Python consumer).

- throughput: a worker process (`touchstream worker`) on a topic preloaded with N events;
  done when the group's committed offsets cover all N, i.e. every event's state is flushed,
  its outputs are on the broker and its row is in ClickHouse. The sinks of the output
  topics (metrics, signals) are timed until they are drained too.
- latency: a fresh worker, events offered at a fixed rate below saturation; for every
  signal raised by an event, signal record timestamp minus the event's send time.
- memory: the worker's peak RSS, and the bytes of customer state in the changelog.
- scaling: two workers in one group on a copy of the topic.
- peer: Quix Streams' per-key stateful aggregate (RocksDB state with its changelog) on the
  same topic, in a virtualenv of its own (bench/peer_quix.py), steady from 10 % to 100 % of
  the events processed; the pipeline is also reported as a ratio of it.
- identity: one worker on the same events named by two identifiers each (an e-mail and a
  phone pseudonym) instead of customer_id, published to the identify topic: the resolver
  re-keys every event through the touchpoints topic. Reported as a ratio of the 1-worker
  run, both from their first commit to their last: the resolver runs ahead of the keyed
  stage and finishes early, so a "steady" window of the keyed stage alone would leave part
  of its work out and flatter the ratio (0.89x against 0.83x over the whole run, 1M events).

Prints a markdown table and writes JSON to bench/results/.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka import KafkaAdminClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from bench.compare import cpu_us_per_event, machine_busy
from touchstream.broker import EmbeddedBroker
from touchstream.generator import generate
from touchstream.kafka import ensure_topics, read_topic
from touchstream.launcher import Worker

RESULTS = Path(__file__).parent / "results"
# the peer's own virtualenv (`make bench` makes it from bench/peer-requirements.txt)
PEER_PYTHON = Path(
    os.environ.get(
        "TOUCHSTREAM_BENCH_PEER_PYTHON", Path(__file__).parents[1] / ".venv-peer/bin/python"
    )
)
EVENTS_PER_CUSTOMER_MONTH = 7.0  # what the generator's default mix produces
console = Console(stderr=True)


@dataclass
class Run:
    """One timed pipeline run."""

    workers: int
    events: int
    seconds: float
    events_per_second: float
    steady_events_per_second: float  # from 10 % to 100 % committed (no start-up)
    sinks_drained_seconds: float
    peak_rss_mib: list[float] = field(default_factory=list)
    # CPU the workers used (user + system, all threads) until their input was committed,
    # and how busy the whole machine was meanwhile (every core, the broker included)
    cpu_seconds: list[float] = field(default_factory=list)
    machine_busy: float = float("nan")
    # from the first commit to the last: every stage's work timed whole, without start-up
    processing_events_per_second: float = float("nan")


# -- input ------------------------------------------------------------------------------------
def make_events(events: int, customers: int, seed: int) -> list[tuple[bytes, bytes]]:
    months = max(0.5, events / customers / EVENTS_PER_CUSTOMER_MONTH * 1.1)
    with console.status(f"generating {events:,} events for {customers:,} customers..."):
        _, generated = generate(customers=customers, months=months, seed=seed)
    return [(e["customer_id"].encode(), orjson.dumps(e)) for e in generated[:events]]


def with_identifiers(records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The same events named by two identifiers (pseudonyms) instead of customer_id, keyed
    by event id as the SDK publishes them to the identify topic."""
    out = []
    for _, value in records:
        event = orjson.loads(value)
        customer = event.pop("customer_id")
        digest = hashlib.blake2b(customer.encode(), digest_size=16).hexdigest()
        event["identifiers"] = [
            {"type": "email", "value": f"h1:{digest}"},
            {"type": "phone", "value": f"h1:{digest[::-1]}"},
        ]
        out.append((event["event_id"].encode(), orjson.dumps(event)))
    return out


def resolver_only(records: list[tuple[bytes, bytes]]) -> float:
    """The resolver's step alone (decode, resolve, re-encode), no broker: ev/s."""
    from touchstream.schemas import InputLimits
    from touchstream.streams.identity import IdentityGraph
    from touchstream.streams.resolve import resolve_record
    from touchstream.streams.rules import IdentityRules

    graph = IdentityGraph(IdentityRules())
    limits = InputLimits()
    with console.status(f"resolver alone over {len(records):,} events..."):
        started = time.perf_counter()
        for offset, (key, value) in enumerate(records):
            resolve_record(graph, limits, key, value, "identify", 0, offset)
        return len(records) / (time.perf_counter() - started)


async def _publish(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    try:
        with _progress() as progress:
            task = progress.add_task(f"publishing to {topic}", total=len(records))
            pending = []
            for i, (key, value) in enumerate(records, 1):
                pending.append(await producer.send(topic, value=value, key=key))
                if i % 20_000 == 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    progress.update(task, completed=i)
            await asyncio.gather(*pending)
            progress.update(task, completed=len(records))
    finally:
        await producer.stop()


def publish(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], partitions: int
) -> None:
    ensure_topics(bootstrap, [topic], partitions)
    asyncio.run(_publish(bootstrap, topic, records))


# -- baseline ---------------------------------------------------------------------------------
async def _baseline(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        per_customer: dict[str, int] = {}
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    customer = event["customer_id"]
                    per_customer[customer] = per_customer.get(customer, 0) + 1
                seen += sum(len(r) for r in batches.values())
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def baseline(bootstrap: str, topic: str, total: int) -> float:
    with console.status("baseline: bare aiokafka consume + orjson + dict update..."):
        return asyncio.run(_baseline(bootstrap, topic, total))


# -- the peer ---------------------------------------------------------------------------------
def peer(bootstrap: str, topic: str, total: int, workdir: Path) -> dict[str, Any]:
    """Quix Streams' per-key stateful aggregate (RocksDB, changelog) on the same topic
    (bench/peer_quix.py), in its own virtualenv; what went wrong instead of a number."""
    if not PEER_PYTHON.exists():
        return {"skipped": f"no {PEER_PYTHON}: `make bench` makes it"}
    with console.status("peer: Quix Streams per-key stateful aggregate..."):
        done = subprocess.run(
            [
                str(PEER_PYTHON),
                str(Path(__file__).parent / "peer_quix.py"),
                bootstrap,
                topic,
                str(total),
                str(workdir / "quix-state"),
            ],
            capture_output=True,
            text=True,
            timeout=3600,
        )
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"failed": (done.stderr or done.stdout)[-2000:]}
    return {"name": "quixstreams", **orjson.loads(lines[-1])}


# -- the pure engine --------------------------------------------------------------------------
def engine_only(records: list[tuple[bytes, bytes]], partitions: int) -> float:
    """Validation + the engine (state, metrics, rules, snapshots) with no broker and no
    ClickHouse: the part of the work that is ours, per event."""
    from touchstream.schemas.decoder import decode_touchpoint
    from touchstream.streams.churn import RiskModel
    from touchstream.streams.customer_state import CustomerState
    from touchstream.streams.engine import Engine, partition_for
    from touchstream.streams.rules import Rules
    from touchstream.streams.snapshot import snapshot_json
    from touchstream.worker import tune_gc

    states: dict[str, CustomerState] = {}
    engine = Engine(Rules(), RiskModel(), states, {}, partitions)
    thresholds = gc.get_threshold()
    tune_gc()  # as the worker runs
    try:
        with console.status(f"pure engine over {len(records):,} events..."):
            started = time.perf_counter()
            for offset, (_, value) in enumerate(records):
                event = decode_touchpoint(value)
                partition = partition_for(event.customer_id, partitions)
                outcome = engine.step(event, partition, offset)
                for snapshot in outcome.snapshots:
                    snapshot_json(snapshot)
                for signal in outcome.signals:
                    signal.model_dump_json()
            return len(records) / (time.perf_counter() - started)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def replay_to_files(
    records: list[tuple[bytes, bytes]], partitions: int, workdir: Path, jobs: int | None = None
) -> dict[str, Any]:
    """`touchstream replay FILE --out DIR` as a user runs it (the installed command, from a
    directory of their own), timed whole: start-up, reading, ordering, the engine, the
    files written. `jobs` None: the command's default (one process per core)."""
    from touchstream.cli import auto_jobs

    file = workdir / "replay-in.jsonl"
    if not file.exists():
        file.write_bytes(b"".join(value + b"\n" for _, value in records))
    out = workdir / f"replay-out-{jobs or 'auto'}"
    command = [str(Path(sys.executable).parent / "touchstream"), "replay", str(file)]
    command += ["--out", str(out), *([] if jobs is None else ["--jobs", str(jobs)])]
    env = {**os.environ, "TOUCHSTREAM_DATA_DIR": str(workdir / "replay-data")}
    env["TOUCHSTREAM_PARTITIONS"] = str(partitions)
    what = f"{jobs} process(es)" if jobs else "the default processes"
    with console.status(f"touchstream replay of {len(records):,} events to files, {what}..."):
        started = time.perf_counter()
        subprocess.run(command, cwd=workdir, env=env, check=True, capture_output=True)
        seconds = time.perf_counter() - started
    return {
        "jobs": jobs or auto_jobs(len(records), partitions),
        "seconds": seconds,
        "events_per_second": len(records) / seconds,
    }


# -- the pipeline -----------------------------------------------------------------------------
def worker_env(bootstrap: str, name: str, data_dir: Path, partitions: int) -> dict[str, str]:
    return {
        **os.environ,
        "TOUCHSTREAM_BROKER_URL": f"kafka://{bootstrap}",
        "TOUCHSTREAM_APP_ID": f"bench-{name}",
        "TOUCHSTREAM_TOPIC_TOUCHPOINTS": f"{name}-in",
        "TOUCHSTREAM_TOPIC_DEAD_LETTERS": f"{name}-dead",
        "TOUCHSTREAM_TOPIC_METRICS": f"{name}-metrics",
        "TOUCHSTREAM_TOPIC_SIGNALS": f"{name}-signals",
        "TOUCHSTREAM_TOPIC_PROMISE_ALERTS": f"{name}-promise-alerts",
        "TOUCHSTREAM_TOPIC_ALERT_DEAD_LETTERS": f"{name}-alerts-dead",
        "TOUCHSTREAM_TOPIC_IDENTIFY": f"{name}-identify",
        "TOUCHSTREAM_TOPIC_IDENTITY": f"{name}-identity",
        "TOUCHSTREAM_PARTITIONS": str(partitions),
        "TOUCHSTREAM_DATA_DIR": str(data_dir),
        "TOUCHSTREAM_CONSUMER_SESSION_TIMEOUT_SECONDS": "10",
        "TOUCHSTREAM_LOG_LEVEL": "INFO",
    }


def start_worker(env: dict[str, str], log_path: Path) -> Worker:
    Path(env["TOUCHSTREAM_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    worker = Worker(env, log_path)
    worker.start()
    return worker


def stop(workers: list[Worker]) -> list[float]:
    """Stop the workers; returns their peak RSS in MiB (read before they exit)."""
    peaks = [peak_rss_mib(w.process.pid) for w in workers if w.process is not None]
    for worker in workers:
        worker.stop()
    return peaks


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, every thread."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the machine since boot, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def committed(admin: KafkaAdminClient, group: str) -> dict[str, int]:
    """Committed messages of the group, summed per topic."""
    offsets = admin.list_group_offsets(group).get(group, {})
    totals: dict[str, int] = {}
    for tp, meta in offsets.items():
        if meta.offset > 0:
            totals[tp.topic] = totals.get(tp.topic, 0) + meta.offset
    return totals


def wait_until(
    admin: KafkaAdminClient,
    group: str,
    done: Callable[[dict[str, int]], bool],
    timeout: float,
    on_sample: Callable[[dict[str, int]], None] | None = None,
    processes: list[subprocess.Popen[bytes]] | None = None,
) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sample = committed(admin, group)
        if on_sample is not None:
            on_sample(sample)
        if done(sample):
            return time.monotonic()
        for process in processes or []:
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited with {process.returncode}")
        time.sleep(0.25)
    raise TimeoutError(f"{group}: not done after {timeout:.0f}s")


def run_pipeline(
    bootstrap: str,
    name: str,
    total: int,
    workers: int,
    partitions: int,
    workdir: Path,
    enters: str | None = None,
) -> Run:
    """`enters`: the topic the events enter by when it is not the input topic (the identify
    topic): "processing" then starts at its first commit, so a stage that runs ahead of the
    input topic's (the resolver) is timed whole."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    started_workers: list[Worker] = []
    try:
        for i in range(workers):
            env = worker_env(bootstrap, name, workdir / f"{name}-{i}", partitions)
            started_workers.append(start_worker(env, workdir / f"{name}-{i}.log"))
        processes = [w.process for w in started_workers if w.process is not None]
        group, topic = f"bench-{name}", f"{name}-in"
        started = time.monotonic()
        busy_before, total_before = machine_ticks()
        samples: list[tuple[float, int]] = []
        first, entered = enters or topic, list[float]()
        with _progress() as progress:
            task = progress.add_task(f"{name}: {workers} worker(s)", total=total)

            def sample(counts: dict[str, int]) -> None:
                samples.append((time.monotonic(), counts.get(topic, 0)))
                if counts.get(first, 0) and not entered:
                    entered.append(time.monotonic())
                progress.update(task, completed=counts.get(topic, 0))

            ended = wait_until(
                admin, group, lambda c: c.get(topic, 0) >= total, 3600, sample, processes
            )
        busy_after, total_after = machine_ticks()
        used = [cpu_seconds(p.pid) for p in processes]
        tenth = next((t, n) for t, n in samples if n >= total / 10)
        return Run(
            workers=workers,
            events=total,
            seconds=ended - started,
            events_per_second=total / (ended - started),
            steady_events_per_second=(total - tenth[1]) / max(1e-9, ended - tenth[0]),
            processing_events_per_second=total / max(1e-9, ended - entered[0]),
            # rows are written before a batch's offsets are committed: drained when read
            sinks_drained_seconds=ended - started,
            peak_rss_mib=stop(started_workers),
            cpu_seconds=used,
            machine_busy=(busy_after - busy_before) / max(1, total_after - total_before),
        )
    finally:
        stop(started_workers)
        admin.close()


def state_bytes_per_customer(bootstrap: str, name: str) -> tuple[float, int]:
    latest: dict[bytes, int] = {}
    topic = f"bench-{name}-customer-state-changelog"
    for _, _, key, value in read_topic(bootstrap, topic, idle_timeout_ms=3000):
        if key is not None and value is not None:
            latest[key] = len(value)
    return (sum(latest.values()) / len(latest) if latest else float("nan")), len(latest)


# -- latency ----------------------------------------------------------------------------------
async def _offer(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], rate: float
) -> dict[str, float]:
    """Send at `rate` events/s in 10 ms ticks; returns event_id -> send time (epoch ms)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        per_tick = max(1, round(rate / 100))
        started = time.perf_counter()
        for tick, first in enumerate(range(0, len(records), per_tick)):
            await asyncio.sleep(max(0.0, started + tick / 100 - time.perf_counter()))
            for key, value in records[first : first + per_tick]:
                sent_at[orjson.loads(value)["event_id"]] = time.time() * 1000
                await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return sent_at


def measure_latency(
    bootstrap: str,
    records: list[tuple[bytes, bytes]],
    rate: float,
    partitions: int,
    workdir: Path,
) -> dict[str, float]:
    name = "latency"
    ensure_topics(bootstrap, [f"{name}-in"], partitions)
    env = worker_env(bootstrap, name, workdir / name, partitions)
    worker = start_worker(env, workdir / f"{name}.log")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        worker.wait_ready(120)
        with console.status(f"latency: offering {len(records):,} events at {rate:,.0f}/s..."):
            sent_at = asyncio.run(_offer(bootstrap, f"{name}-in", records, rate))
            wait_until(
                admin, f"bench-{name}", lambda c: c.get(f"{name}-in", 0) >= len(records), 600
            )
    finally:
        stop([worker])
        admin.close()
    latencies = []
    for timestamp, value in _signals_with_timestamps(bootstrap, f"{name}-signals"):
        event_id = orjson.loads(value).get("trigger_event_id")
        if event_id in sent_at:
            latencies.append(timestamp - sent_at[event_id])
    return _percentiles(latencies) | {"offered_per_second": rate, "signals": len(latencies)}


def _signals_with_timestamps(bootstrap: str, topic: str) -> list[tuple[float, bytes]]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaTP

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([KafkaTP(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        return [(float(r.timestamp), r.value) for r in consumer if r.value]
    finally:
        consumer.close()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": ordered[-1]}


# -- the run ----------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "faust-streaming": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "chdb": version("chdb"),
    }


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


LATENCY_LOAD_CAP = 0.8  # of one worker's steady throughput: below saturation, with margin


def main(
    events: int = typer.Option(1_000_000, help="Events preloaded into the input topic."),
    customers: int = typer.Option(100_000, help="Distinct customers among them."),
    partitions: int = typer.Option(4, help="Partitions of the input topic."),
    latency_rate: float = typer.Option(
        5000.0,
        help="Offered load for the latency run (capped at 80 percent of one worker's steady "
        "throughput, to stay below saturation).",
    ),
    latency_seconds: float = typer.Option(20.0, help="Length of the latency run."),
    scaling: bool = typer.Option(True, help="Also run two workers in one group."),
    identity: bool = typer.Option(
        True, help="Also run one worker on the events named by two identifiers each."
    ),
    with_peer: bool = typer.Option(
        True,
        "--peer/--no-peer",
        help="Also run the peer, Quix Streams' per-key aggregate, on the same topic "
        "(from .venv-peer, or TOUCHSTREAM_BENCH_PEER_PYTHON).",
    ),
    replay_one: bool = typer.Option(
        True, help="Also time `touchstream replay` in one process, beside the default."
    ),
    label: str = typer.Option("run", help="Name of this run in the results file."),
    seed: int = typer.Option(11),
) -> None:
    """Benchmark the pipeline against a bare aiokafka loop, in one run on this machine."""
    records = make_events(events, customers, seed)
    results: dict[str, Any] = {
        "label": label,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "events": len(records),
        "customers": customers,
        "partitions": partitions,
    }
    with (
        tempfile.TemporaryDirectory(prefix="touchstream-bench-") as tmp,
        EmbeddedBroker() as broker,
    ):
        workdir = Path(tmp)
        bootstrap = broker.bootstrap
        publish(bootstrap, "one-in", records, partitions)
        results["baseline_events_per_second"] = baseline(bootstrap, "one-in", len(records))
        if with_peer:
            results["peer"] = peer(bootstrap, "one-in", len(records), workdir)
        results["engine_events_per_second"] = engine_only(records, partitions)
        results["replay"] = replay_to_files(records, partitions, workdir)
        if replay_one:
            results["replay_one_process"] = replay_to_files(records, partitions, workdir, 1)
        one = run_pipeline(bootstrap, "one", len(records), 1, partitions, workdir)
        results["one_worker"] = asdict(one)
        size, stored = state_bytes_per_customer(bootstrap, "one")
        results["state_bytes_per_customer"] = size
        results["customers_in_state"] = stored
        rate = min(latency_rate, LATENCY_LOAD_CAP * one.steady_events_per_second)
        offered = records[: int(rate * latency_seconds)]
        results["latency"] = measure_latency(bootstrap, offered, rate, partitions, workdir)
        if identity:
            named = with_identifiers(records)
            results["resolver_events_per_second"] = resolver_only(named)
            ensure_topics(bootstrap, ["ids-in"], partitions)  # the resolver's output
            publish(bootstrap, "ids-identify", named, 1)
            ids = run_pipeline(
                bootstrap, "ids", len(records), 1, partitions, workdir, enters="ids-identify"
            )
            results["identity_worker"] = asdict(ids)
            results["identity_vs_one"] = (
                ids.processing_events_per_second / one.processing_events_per_second
            )
        if scaling:
            publish(bootstrap, "two-in", records, partitions)
            two = run_pipeline(bootstrap, "two", len(records), 2, partitions, workdir)
            results["two_workers"] = asdict(two)
            results["scaling_factor"] = two.steady_events_per_second / one.steady_events_per_second
    results["pipeline_vs_baseline"] = (
        results["one_worker"]["steady_events_per_second"] / results["baseline_events_per_second"]
    )
    if "steady_events_per_second" in results.get("peer", {}):
        results["pipeline_vs_peer"] = (
            results["one_worker"]["steady_events_per_second"]
            / results["peer"]["steady_events_per_second"]
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{results['at'][:19].replace(':', '')}-{label}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(markdown(results))
    console.print(f"results written to {path}")


def _rate(results: dict[str, Any], name: str) -> str:
    value = results.get(f"{name}_events_per_second")
    return "not measured" if value is None else f"{value:,.0f} ev/s"


def _peer(results: dict[str, Any]) -> str:
    peer = results.get("peer")
    if peer is None:
        return "not run (--no-peer)"
    if "steady_events_per_second" not in peer:
        return "skipped: " + peer["skipped"] if "skipped" in peer else "failed (see the JSON)"
    return (
        f"{peer['steady_events_per_second']:,.0f} ev/s; pipeline / peer "
        f"{results['pipeline_vs_peer']:.3f}"
    )


def _replay(results: dict[str, Any]) -> str:
    runs = [results[k] for k in ("replay", "replay_one_process") if k in results]
    return "; ".join(f"{r['events_per_second']:,.0f} ev/s in {r['jobs']} process(es)" for r in runs)


def _cpu(run: dict[str, Any]) -> str:
    """Worker CPU an event, and the machine's load over the run."""
    busy = machine_busy(run)
    load = "" if busy is None else f"; machine {busy:.0%} busy"
    return f"{cpu_us_per_event(run):,.0f} µs of worker CPU an event{load}"


def markdown(results: dict[str, Any]) -> str:
    one, latency = results["one_worker"], results["latency"]
    rows = [
        ("events / customers", f"{results['events']:,} / {results['customers']:,}"),
        (
            "baseline: bare aiokafka + orjson + dict",
            f"{results['baseline_events_per_second']:,.0f} ev/s",
        ),
        ("engine alone: validation + state + rules (no I/O)", _rate(results, "engine")),
        ("`touchstream replay` to files, whole command", _replay(results)),
        ("pipeline, 1 worker (steady)", f"{one['steady_events_per_second']:,.0f} ev/s"),
        ("pipeline, 1 worker (whole run, incl. start)", f"{one['events_per_second']:,.0f} ev/s"),
        ("pipeline / baseline", f"{results['pipeline_vs_baseline']:.3f}"),
        ("peer: Quix Streams per-key aggregate, RocksDB + changelog (steady)", _peer(results)),
        (
            "sinks drained after",
            f"{one['sinks_drained_seconds']:.1f} s (input done at {one['seconds']:.1f} s)",
        ),
        (
            f"event→signal latency at {latency['offered_per_second']:,.0f} ev/s",
            (
                f"p50 {latency['p50_ms']:.0f} ms, p99 {latency['p99_ms']:.0f} ms "
                f"({latency['signals']} signals)"
                if latency["signals"]
                else "no signal raised during the run"
            ),
        ),
        ("peak RSS, 1 worker", f"{one['peak_rss_mib'][0]:,.0f} MiB"),
        ("state per customer (changelog)", f"{results['state_bytes_per_customer']:,.0f} B"),
    ]
    if "two_workers" in results:
        two = results["two_workers"]
        rows.append(
            ("pipeline, 2 workers (steady)", f"{two['steady_events_per_second']:,.0f} ev/s")
        )
        rows.append(("scaling factor, 2 vs 1", f"{results['scaling_factor']:.2f}×"))
    if "identity_worker" in results:
        ids = results["identity_worker"]
        rows.append(
            ("resolver alone: decode + resolve + re-encode (no I/O)", _rate(results, "resolver"))
        )
        rows.append(
            (
                "pipeline, 1 worker, two identifiers an event (first to last commit)",
                f"{ids['processing_events_per_second']:,.0f} ev/s "
                f"({results['identity_vs_one']:.2f}× of customer_id; target ≥ 0.85)",
            )
        )
    for key, label in (("one_worker", "1 worker"), ("two_workers", "2 workers")):
        run = results.get(key, {})
        if cpu_us_per_event(run) is not None:
            rows.append((f"CPU, {label}", _cpu(run)))
    lines = ["| measure | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)


if __name__ == "__main__":
    typer.run(main)
