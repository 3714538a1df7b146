"""Log lines for people (text) or for log pipelines (one JSON object a line)."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NOISY = ("aiokafka", "faust", "mode")  # per-event DEBUG records cost even when filtered


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "pid"[, "exception"]}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": os.getpid(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class CurrentStdout(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is when a record is emitted, not the one of when
    logging was configured: a CLI run inside a test runner, whose stdout is replaced and
    then closed, leaves no handler on a closed stream behind."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the CLI and for the Faust worker alike."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"touchstream": formatter},
        "handlers": {"default": {"class": f"{__name__}.CurrentStdout", "formatter": "touchstream"}},
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {
            **{name: {"level": "WARNING"} for name in NOISY},
            # kafka-python warns about its own IO thread whenever the CPU is busy
            "kafka": {"level": "ERROR"},
        },
    }
