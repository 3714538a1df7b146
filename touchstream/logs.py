"""Log lines for people (text) or for log pipelines (one JSON object a line)."""

from __future__ import annotations

import logging
import os
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


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the CLI and for the Faust worker alike."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"touchstream": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "touchstream",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {
            **{name: {"level": "WARNING"} for name in NOISY},
            # kafka-python warns about its own IO thread whenever the CPU is busy
            "kafka": {"level": "ERROR"},
        },
    }
