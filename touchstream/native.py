"""The engine compiled to C with mypyc, in place, and never out of date.

The pure engine modules (state, metrics, scores, touchpoint assessment, BG/NBD, the
event-time loop) are plain typed
Python; mypyc compiles them to extension modules that sit beside the sources and are
imported instead of them: ~20 % less CPU an event (docs/performance.md). The build needs a
C compiler and the Python headers; without them, or with `TOUCHSTREAM_NATIVE=0`, everything
runs as pure Python, the same code.

An extension module older than its source would run old code, so `stale()` lists them:
the tests and the worker refuse to start with one (`make` rebuilds when a source changes).

    python -m touchstream.native build     # compile (what `make install` does)
    python -m touchstream.native clean     # back to pure Python
    python -m touchstream.native status
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = (  # the Makefile's ENGINE lists their sources
    "streams.state",
    "streams.evaluate",
    "streams.scoring",
    "streams.touchpoint",
    "streams.bgnbd",
    "streams.engine",
    "streams.handling",
    "sinks.rows",
    "schemas.validation",
)


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
    """mypyc's runtime for a group of modules: `<hash>__mypyc.<suffix>` at the root."""
    return sorted(ROOT.glob("*__mypyc.*"))


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


def build() -> bool:
    """Compile the engine in place; False (and pure Python) when it cannot be done."""
    clean()  # a failed build must not leave older binaries in front of the sources
    if os.environ.get("TOUCHSTREAM_NATIVE", "1") == "0":
        print("TOUCHSTREAM_NATIVE=0: the engine stays pure Python")
        return False
    command = [sys.executable, "-m", "mypyc", *(str(_source(m).relative_to(ROOT)) for m in MODULES)]
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0 or stale() or len(compiled()) != len(MODULES):
        clean()
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        print(f"mypyc could not compile the engine; it stays pure Python:\n{tail}")
        return False
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    print(f"engine {status()}")
    return True


def main(argv: list[str]) -> int:
    action = argv[0] if argv else "status"
    if action == "build":
        build()  # never fails the install: pure Python is a working engine
    elif action == "clean":
        clean()
        print("engine: pure Python")
    elif action == "status":
        print(f"engine: {status()}")
        return 1 if stale() else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
