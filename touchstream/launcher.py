"""`touchstream worker` as a subprocess, ready when its /health says so.

One launcher for the demo, the benchmark and the end-to-end tests: the worker they run is
the one an operator runs (`python -m touchstream.cli worker`, configured by environment),
and "ready" means what a readiness probe sees (GET /health answers 200 once the worker's
partitions are assigned), not a line of its log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from touchstream.broker import free_port

READY_TIMEOUT = 90.0  # seconds: a cold start compiles nothing, but joins a group and recovers


class WorkerFailed(RuntimeError):
    """The worker exited, or did not become ready in time; the message ends with its log."""


class Worker:
    """One worker process. Its web port is the environment's `TOUCHSTREAM_WEB_PORT`, or a
    free one when that is unset or 0 (readiness needs the endpoint)."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = dict(env)
        if self.env.get("TOUCHSTREAM_WEB_PORT", "0") == "0":
            self.env["TOUCHSTREAM_WEB_PORT"] = str(free_port())
        self.port = int(self.env["TOUCHSTREAM_WEB_PORT"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "touchstream.cli", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill reaches its broker client
            )
        return self.process

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/health"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):  # 503 (HTTPError), refused, reset
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise WorkerFailed(f"worker not ready after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise WorkerFailed(f"worker exited:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a clean shutdown commits what is written), then SIGKILL of its group."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait(10)


@contextmanager
def running_worker(
    env: Mapping[str, str], log_path: Path, ready_timeout: float = READY_TIMEOUT
) -> Iterator[subprocess.Popen[bytes]]:
    """A started and ready worker for the `with` block; stopped after it."""
    worker = Worker(env, log_path)
    process = worker.start()
    try:
        worker.wait_ready(ready_timeout)
        yield process
    finally:
        worker.stop()
