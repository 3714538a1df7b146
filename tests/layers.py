"""The import graph by layer, and every import that goes the wrong way.

    python -m tests.layers      (or `make check`)

Layers, lowest first; a module may import its own layer and the ones its layer lists:

    schemas      wire models                                   -> nothing of ours
    engine       touchstream.streams: state, metrics, rules,   -> schemas
                 the per-record step (pure, no I/O)
    runtime      touchstream.streams.runtime: the Faust edge   -> engine, schemas
    sinks        touchstream.sinks: ClickHouse and webhooks    -> engine, schemas
    application  the rest of touchstream: settings, app        -> everything
                 factory, endpoints, CLI, SDK, replay, demo

`touchstream/__init__.py` and `touchstream.native` pick the compiled or the pure-Python
engine when the package is first imported; they are the bootstrap, outside the layers.
Imports inside functions count like the others.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # import name -> source folder
    "touchstream": ROOT / "touchstream",
    "touchstream.schemas": ROOT / "schemas",
    "touchstream.streams": ROOT / "streams",
    "touchstream.sinks": ROOT / "sinks",
}
LAYERS = {  # layer -> (module prefix, layers it may import)
    "schemas": ("touchstream.schemas", ()),
    "engine": ("touchstream.streams", ("schemas",)),
    "runtime": ("touchstream.streams.runtime", ("engine", "schemas")),
    "sinks": ("touchstream.sinks", ("engine", "schemas")),
    "application": ("touchstream", ("runtime", "sinks", "engine", "schemas")),
}
BOOTSTRAP = {"touchstream", "touchstream.native"}


def layer_of(module: str) -> str | None:
    if module in BOOTSTRAP or module.startswith("touchstream.native."):
        return None
    matches = [
        (len(prefix), layer)
        for layer, (prefix, _) in LAYERS.items()
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def modules() -> dict[str, Path]:
    """Every module of ours, by import name (the symlinked folders once each)."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).with_suffix("")
            if package == "touchstream" and relative.parts[0] in ("schemas", "streams", "sinks"):
                continue  # the symlinks: counted under their own folder
            parts = [p for p in relative.parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(source: str, module: str) -> list[str]:
    """The modules of ours that `source` imports (absolute and relative, anywhere in it)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in found if name == "touchstream" or name.startswith("touchstream.")]


def graph(sources: dict[str, str]) -> tuple[Counter[tuple[str, str]], list[str]]:
    """Edges between layers (with counts of importing modules) and the upward imports."""
    edges: Counter[tuple[str, str]] = Counter()
    wrong: list[str] = []
    for module, source in sorted(sources.items()):
        here = layer_of(module)
        if here is None:
            continue
        targets: dict[str, str] = {}  # layer -> the first module of it imported
        for name in imports(source, module):
            there = layer_of(name)
            if there is not None:
                targets.setdefault(there, name)
        for there, name in sorted(targets.items()):
            if there == here:
                continue
            edges[(here, there)] += 1
            if there not in LAYERS[here][1]:
                wrong.append(f"{module} ({here}) imports {name} ({there})")
    return edges, wrong


def cycles(edges: Counter[tuple[str, str]]) -> list[list[str]]:
    """Cycles among layers (none, when every edge goes down)."""
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for here, there in edges:
            if here != path[-1]:
                continue
            if there == path[0]:
                found.append([*path, there])
            elif there not in path and there > path[0]:
                walk([*path, there])

    for start in LAYERS:
        walk([start])
    return found


def main() -> int:
    sources = {module: path.read_text() for module, path in modules().items()}
    edges, wrong = graph(sources)
    print(f"{len(sources)} modules; imports between layers (importing modules):")
    for (here, there), count in sorted(edges.items()):
        print(f"  {here:<12} -> {there:<12} {count:>3}")
    loops = cycles(edges)
    for loop in loops:
        print("cycle: " + " -> ".join(loop))
    for line in wrong:
        print("upward import: " + line)
    if not wrong and not loops:
        print("no upward imports, no cycles")
    return 1 if wrong or loops else 0


if __name__ == "__main__":
    sys.exit(main())
