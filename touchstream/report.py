"""The demo's HTML report: plain HTML with inline SVG charts, no plotting dependency."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COLORS = ["#d1495b", "#2e86ab", "#edae49", "#66a182", "#8d6a9f", "#00798c"]


def line_chart(
    series: dict[str, list[tuple[str, float]]], title: str, width: int = 760, height: int = 260
) -> str:
    """One line per series over shared string x labels (e.g. days)."""
    labels = sorted({x for points in series.values() for x, _ in points})
    if not labels:
        return f"<p>{html.escape(title)}: no data</p>"
    top = max((y for points in series.values() for _, y in points), default=1) or 1
    left, bottom = 50, height - 30

    def px(i: int) -> float:
        return left + (width - left - 20) * (i / max(1, len(labels) - 1))

    def py(y: float) -> float:
        return bottom - (bottom - 20) * (y / top)

    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#999"/>',
        f'<text x="5" y="{py(top) + 4:.0f}" font-size="11">{top:g}</text>',
        f'<text x="5" y="{bottom}" font-size="11">0</text>',
        f'<text x="{left}" y="{height - 8}" font-size="11">{html.escape(labels[0])}</text>',
        f'<text x="{width - 90}" y="{height - 8}" font-size="11">{html.escape(labels[-1])}</text>',
    ]
    index = {x: i for i, x in enumerate(labels)}
    for n, (name, points) in enumerate(sorted(series.items())):
        color = COLORS[n % len(COLORS)]
        path = " ".join(f"{px(index[x]):.1f},{py(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>')
        parts.append(
            f'<text x="{left + 10 + 160 * n}" y="14" fill="{color}" '
            f'font-size="12">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def bar_chart(
    values: list[tuple[str, float]],
    title: str,
    low: float = -1.0,
    high: float = 1.0,
    width: int = 860,
    fmt: str = "{:.2f}",
) -> str:
    """Horizontal bars on a fixed scale [low, high] with a zero line; the label column as
    wide as the longest label (up to half the chart)."""
    if not values:
        return f"<p>{html.escape(title)}: no data</p>"
    longest = max(len(label) for label, _ in values)
    row, left = 24, min(width // 2, max(110, 7 * longest + 12))
    height = row * len(values) + 20
    span = (width - left - 60) / (high - low)
    zero = left + (0 - low) * span
    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height}" stroke="#999"/>',
    ]
    for i, (label, value) in enumerate(values):
        y = 10 + i * row
        start, end = sorted((zero, left + (max(low, min(high, value)) - low) * span))
        color = COLORS[1] if value >= 0 else COLORS[0]
        parts.append(f'<text x="5" y="{y + 14}" font-size="12">{html.escape(label)}</text>')
        parts.append(
            f'<rect x="{start:.1f}" y="{y}" width="{max(1.0, end - start):.1f}" '
            f'height="{row - 6}" fill="{color}"/>'
        )
        shown = html.escape(fmt.format(value))
        parts.append(
            f'<text x="{max(start, end) + 4:.1f}" y="{y + 14}" font-size="11">{shown}</text>'
        )
    parts.append("</svg>")
    return f"<h3>{html.escape(title)}</h3>" + "".join(parts)


def table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: Path, summary: dict[str, Any], sections: list[str]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
        for k, v in summary.items()
        if not isinstance(v, dict)
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>touchstream demo report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ddd;padding:3px 6px}}
</style></head><body><h1>touchstream demo report</h1><p>{stamp}</p><ul>{facts}</ul>
{"".join(sections)}</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path
