from __future__ import annotations

from pathlib import Path

from touchstream.schemas.export import export_schemas, render_schemas

COMMITTED = Path(__file__).resolve().parents[2] / "schemas" / "json"


def test_committed_json_schemas_are_current() -> None:
    rendered = render_schemas()
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.schema.json")}
    assert set(committed) == set(rendered), "run: touchstream schema export schemas/json"
    stale = [name for name, text in rendered.items() if committed[name] != text]
    assert not stale, f"stale schema files {stale}: run `touchstream schema export schemas/json`"


def test_export_writes_every_model(tmp_path: Path) -> None:
    written = export_schemas(tmp_path)
    assert {p.name for p in written} == {
        "touchpoint.schema.json",
        "signal.schema.json",
        "metrics_snapshot.schema.json",
        "dead_letter.schema.json",
        "promise_alert.schema.json",
    }
    assert '"occurred_at"' in (tmp_path / "touchpoint.schema.json").read_text()
