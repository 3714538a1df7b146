"""The engine compiled to C with mypyc, in place, and never out of date.

The pure engine modules (state, metrics, scores, touchpoint assessment, BG/NBD, the
event-time loop) are plain typed
Python; mypyc compiles them to extension modules that sit beside the sources and are
imported instead of them: ~20 % less CPU an event (docs/performance.md). The build needs a
C compiler and the Python headers; without them, or with `TOUCHSTREAM_NATIVE=0`, everything
runs as pure Python, the same code.

mypyc's runtime for the group is itself an extension module, `touchstream/engine__mypyc.*`,
inside the package (a top-level one is only importable from the repository root). When the
compiled engine cannot be used (its runtime does not load, a module is older than its
source, or `TOUCHSTREAM_NATIVE=0`), `select_engine()` (run when `touchstream` is imported)
imports the engine from its sources instead and says so in one log line.

    python -m touchstream.native build     # compile (what `make install` does)
    python -m touchstream.native clean     # back to pure Python
    python -m touchstream.native status
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the touchstream package
GROUP = "touchstream.engine"  # mypyc's runtime: touchstream/engine__mypyc.<suffix>
MODULES = (  # the Makefile's ENGINE lists their sources
    "touchstream.streams.customer_state",
    "touchstream.streams.state",
    "touchstream.streams.evaluate",
    "touchstream.streams.measure",
    "touchstream.streams.risk",
    "touchstream.streams.attribution",
    "touchstream.streams.wow",
    "touchstream.streams.snapshot",
    "touchstream.streams.scoring",
    "touchstream.streams.params",
    "touchstream.streams.assessment",
    "touchstream.streams.bgnbd",
    "touchstream.streams.churn",
    "touchstream.streams.engine",
    "touchstream.streams.partitioner",
    "touchstream.streams.records",
    "touchstream.streams.rows",
    "touchstream.streams.identity",
    "touchstream.streams.resolve",
    "touchstream.schemas.validation",
    "touchstream.schemas.decoder",
)

log = logging.getLogger("touchstream.native")
_fallback: str | None = None  # why the sources run although binaries exist


def _source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def _binaries(module: str) -> list[Path]:
    source = _source(module)
    return [
        source.with_suffix(suffix)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        if source.with_suffix(suffix).exists()
    ]


def _shared_libraries() -> list[Path]:
    """mypyc's runtime for the group of modules, and any left by older builds at the root."""
    package = ROOT.joinpath(*GROUP.split(".")[:-1])
    return sorted([*package.glob("*__mypyc.*"), *ROOT.glob("*__mypyc.*")])


def compiled() -> list[str]:
    """Engine modules that have an extension module beside their source."""
    return [module for module in MODULES if _binaries(module)]


def stale() -> list[str]:
    """Compiled engine modules whose source changed after they were built."""
    return [
        module
        for module in MODULES
        for binary in _binaries(module)
        if binary.stat().st_mtime < _source(module).stat().st_mtime
    ]


def status() -> str:
    done = compiled()
    if not done:
        return "pure Python"
    if _fallback:
        return f"pure Python ({_fallback})"
    old = stale()
    if old:
        return f"compiled, OUT OF DATE: {', '.join(old)} (python -m touchstream.native build)"
    return f"compiled with mypyc ({len(done)} modules)"


def clean() -> None:
    for module in MODULES:
        for binary in _binaries(module):
            binary.unlink()
    for library in _shared_libraries():
        library.unlink()
    # the Makefile's record of a build: without it `make` compiles again
    (ROOT / ".venv" / ".native-stamp").unlink(missing_ok=True)


def build() -> bool:
    """Compile the engine in place; False (and pure Python) when it cannot be done."""
    clean()  # a failed build must not leave older binaries in front of the sources
    if os.environ.get("TOUCHSTREAM_NATIVE", "1") == "0":
        print("TOUCHSTREAM_NATIVE=0: the engine stays pure Python")
        return False
    sources = [str(_source(m).relative_to(ROOT)) for m in MODULES]
    script = (
        "import sys; from setuptools import setup; from mypyc.build import mypycify; "
        "setup(name='touchstream-engine', script_args=['build_ext', '--inplace'],"
        f" ext_modules=mypycify(sys.argv[1:], group_name={GROUP!r}))"
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    command = [sys.executable, "-c", script, *sources]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0 or stale() or len(compiled()) != len(MODULES):
        clean()
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        print(f"mypyc could not compile the engine; it stays pure Python:\n{tail}")
        return False
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    print(f"engine compiled with mypyc ({len(compiled())} modules)")
    return True


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the engine modules' sources ahead of their extension modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, _source(fullname))


def select_engine() -> None:
    """Use the compiled engine when it is current and loads; else the sources, said once."""
    global _fallback
    if _fallback is not None or not compiled():
        return
    if os.environ.get("TOUCHSTREAM_NATIVE", "1") == "0":
        _fallback = "TOUCHSTREAM_NATIVE=0"
    elif old := stale():
        _fallback = f"compiled modules older than their sources: {', '.join(old)}"
    else:
        try:
            importlib.import_module(f"{GROUP}__mypyc")
            return
        except ImportError as error:
            _fallback = f"the compiled engine does not load: {error}"
    sys.meta_path.insert(0, _Sources())
    log.warning("engine: running pure Python; %s (`make install` rebuilds it)", _fallback)
