from __future__ import annotations

from pathlib import Path

import pytest

from touchstream.inputs import parse_mapping, read_records, row_to_event
from touchstream.schemas import validate_touchpoint


def test_csv_rows_become_nested_events_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "id,cust,ts,channel,kind,expectations.0.metric,expectations.0.unit,"
        "expectations.0.promised,expectations.0.actual,expectations.0.direction,"
        "rating.scale,rating.value,attributes.region\n"
        "e1,c1,2026-01-02T03:04:05Z,web,delivery,delivery_days,days,2,3,lower_is_better,"
        "csat_5,4,north\n"
        "e2,c2,2026-01-02T03:04:05Z,app,visit,,,,,,,,\n"
    )
    mapping = parse_mapping(["id=event_id", "cust=customer_id", "ts=occurred_at"])
    records = list(read_records(path, mapping=mapping))
    assert [r.line for r in records] == [2, 3]
    first = validate_touchpoint(records[0].payload)
    assert first.expectations[0].actual == 3.0
    assert first.rating is not None and first.rating.value == 4
    assert first.attributes == {"region": "north"}
    second = validate_touchpoint(records[1].payload)
    assert second.expectations == [] and second.rating is None


def test_jsonl_keeps_line_numbers_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \n{"b": 2}\n')
    assert [(r.line, r.payload) for r in read_records(path)] == [
        (1, b'{"a": 1}'),
        (4, b'{"b": 2}'),
    ]


@pytest.mark.parametrize("pair", ["noequals", "=path", "col="])
def test_bad_mapping_is_explained(pair: str) -> None:
    with pytest.raises(ValueError, match=r"column=field\.path"):
        parse_mapping([pair])


def test_list_indices_build_lists() -> None:
    row = {"expectations.1.metric": "b", "expectations.0.metric": "a"}
    assert row_to_event(row, {}) == {"expectations": [{"metric": "a"}, {"metric": "b"}]}
