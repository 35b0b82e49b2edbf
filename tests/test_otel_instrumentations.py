"""The standard OpenTelemetry HTTP instrumentations (opentelemetry-instrumentation-asgi,
-fastapi, -starlette, -flask, -wsgi), wired as the README says: each request's findings land
on that instrumentation's SERVER span, in the request's own trace, with ``http.route`` on the
metrics where the span has it; wired the wrong way round, sqlaudit warns and stays in the
request's trace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI
from flask import Flask
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as ASGITracing
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.starlette import StarletteInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WSGITracing
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from timing import untimed
from traced import Traced, reported_on_own_span, sqlaudit_attributes, traced

import sqlaudit
import sqlaudit.flask
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.wsgi import WSGIAuditMiddleware

#: The findings of ``query_three_times`` with a budget of one statement.
KINDS = {"query_budget", "repeated_query"}
WARNING = "ended before the unit of work"


@pytest.fixture
def otel() -> Iterator[Traced]:
    with traced() as sdk:
        yield sdk


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[Engine]:
    handle = sqlaudit.instrument(sqlite_engine)
    yield sqlite_engine
    handle.remove()


def query_three_times(engine: Engine) -> None:
    with engine.connect() as connection:
        for _ in range(3):
            connection.execute(text("SELECT 1"))


def options(otel: Traced, route: str) -> dict[str, Any]:
    """Middleware options: a one-statement budget on ``route``, the SDK's reporter."""
    return {"config": untimed(), "budgets": {route: 1}, "reporters": [otel.reporter()]}


def routes_on_metrics(otel: Traced) -> set[Any]:
    return {dict(p.attributes).get("http.route") for p in otel.points("sqlaudit.unit.statements")}


def get(app: Any, path: str) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(run())


# -- ASGI -----------------------------------------------------------------------------------


def starlette_app(db: Engine) -> Starlette:
    def item(request: Request) -> JSONResponse:
        query_three_times(db)
        return JSONResponse({"id": request.path_params["item_id"]})

    return Starlette(routes=[Route("/items/{item_id}", item)])


@pytest.mark.parametrize("outside", ["tracing", "sqlaudit"])
def test_asgi_middleware_either_order(db: Engine, otel: Traced, outside: str) -> None:
    """opentelemetry-instrumentation-asgi's middleware ends its span when the last body
    message is sent, before the application returns: sqlaudit closes just before passing that
    message on, so the SERVER span carries the report whichever middleware is outside."""
    app = starlette_app(db)
    audited = options(otel, "GET /items/{item_id}")
    tracing = otel.provider
    if outside == "tracing":
        wrapped: Any = ASGITracing(ASGIAuditMiddleware(app, **audited), tracer_provider=tracing)
    else:
        wrapped = ASGIAuditMiddleware(ASGITracing(app, tracer_provider=tracing), **audited)
    assert get(wrapped, "/items/7").json() == {"id": "7"}
    server = reported_on_own_span(otel.spans(), SpanKind.SERVER, 3, KINDS)
    assert sqlaudit_attributes(server)["sqlaudit.unit"] == "GET /items/{item_id}"


def test_fastapi_instrumentor_with_add_middleware(db: Engine, otel: Traced) -> None:
    """FastAPIInstrumentor.instrument_app + the README's ``app.add_middleware``: the report is
    on the SERVER span named after the route, and the metrics carry its ``http.route``."""
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict[str, int]:
        query_three_times(db)
        return {"id": item_id}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=otel.provider)
    try:
        app.add_middleware(ASGIAuditMiddleware, **options(otel, "GET /items/{item_id}"))
        assert get(app, "/items/7").json() == {"id": 7}
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    server = reported_on_own_span(otel.spans(), SpanKind.SERVER, 3, KINDS)
    assert server.name == "GET /items/{item_id}"
    assert routes_on_metrics(otel) == {"/items/{item_id}"}


def test_fastapi_background_task_is_not_the_requests_unit(db: Engine, otel: Traced) -> None:
    """A background task runs after the response is complete, when the request's unit has
    closed: its statements are not the request's; audited as a job of its own, its report goes
    on the instrumentation's BackgroundTask span, in the request's trace."""
    app = FastAPI()
    job_reporter = otel.reporter()

    def send_mail() -> None:
        with sqlaudit.audit("send-mail", untimed(), reporters=[job_reporter]):
            query_three_times(db)

    @app.get("/signup")
    def signup(tasks: BackgroundTasks) -> dict[str, bool]:
        query_three_times(db)
        tasks.add_task(send_mail)
        return {"ok": True}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=otel.provider)
    try:
        app.add_middleware(ASGIAuditMiddleware, **options(otel, "GET /signup"))
        assert get(app, "/signup").json() == {"ok": True}
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    spans = otel.spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert sqlaudit_attributes(server)["sqlaudit.query_count"] == 3
    [background] = [s for s in spans if s.name == "BackgroundTask send_mail"]
    assert sqlaudit_attributes(background)["sqlaudit.unit"] == "send-mail"
    assert background.context is not None and server.context is not None
    assert background.context.trace_id == server.context.trace_id


@pytest.mark.parametrize("order", ["sqlaudit-first", "instrumentor-first"])
def test_starlette_instrumentor_either_order(db: Engine, otel: Traced, order: str) -> None:
    """StarletteInstrumentor.instrument_app adds the ASGI middleware with ``add_middleware``
    (outermost when added last): either order puts the report on the SERVER span, with the
    route on the metrics."""
    app = starlette_app(db)
    audited = options(otel, "GET /items/{item_id}")
    if order == "sqlaudit-first":
        app.add_middleware(ASGIAuditMiddleware, **audited)
    StarletteInstrumentor.instrument_app(app, tracer_provider=otel.provider)
    if order == "instrumentor-first":
        app.add_middleware(ASGIAuditMiddleware, **audited)
    try:
        assert get(app, "/items/7").json() == {"id": "7"}
    finally:
        StarletteInstrumentor.uninstrument_app(app)
    reported_on_own_span(otel.spans(), SpanKind.SERVER, 3, KINDS)
    assert routes_on_metrics(otel) == {"/items/{item_id}"}


# -- WSGI and Flask -------------------------------------------------------------------------


def flask_app(db: Engine) -> Flask:
    app = Flask(__name__)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        query_three_times(db)
        return {"id": item_id}

    return app


def test_flask_instrumentor_then_init_app(db: Engine, otel: Traced) -> None:
    """FlaskInstrumentor opens and ends its span in request hooks, inside ``app.wsgi_app``;
    ``sqlaudit.flask.init_app`` (after it) closes the audit in a teardown hook that Flask runs
    first: the SERVER span carries the report, the metrics its ``http.route``."""
    app = flask_app(db)
    FlaskInstrumentor().instrument_app(app, tracer_provider=otel.provider)
    sqlaudit.flask.init_app(app, **options(otel, "GET /items/<int:item_id>"))
    assert app.test_client().get("/items/7").json == {"id": 7}
    server = reported_on_own_span(otel.spans(), SpanKind.SERVER, 3, KINDS)
    assert server.name == "GET /items/<int:item_id>"
    assert routes_on_metrics(otel) == {"/items/<int:item_id>"}


def test_flask_init_app_first_warns_and_stays_in_the_trace(
    db: Engine, otel: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    """``init_app`` before ``instrument_app``: FlaskInstrumentor's teardown runs first and ends
    the span; sqlaudit warns once, naming the fix, and reports onto a child of that span in
    the request's trace (not a new trace), with the route on the metrics still."""
    app = flask_app(db)
    sqlaudit.flask.init_app(app, **options(otel, "GET /items/<int:item_id>"))
    FlaskInstrumentor().instrument_app(app, tracer_provider=otel.provider)
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        for _ in range(2):
            assert client.get("/items/7").json == {"id": 7}
    [warning] = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert "after FlaskInstrumentor().instrument_app(app)" in warning
    spans = otel.spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 2
    for server in servers:
        assert sqlaudit_attributes(server) == {}
        [child] = [s for s in spans if s.parent is not None and s.parent == server.context]
        assert sqlaudit_attributes(child)["sqlaudit.query_count"] == 3
        assert child.context is not None and server.context is not None
        assert child.context.trace_id == server.context.trace_id
    assert routes_on_metrics(otel) == {"/items/<int:item_id>"}


def test_wsgi_instrumentation_outside(db: Engine, otel: Traced) -> None:
    """opentelemetry-instrumentation-wsgi's middleware outside ``WSGIAuditMiddleware`` (as the
    README wires it): its span ends after the body, so it carries the report."""
    app = flask_app(db)
    app.wsgi_app = WSGITracing(  # type: ignore[method-assign]
        WSGIAuditMiddleware(app.wsgi_app, **options(otel, "GET /items/<int:item_id>")),
        tracer_provider=otel.provider,
    )
    assert app.test_client().get("/items/7").json == {"id": 7}
    reported_on_own_span(otel.spans(), SpanKind.SERVER, 3, KINDS)


def test_wsgi_instrumentation_inside_warns(
    db: Engine, otel: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    """Wired inside ``WSGIAuditMiddleware``, the instrumentation's span ends with the inner
    body, before the audit closes: sqlaudit warns and reports onto a child of that span."""
    app = flask_app(db)
    app.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
        WSGITracing(app.wsgi_app, tracer_provider=otel.provider),
        **options(otel, "GET /items/<int:item_id>"),
    )
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        assert app.test_client().get("/items/7").json == {"id": 7}
    assert any("OpenTelemetryMiddleware(WSGIAuditMiddleware(app))" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    spans = otel.spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    [unit] = [s for s in spans if sqlaudit_attributes(s)]
    assert unit.parent == server.context
    assert unit.kind is SpanKind.INTERNAL


def test_a_test_audit_around_a_traced_app_is_not_a_wiring_mistake(
    db: Engine, otel: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    """A unit that encloses a request (a test's own audit around an instrumented app without
    sqlaudit's middleware) is not a request: no warning, and its own span as before."""
    app = flask_app(db)
    FlaskInstrumentor().instrument_app(app, tracer_provider=otel.provider)
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        with sqlaudit.audit("test", untimed(), reporters=[otel.reporter()]):
            assert app.test_client().get("/items/7").json == {"id": 7}
    assert not [r for r in caplog.records if WARNING in r.getMessage()]
    [unit] = [s for s in otel.spans() if sqlaudit_attributes(s)]
    assert unit.name == "test" and unit.parent is None


def test_flask_instrumentor_with_the_wsgi_middleware_warns_and_stays_in_the_trace(
    db: Engine, otel: Traced, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's Flask case: ``WSGIAuditMiddleware`` around ``app.wsgi_app`` with
    FlaskInstrumentor, whose span opens and ends inside it. sqlaudit warns, pointing to
    ``sqlaudit.flask.init_app``, and its span is a child of the request's, not a new trace."""
    app = flask_app(db)
    FlaskInstrumentor().instrument_app(app, tracer_provider=otel.provider)
    app.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, **options(otel, "GET /items/<int:item_id>")
    )
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        assert app.test_client().get("/items/7").json == {"id": 7}
    assert any("sqlaudit.flask.init_app(app)" in r.getMessage() for r in caplog.records)
    spans = otel.spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER]
    [unit] = [s for s in spans if sqlaudit_attributes(s)]
    assert unit.parent == server.context
