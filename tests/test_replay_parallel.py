"""`touchstream replay` in several processes gives the files of one, byte for byte."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from touchstream.cli import app
from touchstream.generator import generate
from touchstream.replay import IdentityOptions, NeedsOneProcess
from touchstream.replay_files import NAMES
from touchstream.replay_parallel import ReplayJob, one_process_because, replay_file
from touchstream.streams.churn import RiskModel
from touchstream.streams.rules import Rules

AS_OF = "2026-07-15T00:00:00Z"


def _history(tmp_path: Path) -> Path:
    """Six months of 300 customers, with what a real export has: a line that is not JSON,
    one of the wrong type, a redelivered event, blank lines and lines out of time order."""
    _, events = generate(customers=300, months=6, seed=11)
    lines = [orjson.dumps(e) for e in events]
    lines[100], lines[200] = lines[200], lines[100]
    lines += [b"{not json", orjson.dumps({**events[5], "customer_id": 42}), lines[7]]
    lines[300:300] = [b"", b"  \t"]  # blank lines count in the line numbers, and are skipped
    file = tmp_path / "history.jsonl"
    file.write_bytes(b"\n".join(lines) + b"\n")
    return file


def _replay(file: Path, out: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app,
        ["replay", str(file), "--out", str(out), "--as-of", AS_OF, *args],
        env={"TOUCHSTREAM_DATA_DIR": str(out.parent / "data")},
    )
    assert result.exit_code == 0, result.output
    return result.output


def _lines(file: Path) -> list[bytes]:
    """The lines, but the dead letters' receipt time: now, in each run."""
    lines = file.read_bytes().splitlines()
    if file.name == "dead_letters.jsonl":
        return [orjson.dumps({**orjson.loads(line), "received_at": None}) for line in lines]
    return lines


def test_three_processes_write_the_files_of_one(tmp_path: Path) -> None:
    file = _history(tmp_path)
    one = _replay(file, tmp_path / "one", "--jobs", "1")
    three = _replay(file, tmp_path / "three", "--jobs", "3")  # 4 partitions: parts unequal
    for name in NAMES:
        expected = _lines(tmp_path / "one" / f"{name}.jsonl")
        assert _lines(tmp_path / "three" / f"{name}.jsonl") == expected, name
    signals = (tmp_path / "one" / "signals.jsonl").read_bytes().splitlines()
    offers = (tmp_path / "one" / "offers.jsonl").read_bytes().splitlines()
    dead = (tmp_path / "one" / "dead_letters.jsonl").read_bytes().splitlines()
    assert len(signals) > 20 and offers and len(dead) == 2  # something to compare
    # the model learned before --as-of, the same in both
    model_line = next(line for line in one.splitlines() if line.startswith("risk model:"))
    assert "learned on 300 customers" in model_line
    assert model_line in three
    assert "one process" not in three


def test_a_file_naming_customers_by_identifiers_runs_in_one_process(tmp_path: Path) -> None:
    _, events = generate(customers=20, months=1, seed=3)
    event = {k: v for k, v in events[0].items() if k != "customer_id"}
    # the key escaped: a scan of the file for "identifiers" misses it, the part does not
    named = [{"type": "email", "value": "h1:" + "ab" * 16}]  # as the SDK sends it
    escaped = orjson.dumps({**event, "identifiers": named})
    escaped = escaped.replace(b'"identifiers"', b'"\\u0069dentifiers"')
    file = tmp_path / "named.jsonl"
    file.write_bytes(b"\n".join([*(orjson.dumps(e) for e in events), escaped]) + b"\n")
    job = ReplayJob(
        file=file,
        fmt=None,
        mapping={},
        rules=Rules(),
        model_json=RiskModel().to_json(),
        partitions=4,
        source="t",
        as_of=None,
        max_bytes=64 * 1024,
        earliest=None,
        identity=IdentityOptions(secret=b"s" * 32),
        jobs=2,
    )
    assert one_process_because(job, clickhouse=False, sort_by_time=True) == ""
    with pytest.raises(NeedsOneProcess, match="names its customer by identifiers"):
        replay_file(job)
    # the command falls back to one process, and says so
    output = _replay(file, tmp_path / "out", "--jobs", "2")
    assert "one process: line" in output
    assert len((tmp_path / "out" / "customers.jsonl").read_bytes().splitlines()) == 21

    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(orjson.dumps({**event, "identifiers": []}) + b"\n")
    reason = one_process_because(
        ReplayJob(**{**job.__dict__, "file": plain}), clickhouse=False, sort_by_time=True
    )
    assert "identifiers" in reason
    assert "--clickhouse" in one_process_because(job, clickhouse=True, sort_by_time=True)
