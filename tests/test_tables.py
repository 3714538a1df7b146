"""CLI tables at the terminal's width: nothing cut to "custo…", everything readable."""

from __future__ import annotations

import io

from rich.console import Console

from touchstream.tables import show

SIGNAL_COLUMNS = [
    "raised_at",
    "kind",
    "customer_id",
    "score",
    "severity",
    "trigger",
    "suggested_action",
    "why",
    "signal_id",
]
WHY = (
    "broken_promises +0.38; silent_failures +0.17; inconsistency +0.08; involvement -0.04; "
    "affinity -0.02"
)


def rendered(columns: list[str], rows: list[list], width: int, **options) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    show(console, columns, rows, **options)
    return console.file.getvalue()


def signal_rows(n: int) -> list[list]:
    return [
        [
            f"2026-06-{10 + i} 12:00:00",
            "about_to_defect",
            f"customer-with-a-long-crm-key-{i:04d}",
            0.712,
            "high",
            "threshold",
            "courier-north fixes the broken delivery_days promise and apologises in person",
            WHY,
            f"sig-{i:040d}",
        ]
        for i in range(n)
    ]


def test_signals_at_80_columns_are_cards_with_every_value_whole() -> None:
    out = rendered(SIGNAL_COLUMNS, signal_rows(3), 80, title="signals", details=("why",))
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    joined = "".join(line.strip() for line in lines)
    for i in range(3):
        assert f"customer-with-a-long-crm-key-{i:04d}" in out  # ids never cut
        assert f"sig-{i:040d}" in joined.replace(" ", "")
    assert "0.712" in out and "…" not in out
    # the reasons read as words, not one word a line, and with one sign each
    why_lines = [line for line in lines if "broken_promises" in line]
    assert why_lines and len(why_lines[0].split()) >= 4
    assert "involvement -0.04" in joined and "+-" not in out


def test_a_table_that_fits_is_whole_and_wide_prints_everything() -> None:
    small = rendered(["kind", "n"], [["purchase", 3], ["delivery", 2]], 80)
    assert "purchase" in small and "kind" in small and "not shown" not in small
    wide = rendered(SIGNAL_COLUMNS, signal_rows(1), 80, wide=True, details=("why",))
    header = next(line for line in wide.splitlines() if "raised_at" in line)
    assert all(name in header for name in ("customer_id", "suggested_action", "signal_id"))


def test_too_many_short_columns_keep_the_leading_ones_and_say_which_are_hidden() -> None:
    columns = [f"column_number_{i}" for i in range(8)]
    out = rendered(columns, [[f"value-{i}" for i in range(8)]], 80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "column_number_0" in out and "value-0" in out
    assert "not shown at this width: " in out and "column_number_7" in out.split("not shown")[1]
