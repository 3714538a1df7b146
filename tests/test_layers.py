"""Dependencies go one way: schemas <- engine <- runtime, sinks <- application."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path

from tests.layers import cycles, graph, imports, layer_of, main, modules

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def test_no_upward_import_and_no_cycle_in_the_package() -> None:
    sources = {module: path.read_text() for module, path in modules().items()}
    assert {"touchstream.streams.engine", "touchstream.streams.runtime.batches"} <= set(sources)
    edges, wrong = graph(sources)
    assert wrong == []
    assert cycles(edges) == []
    assert ("runtime", "engine") in edges and ("engine", "runtime") not in edges


def test_the_check_sees_an_upward_import_even_inside_a_function() -> None:
    engine = "def f():\n    from touchstream.settings import Settings\n"
    sinks = "from touchstream.streams.runtime.batches import CommittedBatches\n"
    edges, wrong = graph({"touchstream.streams.state": engine, "touchstream.sinks.writer": sinks})
    assert wrong == [
        "touchstream.sinks.writer (sinks) imports touchstream.streams.runtime.batches (runtime)",
        "touchstream.streams.state (engine) imports touchstream.settings (application)",
    ]
    assert cycles(edges + Counter({("application", "engine"): 1})) == [
        ["application", "engine", "application"]
    ]


def test_layers_of_names_and_relative_imports() -> None:
    assert layer_of("touchstream.streams.runtime.feed") == "runtime"
    assert layer_of("touchstream.streams.rows") == "engine"
    assert layer_of("touchstream.native") is None  # the bootstrap
    assert imports("from ..schemas import Signal\n", "touchstream.streams.state") == [
        "touchstream.schemas",
        "touchstream.schemas.Signal",
    ]


def test_the_architecture_doc_shows_the_graph_as_it_is() -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main() == 0
    assert printed.getvalue() in ARCHITECTURE.read_text(), "docs/architecture.md: rerun it"
