"""The compiled engine's bookkeeping: an extension module older than its source is found."""

from __future__ import annotations

import importlib.machinery
import os
from pathlib import Path

import pytest

from touchstream import native


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(native, "ROOT", tmp_path)
    monkeypatch.setattr(native, "_fallback", None)  # this process's own engine is not the tree's
    for module in native.MODULES:
        native._source(module).parent.mkdir(parents=True, exist_ok=True)
        native._source(module).write_text("# source\n")
    return tmp_path


def _compile(module: str, age: float) -> Path:
    """A stand-in extension module, `age` seconds older than its source."""
    source = native._source(module)
    binary = source.with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0])
    binary.write_bytes(b"")
    when = source.stat().st_mtime - age
    os.utime(binary, (when, when))
    return binary


def test_pure_python_tree_is_neither_compiled_nor_stale(tree: Path) -> None:
    assert native.compiled() == []
    assert native.stale() == []
    assert native.status() == "pure Python"


def test_a_binary_older_than_its_source_is_stale_and_clean_removes_every_binary(
    tree: Path,
) -> None:
    fresh = _compile("touchstream.streams.state", age=-10.0)  # built after the source
    old = _compile("touchstream.streams.evaluate", age=10.0)  # the source changed since
    (tree / "touchstream" / "engine__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert native.compiled() == ["touchstream.streams.state", "touchstream.streams.evaluate"]
    assert native.stale() == ["touchstream.streams.evaluate"]
    assert "OUT OF DATE: touchstream.streams.evaluate" in native.status()
    native.clean()
    assert not fresh.exists() and not old.exists()
    assert list(tree.rglob("*.so")) == []
    assert native.status() == "pure Python"


def test_the_makefile_rebuilds_when_any_compiled_source_changes() -> None:
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    listed = makefile.split("ENGINE :=", 1)[1].split("\n\n", 1)[0].replace("\\", " ").split()
    assert ["touchstream." + name.removesuffix(".py").replace("/", ".") for name in listed] == list(
        native.MODULES
    )
