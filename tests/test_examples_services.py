"""The example services (examples/flask_service, examples/fastapi_service) through their real
test clients, on SQLite, MariaDB and PostgreSQL: the planted problems are found, the fixed
endpoints are clean, streamed statements are counted, spans carry the reports."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from collect import Collect
from databases import Kind, resolve_url
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from timing import kinds

from sqlaudit import AuditReport
from sqlaudit.capture.scope import CURRENT

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]


def example(name: str) -> ModuleType:
    """``create_app``'s module of an example, imported from ``examples/``."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(f"{name}.app")
    finally:
        sys.path.remove(str(EXAMPLES))


def problems(report: AuditReport) -> set[str]:
    """Finding kinds at warning or above (servers add informational ones, e.g. about
    transaction round trips, that these examples do not plant), timing kinds left out: the
    examples choose their own thresholds."""
    return set(kinds(report))


def span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The latest SERVER span ``name`` (made by the framework's OpenTelemetry instrumentation),
    checked to carry sqlaudit's attributes with no other span of its trace doing so."""
    server = [s for s in exporter.get_finished_spans() if s.name == name][-1]
    assert server.kind is SpanKind.SERVER
    assert server.context is not None
    trace_spans = [
        s
        for s in exporter.get_finished_spans()
        if s.context is not None and s.context.trace_id == server.context.trace_id
    ]
    carrying = [s for s in trace_spans if "sqlaudit.unit" in (s.attributes or {})]
    assert carrying == [server]
    return server


def url_for(kind: Kind) -> str:
    return "sqlite://" if kind == "sqlite" else resolve_url(kind)


@pytest.fixture(params=KINDS, ids=KINDS)
def flask_service(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Any, Collect, InMemorySpanExporter]]:
    """The Flask example on each database, development settings, with a collecting reporter
    and an in-memory span exporter; its tables are dropped afterwards."""
    url = url_for(request.param)
    module = example("flask_service")
    collect = Collect()
    exporter = InMemorySpanExporter()
    app = module.create_app(url, reporters=[collect], span_exporter=exporter)
    try:
        yield app, collect, exporter
    finally:
        app.extensions["sqlaudit"].remove()
        with app.app_context():
            from flask_service.models import db, drop_schema

            drop_schema()
            db.engine.dispose()


def test_flask_service_findings_through_its_test_client(
    flask_service: tuple[Any, Collect, InMemorySpanExporter],
) -> None:
    """Flask's test client: the planted N+1 and write loop are found and named after their
    Flask rules, the fixed endpoint is clean, the streamed export's statements count, the
    health check is not audited, each span carries its report."""
    app, collect, exporter = flask_service
    client = app.test_client()

    planted = client.get("/streams")
    assert planted.status_code == 200
    assert len(planted.json) == 6
    assert planted.headers["X-SQL-Queries"].startswith("7; findings=")
    assert {"n_plus_one", "query_budget"} <= set(
        planted.headers["X-SQL-Queries"].split('"')[1].split()
    )
    report = collect.last("GET /streams")
    assert report.query_count == 7
    assert problems(report) == {"n_plus_one", "query_budget"}
    [n_plus_one] = [f for f in report.findings if f.kind == "n_plus_one"]
    assert n_plus_one.relationship == "Stream.streamer"
    assert n_plus_one.count == 6

    fixed = client.get("/streams/eager")
    assert fixed.json == planted.json
    assert collect.last("GET /streams/eager").query_count == 1
    assert problems(collect.last("GET /streams/eager")) == set()

    one = client.get("/streams/4")
    assert one.json["comments"] == ["first!", "gg"]
    assert problems(collect.last("GET /streams/<int:stream_id>")) == set()

    posted = client.post("/streams/2/comments", json={"bodies": list("abcdef")})
    assert posted.status_code == 201
    assert posted.json == {"added": 6}  # reading the body ends the request's audit
    report = collect.last("POST /streams/<int:stream_id>/comments")
    assert report.counts["insert"] == 6
    assert problems(report) == {"write_loop"}

    export = client.get("/export.csv")
    assert export.text.count("\n") == 7
    assert export.headers["X-SQL-Queries"].startswith("0;")  # sent before the body queried
    assert collect.last("GET /export.csv").query_count == 2

    health = client.get("/health")
    assert health.text == "ok"
    assert "X-SQL-Queries" not in health.headers
    assert [r for r in collect.reports if "health" in r.name] == []

    traced = span(exporter, "GET /streams")
    assert traced.attributes is not None
    assert traced.attributes["sqlaudit.query_count"] == 7
    assert traced.attributes["http.route"] == "/streams"
    assert {"n_plus_one", "query_budget"} <= set(traced.attributes["sqlaudit.finding_kinds"])
    assert [e.name for e in traced.events].count("sqlaudit.finding") >= 2
    assert span(exporter, "GET /streams/<int:stream_id>").attributes is not None
    # Flask ends the request (and FlaskInstrumentor its span) before a streamed body runs: the
    # export's report is on a child of its SERVER span, in its trace.
    [server] = [s for s in exporter.get_finished_spans() if s.name == "GET /export.csv"
                and s.kind is SpanKind.SERVER]  # fmt: skip
    [child] = [s for s in exporter.get_finished_spans() if s.parent == server.context]
    assert child.attributes is not None
    assert child.attributes["sqlaudit.query_count"] == 2

    page = client.get("/_sqlaudit")
    assert "GET /streams/&lt;int:stream_id&gt;" in page.text
    assert CURRENT.get() is None


def test_flask_service_production_settings_add_nothing_to_responses() -> None:
    """Production settings: same responses, no header, no development page."""
    module = example("flask_service")
    app = module.create_app("sqlite://", development=False)
    try:
        client = app.test_client()
        response = client.get("/streams")
        assert response.status_code == 200
        assert "X-SQL-Queries" not in response.headers
        assert "Server-Timing" not in response.headers
        assert client.get("/_sqlaudit").status_code == 404
    finally:
        app.extensions["sqlaudit"].remove()


async def drive_fastapi(app: Any) -> dict[str, httpx.Response]:
    """Run the app's lifespan and send the example's requests through httpx."""
    responses: dict[str, httpx.Response] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
            for path in ("/streams", "/streams/eager", "/streams/4", "/export.csv", "/health"):
                responses[path] = await http.get(path)
            responses["POST"] = await http.post(
                "/streams/2/comments", json={"bodies": list("abcdef")}
            )
            responses["/_sqlaudit"] = await http.get("/_sqlaudit")
    return responses


@pytest.mark.parametrize("kind", KINDS)
def test_fastapi_service_findings_through_httpx(kind: Kind) -> None:
    """httpx's ASGI client: the async service's planted N+1 (awaited lazy loads) and write
    loop are found and named after their route templates, the fixed endpoint is clean, the
    StreamingResponse's statements count, each span carries its report."""
    if kind == "mysql" and importlib.util.find_spec("aiomysql") is None:
        pytest.skip("the async MariaDB driver aiomysql is not installed")
    module = example("fastapi_service")
    collect = Collect()
    exporter = InMemorySpanExporter()
    app = module.create_app(url_for(kind), reporters=[collect], span_exporter=exporter)
    try:
        responses = asyncio.run(drive_fastapi(app))
    finally:
        # FastAPIInstrumentor also patches Starlette's BackgroundTask for the whole process.
        FastAPIInstrumentor.uninstrument_app(app)

    planted = responses["/streams"]
    assert len(planted.json()) == 6
    assert planted.headers["x-sql-queries"].startswith("7; findings=")
    report = collect.last("GET /streams")
    assert report.query_count == 7
    assert problems(report) == {"n_plus_one", "query_budget"}
    [n_plus_one] = [f for f in report.findings if f.kind == "n_plus_one"]
    assert n_plus_one.relationship == "Stream.streamer"

    assert responses["/streams/eager"].json() == planted.json()
    assert collect.last("GET /streams/eager").query_count == 1
    assert problems(collect.last("GET /streams/eager")) == set()
    assert responses["/streams/4"].json()["comments"] == ["first!", "gg"]
    assert problems(collect.last("GET /streams/{stream_id}")) == set()

    assert responses["POST"].status_code == 201
    report = collect.last("POST /streams/{stream_id}/comments")
    assert report.counts["insert"] == 6
    assert problems(report) == {"write_loop"}

    assert responses["/export.csv"].text.count("\n") == 7
    assert responses["/export.csv"].headers["x-sql-queries"].startswith("0;")
    assert collect.last("GET /export.csv").query_count == 2

    assert "x-sql-queries" not in responses["/health"].headers
    assert [r for r in collect.reports if "health" in r.name] == []

    traced = span(exporter, "GET /streams")
    assert traced.attributes is not None
    assert traced.attributes["sqlaudit.query_count"] == 7
    assert traced.attributes["http.route"] == "/streams"
    assert {"n_plus_one", "query_budget"} <= set(traced.attributes["sqlaudit.finding_kinds"])
    assert span(exporter, "GET /export.csv").attributes["sqlaudit.query_count"] == 2  # type: ignore[index]
    assert "GET /streams/{stream_id}" in responses["/_sqlaudit"].text


def test_fastapi_async_url_maps_sync_urls_to_asyncio_drivers() -> None:
    """The example runs on the URL a user has: sync drivers become their asyncio peers."""
    async_url = example("fastapi_service").async_url
    assert async_url("sqlite://") == "sqlite+aiosqlite://"
    assert async_url("mysql+pymysql://root@db:3306/test") == "mysql+aiomysql://root@db:3306/test"
    assert async_url("postgresql+psycopg://u:p@db/test") == "postgresql+psycopg://u:p@db/test"
