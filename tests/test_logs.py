"""Log lines: JSON for pipelines, one object a line, with the exception when there is one."""

from __future__ import annotations

import logging
import sys

import orjson

from touchstream.logs import JsonFormatter, logging_config


def test_json_lines_carry_time_level_logger_message_and_exception() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "touchstream.worker", logging.INFO, __file__, 1, "%d events", (5,), None
    )
    line = orjson.loads(formatter.format(record))
    assert line["message"] == "5 events"
    assert line["level"] == "INFO" and line["logger"] == "touchstream.worker"
    assert line["ts"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in orjson.loads(formatter.format(failed))["exception"]


def test_config_quietens_the_per_event_loggers_in_both_formats() -> None:
    for fmt in ("text", "json"):
        config = logging_config("debug", fmt)
        assert config["root"]["level"] == "DEBUG"
        assert config["loggers"]["faust"]["level"] == "WARNING"
    assert "()" in logging_config("info", "json")["formatters"]["touchstream"]
