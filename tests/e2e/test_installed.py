"""The product as a user runs it: the installed `touchstream` command, from outside the repository.

pytest runs from the repository root, whose folders are importable from there: a module that
only the root makes importable (the compiled engine's runtime once was one) breaks every
command while every in-process test passes. These tests run the console script in a fresh
directory with a clean environment, as `make demo` and a user's shell do.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOUCHSTREAM = BIN / "touchstream"


def _run(args: list[str], cwd: Path, timeout: float = 240, **env: str) -> str:
    """Run a command the way a shell in `cwd` would; fail with its output when it fails."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TOUCHSTREAM_", "PYTHON"))}
    result = subprocess.run(
        args,
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_help_lists_the_commands_from_outside_the_repository(tmp_path: Path) -> None:
    out = _run([str(TOUCHSTREAM), "--help"], tmp_path)
    for command in ("demo", "worker", "replay", "query", "publish"):
        assert command in out


def test_only_the_touchstream_namespace_is_installed(tmp_path: Path) -> None:
    python = str(BIN / "python")
    out = _run(
        [python, "-c", "import touchstream.schemas as s; print(s.TouchpointEvent)"], tmp_path
    )
    assert "touchstream.schemas.touchpoint.TouchpointEvent" in out
    for generic in ("schemas", "streams", "sinks"):
        result = subprocess.run(
            [python, "-c", f"import {generic}"], cwd=tmp_path, capture_output=True
        )
        assert result.returncode != 0, f"`import {generic}` works: a generic top-level name leaked"


def test_small_demo_and_replay_from_a_user_directory(tmp_path: Path) -> None:
    out = _run([str(TOUCHSTREAM), "demo", "--customers", "200", "--months", "3"], tmp_path)
    assert "planted cohorts found" in out
    assert (tmp_path / ".touchstream" / "report.html").exists()

    _run([str(TOUCHSTREAM), "generate", "events.jsonl", "--customers", "30"], tmp_path)
    out = _run([str(TOUCHSTREAM), "replay", "events.jsonl", "--out", "replayed"], tmp_path)
    customers = (tmp_path / "replayed" / "customers.jsonl").read_text().splitlines()
    assert len(customers) == 30, out
    assert all(json.loads(line)["customer_id"] for line in customers)
    # in two processes (each imports the installed package afresh): the same files
    _run([str(TOUCHSTREAM), "replay", "events.jsonl", "--out", "two", "--jobs", "2"], tmp_path)
    for name in ("signals", "customers", "offers"):
        one = (tmp_path / "replayed" / f"{name}.jsonl").read_bytes()
        assert (tmp_path / "two" / f"{name}.jsonl").read_bytes() == one, name


def test_pure_python_engine_when_the_compiled_one_cannot_load(tmp_path: Path) -> None:
    """TOUCHSTREAM_NATIVE=0 takes the same path as a runtime that fails to load."""
    out = _run(
        [str(BIN / "python"), "-c", "from touchstream import native; print(native.status())"],
        tmp_path,
        TOUCHSTREAM_NATIVE="0",
    )
    from touchstream import native

    if native.compiled():
        assert "pure Python (TOUCHSTREAM_NATIVE=0)" in out
        assert out.count("engine: running pure Python") == 1  # the one log line
    else:
        assert "pure Python" in out


def test_a_regular_install_works_from_elsewhere(tmp_path: Path) -> None:
    """`pip install .` (not editable): the package, its SQL migrations and JSON Schemas."""
    source = tmp_path / "src"  # a copy: an in-tree build would leave build/ in the repository
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            ".touchstream",
            "build",
            "*.so",
            ".*_cache",
            ".hypothesis",
            "*.egg-info",
        ),
    )
    target = tmp_path / "site"
    _run(
        [
            str(BIN / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        tmp_path,
        timeout=300,
    )
    assert not (target / "schemas").exists() and not (target / "streams").exists()
    assert list((target / "touchstream" / "sinks" / "migrations").glob("*.sql"))
    assert list((target / "touchstream" / "schemas" / "json").glob("*.json"))
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import touchstream, sys; from touchstream.cli import app; "
        "print(touchstream.__file__, file=sys.stderr); app()"
    )
    # -S: no site processing, so the editable install's import hook (a .pth file) cannot
    # lend the repository's modules to the installed copy; its dependencies are on the path
    python = [str(BIN / "python"), "-S"]
    path = os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])
    out = _run([*python, "-c", script, "migrate"], work, PYTHONPATH=path)
    assert str(target) in out, out  # the installed copy ran, not the repository's
    _run([*python, "-c", script, "generate", "e.jsonl", "--customers", "20"], work, PYTHONPATH=path)
    _run([*python, "-c", script, "replay", "e.jsonl"], work, PYTHONPATH=path)
    assert (work / "replay-out" / "signals.jsonl").exists()
