from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
        "TOUCHSTREAM_PARTITIONS": "4",
        "TOUCHSTREAM_WEB_PORT": "0",
        "TOUCHSTREAM_DATA_DIR": str(data_dir),
        "TOUCHSTREAM_CONSUMER_SESSION_TIMEOUT_SECONDS": "6",
        "TOUCHSTREAM_LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


@contextmanager
def running_worker(
    env: dict[str, str], log_file: Path, ready_timeout: float = 90.0
) -> Iterator[subprocess.Popen[bytes]]:
    """`touchstream worker` as a real subprocess; ready once its partitions are assigned."""
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "touchstream.cli", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while "assigned: [" not in log_file.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log_file.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
