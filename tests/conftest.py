from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from touchstream import native
from touchstream.broker import EmbeddedBroker

_names = itertools.count()

# Shared 2-core machines: time-based health checks and deadlines only add flakiness.
settings.register_profile(
    "touchstream", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("touchstream")


def pytest_report_header(config: pytest.Config) -> str:
    # a compiled module older than its source is never run (touchstream.native imports the
    # sources instead), so the tests always test the current code; `make test` compiles first
    return f"engine: {native.status()}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every Kafka client a test opened is closed: one left open keeps retrying against
    the stopped broker and logs tracebacks after the test summary."""
    open_clients = [t for t in threading.enumerate() if t.name.startswith("kafka-io-")]
    for thread in open_clients:
        thread.join(timeout=5)
    left = sorted(t.name for t in open_clients if t.is_alive())
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"Kafka clients left open by the tests: {left}", red=True)


@pytest.fixture(autouse=True)
def _no_logging_to_closed_streams() -> Iterator[None]:
    """A CLI run in a test configures logging onto the runner's stdout, closed after it:
    later log lines would print 'Logging error' tracebacks. Such handlers go."""
    yield
    for handler in logging.root.handlers[:]:
        if getattr(getattr(handler, "stream", None), "closed", False):
            logging.root.removeHandler(handler)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Tansu broker for the whole session; tests use their own topics."""
    for name in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)
    log_file = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log_file) as running:
        yield running


@pytest.fixture
def unique() -> str:
    """A fresh name for topics and app ids, so tests never share broker state."""
    return f"t{next(_names)}"
