"""Passwords and webhook secrets never reach a log line or an error message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import worker_env
from touchstream.broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.e2e


def test_a_clickhouse_password_stays_out_of_the_error_when_the_server_is_down(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    closed = free_port()
    env = worker_env(
        broker,
        "secrets",
        tmp_path,
        TOUCHSTREAM_CLICKHOUSE_URL=f"http://ops:Sup3r-S3cret@127.0.0.1:{closed}/touchstream",
        TOUCHSTREAM_WEBHOOKS='[{"name": "crm", "url": "http://127.0.0.1:9/x", '
        '"secret": "whsec-D0nt-Leak"}]',
        TOUCHSTREAM_LOG_LEVEL="DEBUG",
    )
    run = subprocess.run(
        [sys.executable, "-m", "touchstream.cli", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert f"127.0.0.1:{closed}" in output  # the operator learns which server failed
    assert "Sup3r-S3cret" not in output
    assert "whsec-D0nt-Leak" not in output
