"""Query results as terminal tables that can be read at the terminal's width.

A table whose columns fit is printed whole. One that does not is never cut to "custo…":
results with long texts (a signal's reasons and action) become one small card a row, the
texts wrapped under their names; others keep their leading columns and say which ones
were left out. `--wide` prints everything; `-o json|csv` gives it to machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

BORDER = 4  # a column's share of a rich table's borders and padding, in characters


def cell(value: Any) -> str:
    return "" if value is None else str(value)


def needed_width(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Characters a table needs so that no cell wraps."""
    return sum(_column_width(i, name, rows) for i, name in enumerate(columns)) + 1


def _column_width(i: int, name: str, rows: Sequence[Sequence[Any]]) -> int:
    return max([len(name), *(len(cell(row[i])) for row in rows)]) + BORDER - 1


def _table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    return table


def show(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    title: str | None = None,
    wide: bool = False,
    details: Sequence[str] = (),
) -> None:
    """Print a result to fit `console.width`: whole when it fits (or `wide`); else one
    card a row when it has `details` (long text columns); else its leading columns."""
    width = console.width
    need = needed_width(columns, rows)
    if need <= width:
        console.print(_table(title, columns, rows))
        return
    if wide:  # lines as long as the table needs, for a pager or a file
        console.width = need
        try:
            console.print(_table(title, columns, rows))
        finally:
            console.width = width
        return
    if any(name in columns for name in details):
        _cards(console, columns, rows, title, details)
        return
    kept: list[int] = []
    used = 1
    for i, name in enumerate(columns):
        w = _column_width(i, name, rows)
        if kept and used + w > width:
            break
        kept.append(i)
        used += w
    hidden = [name for i, name in enumerate(columns) if i not in kept]
    console.print(
        _table(title, [columns[i] for i in kept], [[row[i] for i in kept] for row in rows])
    )
    console.print(f"[dim]not shown at this width: {', '.join(hidden)} (--wide, -o json)[/]")


def _cards(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    title: str | None,
    details: Sequence[str],
) -> None:
    """One card a row: the short values on its rule, every value below under its name."""
    if title:
        console.print(f"[bold]{title}[/] ({len(rows)})")
    short = [i for i, name in enumerate(columns) if name not in details]
    for row in rows:
        # as many short values as fit on the rule; the rest below with the long ones
        on_rule = short[:4]
        while (
            len(on_rule) > 1 and len("  ".join(cell(row[i]) for i in on_rule)) > console.width - 6
        ):
            on_rule = on_rule[:-1]
        console.print(Rule("  ".join(cell(row[i]) for i in on_rule), align="left"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for i, name in enumerate(columns):
            if i not in on_rule and row[i] not in (None, ""):
                grid.add_row(name, cell(row[i]))
        console.print(grid)
