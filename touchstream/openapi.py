"""The worker's HTTP API as an OpenAPI 3.1 document: served at GET /openapi.json and kept in
docs/openapi.json (`touchstream schema openapi`; a test fails when the copy is stale, and
checks real answers of a running worker against it).

The request and answer bodies are declared here as pydantic models, beside the touchpoint
wire model, so the document is generated, not written by hand.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from touchstream import __version__
from touchstream.schemas import FieldError, TouchpointEvent

REF = "#/components/schemas/{model}"
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rejected(_Body):
    """One item of an ingest request that was not accepted; it is kept as a dead letter."""

    index: int = Field(description="Position of the item in the request, from 0.")
    kind: str = Field(description="invalid_json, invalid_event, too_large, ...")
    reason: str
    errors: list[FieldError]


class IngestAnswer(_Body):
    accepted: int = Field(description="Items validated, produced and acknowledged by the broker.")
    rejected: list[Rejected]


class QueryRequest(_Body):
    sql: str = Field(description="One read-only SELECT over touchstream's tables.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values of {name:Type} placeholders in `sql`."
    )
    max_rows: int | None = Field(
        default=None, ge=1, description="At most TOUCHSTREAM_QUERY_MAX_ROWS (the default)."
    )


class QueryResult(_Body):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="More rows matched than were returned.")


class Identity(_Body):
    app_id: str
    clickhouse: str = Field(description="The ClickHouse target, its password redacted.")
    owner: str | None = Field(description="Token proving the worker owns its chDB directory.")


class Health(_Body):
    ready: bool = Field(description="Partitions assigned: the worker is processing.")


class Error(_Body):
    error: str


MODELS: tuple[type[BaseModel], ...] = (
    TouchpointEvent,
    IngestAnswer,
    QueryRequest,
    QueryResult,
    Identity,
    Health,
    Error,
)


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    schema = {"$ref": REF.format(model=model.__name__)}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(Error, description)


UNAUTHORIZED = _error("No key, or not one of the endpoint's keys.")


def document() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in MODELS], ref_template=REF
    )
    event = {"$ref": REF.format(model="TouchpointEvent")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "touchstream worker",
            "version": __version__,
            "description": "Ingest touchpoints, read-only queries over the stored metrics and "
            "signals, health and metrics. Every endpoint but /health and /openapi.json takes "
            "`Authorization: Bearer KEY` with a key of its own scope (TOUCHSTREAM_INGEST_KEYS, "
            "_QUERY_KEYS, _METRICS_KEYS); with no keys set it is open, which the worker only "
            "allows on a loopback address.",
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/touchpoints": {
                "post": {
                    "summary": "Ingest touchpoints",
                    "description": "One event, a JSON array of events, or NDJSON (one event a "
                    "line). Valid events are produced to the touchpoints topic, keyed by "
                    "customer, and acknowledged by the broker before the answer; invalid ones "
                    "are answered with their errors and kept as dead letters.",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [event, {"type": "array", "items": event}]}
                            },
                            "application/x-ndjson": {
                                "schema": {"type": "string", "description": "One event a line."}
                            },
                        },
                    },
                    "responses": {
                        "202": _json(IngestAnswer, "Accepted and rejected items."),
                        "400": _error("Empty body."),
                        "401": UNAUTHORIZED,
                        "413": _error("Body over TOUCHSTREAM_INGEST_MAX_BODY_BYTES."),
                        "429": {
                            **_error("Too many events in flight; retry after Retry-After."),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                }
            },
            "/v1/query": {
                "post": {
                    "summary": "Read-only SQL over touchstream's tables",
                    "description": "One SELECT, checked against the policy (our tables only, "
                    "no table functions, no system tables, no SETTINGS clause), bounded in "
                    "rows, memory and time.",
                    "security": BEARER,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="QueryRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(QueryResult, "The rows, at most max_rows."),
                        "400": _error("Malformed body, or ClickHouse refused the statement."),
                        "401": UNAUTHORIZED,
                        "403": _error("The policy refused the statement, and says why."),
                        "503": _error("ClickHouse is unavailable."),
                    },
                }
            },
            "/v1/identity": {
                "get": {
                    "summary": "Which app and ClickHouse this worker serves",
                    "description": "What the CLI asks before it sends a query to a worker.",
                    "security": BEARER,
                    "responses": {
                        "200": _json(Identity, "The app id, target and owner token."),
                        "401": UNAUTHORIZED,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Readiness, for probes",
                    "responses": {
                        "200": _json(Health, "Processing."),
                        "503": _json(Health, "Not yet assigned partitions."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (no customer data)",
                    "security": BEARER,
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": UNAUTHORIZED,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
    }


def attach_openapi(app: Any) -> None:
    """GET /openapi.json: the API's shape, no data, so no key."""
    import faust

    body = document()

    @app.page("/openapi.json")
    class OpenAPI(faust.web.View):
        async def get(self, request: Any) -> Any:
            return self.json(body)
