"""deploy/ stays true: manifests parse, their settings exist, the dashboard's SQL runs."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests import histories
from touchstream.generator import generate
from touchstream.inputs import InputRecord
from touchstream.replay import replay, write_to_clickhouse
from touchstream.settings import ENV_NAMES, Settings
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.promise_alerts import judge
from touchstream.streams.churn import RiskModel
from touchstream.streams.rules import Rules

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SETTING_NAMES = {f"TOUCHSTREAM_{name.upper()}" for name in ENV_NAMES}


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def touchstream_variables(mapping: dict[str, Any]) -> set[str]:
    return {name for name in mapping if name.startswith("TOUCHSTREAM_")}


def test_compose_runs_kraft_kafka_clickhouse_grafana_and_several_workers() -> None:
    services = compose()["services"]
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server")
    plugins = services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    assert "grafana-clickhouse-datasource" in plugins
    workers = [s for name, s in services.items() if name.startswith("worker")]
    assert len(workers) >= 2
    for worker in workers:
        env = worker["environment"]
        assert env["TOUCHSTREAM_BROKER_URL"].startswith("kafka://kafka:")
        assert env["TOUCHSTREAM_CLICKHOUSE_URL"].startswith("http://")


def test_every_variable_the_manifests_set_is_a_real_setting() -> None:
    used = set()
    for name, service in compose()["services"].items():
        if name.startswith("worker"):
            used |= touchstream_variables(service["environment"])
    for doc in k8s_documents():
        if doc["kind"] == "ConfigMap":
            used |= touchstream_variables(doc["data"])
        elif doc["kind"] == "Secret":
            used |= touchstream_variables(doc["stringData"])
    assert used, "the manifests configure nothing?"
    assert used <= SETTING_NAMES, sorted(used - SETTING_NAMES)
    # and the values the pod sees (ConfigMap and Secret together) are accepted by the
    # settings themselves once the placeholder keys are replaced, and refused before
    merged: dict[str, Any] = {}
    for doc in k8s_documents():
        if doc["kind"] in ("ConfigMap", "Secret"):
            values = doc.get("data") or doc.get("stringData")
            for k, v in values.items():
                field = k.removeprefix("TOUCHSTREAM_").lower()
                merged[field] = orjson.loads(v) if v.startswith(("[", "{")) else v
    keys = [k for k in merged if k.endswith("_keys")]
    assert sorted(keys) == ["ingest_keys", "metrics_keys", "query_keys"]
    for name in keys:
        with pytest.raises(ValueError, match="placeholder"):
            Settings.model_validate({name: merged[name]})
    real = {name: [secrets.token_hex(16)] for name in keys}
    assert Settings.model_validate({**merged, **real}).exposure_problems() == []


def test_a_worker_reachable_from_other_hosts_needs_every_key() -> None:
    exposed = Settings(web_bind="0.0.0.0")
    assert len(exposed.exposure_problems()) == 3
    assert "TOUCHSTREAM_INGEST_KEYS" in exposed.exposure_problems()[0]
    assert Settings(web_bind="127.0.0.1").exposure_problems() == []
    keyed = Settings(
        web_bind="0.0.0.0",
        ingest_keys=[secrets.token_hex(16)],
        query_keys=[secrets.token_hex(16)],
        metrics_keys=[secrets.token_hex(16)],
    )
    assert keyed.exposure_problems() == []
    for weak in ("short", "change-me-too-long-enough", "my-example-key-123456"):
        with pytest.raises(ValueError):
            Settings(query_keys=[weak])


def test_kubernetes_worker_deployment_reads_its_config_and_secret() -> None:
    kinds = {doc["kind"]: doc for doc in k8s_documents()}
    assert {"Deployment", "ConfigMap", "Secret", "Service"} <= set(kinds)
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {kinds["ConfigMap"]["metadata"]["name"], kinds["Secret"]["metadata"]["name"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"  # no key needed


def test_dockerfile_copies_what_exists_and_runs_the_worker() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    root = DEPLOY.parent
    for source in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        if source != "--from=build":
            assert (root / source).exists(), source
    assert 'ENTRYPOINT ["touchstream"]' in text and 'CMD ["worker"]' in text


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = orjson.loads((DEPLOY / "grafana" / "dashboards" / "touchstream.json").read_bytes())
    return [
        (panel["title"], target["rawSql"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def grafana_to_sql(sql: str) -> str:
    """The ClickHouse datasource's macros, as Grafana expands them for a range covering the
    planted history (event time in 2026) and now (ingestion time)."""
    start, end = "toDateTime64('2000-01-01 00:00:00', 3)", "(now64(3) + INTERVAL 1 DAY)"
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= {start} AND \1 <= {end}", sql)
    sql = sql.replace("$__fromTime", start).replace("$__toTime", end)
    assert "$__" not in sql, sql
    return sql


@pytest.fixture(scope="module")
def clickhouse_with_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """The migrated schema with a few months of planted traffic and a dead letter in it."""
    planted = generate(customers=120, months=4, seed=4)[1]
    # a courier team over-committing one week: the promise alerts panel has a row
    overcommitted = [e for h in histories.deliveries_by_team(20, late_share=0.5) for e in h.events]
    ordered = sorted(planted + overcommitted, key=lambda e: e["occurred_at"])
    events = [orjson.dumps(e) for e in ordered]
    records = [InputRecord(i, raw) for i, raw in enumerate([*events, b"{broken"], 1)]
    result = replay(records, rules=Rules(), model=RiskModel(), partitions=4, source="t")
    clickhouse = ClickHouse(f"chdb://{tmp_path_factory.mktemp('deploy') / 'chdb'}")
    write_to_clickhouse(result, clickhouse, Rules().wow_margin)
    assert judge(clickhouse, Rules(), lookback_windows=None)
    yield clickhouse
    clickhouse.close()


@pytest.mark.parametrize("title,sql", dashboard_queries())
def test_every_dashboard_query_runs_against_the_migrated_schema(
    title: str, sql: str, clickhouse_with_history: ClickHouse
) -> None:
    _, rows = clickhouse_with_history.query(grafana_to_sql(sql))
    assert rows, f"{title}: no rows from a schema with history in it"
