"""JSON Schema files for publishers in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from touchstream.schemas import WIRE_MODELS


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, stable so a committed copy can be compared."""
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in WIRE_MODELS.items()
    }


def export_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
