from __future__ import annotations

import os
from pathlib import Path

from touchstream.broker import EmbeddedBroker


def worker_env(broker: EmbeddedBroker, name: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Settings of one isolated worker: its own app id, output topics and data dir."""
    env = {
        **os.environ,
        "TOUCHSTREAM_BROKER_URL": broker.url,
        "TOUCHSTREAM_APP_ID": f"app-{name}",
        "TOUCHSTREAM_TOPIC_TOUCHPOINTS": f"{name}-touchpoints",
        "TOUCHSTREAM_TOPIC_DEAD_LETTERS": f"{name}-dead",
        "TOUCHSTREAM_TOPIC_METRICS": f"{name}-metrics",
        "TOUCHSTREAM_TOPIC_SIGNALS": f"{name}-signals",
        "TOUCHSTREAM_TOPIC_PROMISE_ALERTS": f"{name}-promise-alerts",
        "TOUCHSTREAM_TOPIC_IDENTIFY": f"{name}-identify",
        "TOUCHSTREAM_TOPIC_IDENTITY": f"{name}-identity",
        "TOUCHSTREAM_PARTITIONS": "4",
        "TOUCHSTREAM_WEB_PORT": "0",
        "TOUCHSTREAM_DATA_DIR": str(data_dir),
        "TOUCHSTREAM_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
        "TOUCHSTREAM_LOG_LEVEL": "INFO",
        "TOUCHSTREAM_WOW_CHECK_SECONDS": "1",
    }
    env.update(extra)
    return env
