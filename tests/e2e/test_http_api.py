"""The HTTP API as documented: docs/openapi.json is current and valid, and every curl example
of docs/http-api.md, run as written against a real worker, answers the status it states
with a body the document describes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from tests.e2e.conftest import worker_env
from tests.e2e.test_clickhouse_sink import wait_for
from touchstream.broker import EmbeddedBroker, free_port
from touchstream.launcher import running_worker
from touchstream.openapi import document

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "openapi.json"
EXAMPLES = REPO / "docs" / "http-api.md"
KEYS = {
    "INGEST_KEY": "ingest-5f0c2a9e71b34d86",
    "QUERY_KEY": "query-8d41b7e2c90f3a65",
    "METRICS_KEY": "metrics-3b92e6f1d07a4c58",
}


def examples() -> list[tuple[int, str]]:
    """(status it must answer, the command) of each curl block, in the page's order."""
    blocks = re.findall(r"```bash\n# -> (\d{3})\n(curl.*?)```", EXAMPLES.read_text(), re.S)
    return [(int(status), command.strip()) for status, command in blocks]


def test_the_documented_api_is_the_served_one_and_valid_openapi() -> None:
    assert json.loads(DOC.read_text()) == document(), "stale: `make schemas` rewrites it"
    validate(document())


def _answer_schema(method: str, path: str, status: int) -> dict | None:
    """The documented JSON body of that answer (None: not JSON), refs resolved in place."""
    doc = document()
    answer = doc["paths"][path][method]["responses"][str(status)]  # KeyError: undocumented
    content = answer.get("content", {}).get("application/json")
    return None if content is None else {**content["schema"], "components": doc["components"]}


@pytest.mark.e2e
def test_every_curl_example_answers_as_documented(
    broker: EmbeddedBroker, unique: str, tmp_path: Path
) -> None:
    assert shutil.which("curl"), "the examples need curl (`make test` installs it)"
    runs = examples()
    assert len(runs) >= 10 and {s for s, _ in runs} >= {200, 202, 401, 403}
    port = free_port()
    env = worker_env(
        broker,
        unique,
        tmp_path,
        TOUCHSTREAM_WEB_PORT=str(port),
        TOUCHSTREAM_INGEST_KEYS=json.dumps([KEYS["INGEST_KEY"]]),
        TOUCHSTREAM_QUERY_KEYS=json.dumps([KEYS["QUERY_KEY"]]),
        TOUCHSTREAM_METRICS_KEYS=json.dumps([KEYS["METRICS_KEY"]]),
    )
    shell = {"PATH": os.environ["PATH"], "TOUCHSTREAM_URL": f"http://127.0.0.1:{port}", **KEYS}
    answers: dict[str, object] = {}
    with running_worker(env, tmp_path / "worker.log"):
        for index, (status, command) in enumerate(runs):
            if "/v1/query" in command and "ingested" not in answers:
                # the ingested events are in ClickHouse before the first query asks for them
                answers["ingested"] = wait_for(
                    port, "SELECT count() FROM touchpoints", 2, api_key=KEYS["QUERY_KEY"]
                )
            done = subprocess.run(
                ["bash", "-c", command + " -w '\\n%{http_code}'"],
                env=shell,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"example {index}: {done.stderr}"
            body, _, code = done.stdout.rpartition("\n")
            assert int(code) == status, f"example {index} answered {code}: {body[:500]}"
            path = re.search(r"\$TOUCHSTREAM_URL(/[\w./]+)", command)[1]  # type: ignore[index]
            method = "post" if "--data" in command else "get"
            schema = _answer_schema(method, path, status)
            if schema is not None:
                Draft202012Validator(schema).validate(json.loads(body))
            answers[f"{index} {method} {path}"] = json.loads(body) if schema else body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json") as served:
            assert json.loads(served.read()) == document()

    print(json.dumps(answers, indent=1, default=str)[:6000])
    print((tmp_path / "worker.log").read_text()[-4000:])
    assert answers["ingested"] == 2  # the NDJSON's unknown channel is not among them
    assert answers["0 post /v1/touchpoints"] == {"accepted": 1, "rejected": []}
    ingest = answers["1 post /v1/touchpoints"]
    assert ingest["accepted"] == 1 and ingest["rejected"][0]["errors"][0]["loc"] == "channel"
    by_customer = answers["4 post /v1/query"]
    assert sorted(row[0] for row in by_customer["rows"]) == ["ord-1001-delivered", "web-77"]
    assert "file" in answers["5 post /v1/query"]["error"]
    assert "touchstream_events_total" in answers["8 get /metrics"]
