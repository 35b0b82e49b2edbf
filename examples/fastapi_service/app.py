"""``create_app()``: the FastAPI service, its async engine, tracing and sqlaudit's middleware.

Tracing is OpenTelemetry's own FastAPI instrumentation (``FastAPIInstrumentor``), which wraps
the whole middleware stack: a SERVER span per request, named after its route, with
``http.route``. sqlaudit's ASGI middleware closes each request's audit just before the last
body message goes out, while that span is open: the ``sqlaudit.*`` attributes and one
``sqlaudit.finding`` event per finding land on it (``sqlaudit.asgi``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

import sqlaudit
from fastapi_service.models import drop_schema, reset_schema, seed
from fastapi_service.routes import router
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.otel import OTelReporter
from sqlaudit.reporters import LogReporter, Reporter

__all__ = ["BUDGETS", "async_url", "create_app", "middleware_options", "tracer_provider"]

#: Statement budgets per route: exact route templates first, then globs.
BUDGETS = {"GET /streams": 5, "GET /streams/*": 3}

_ASYNC_DRIVERS = {"sqlite": "aiosqlite", "mysql": "aiomysql", "mariadb": "aiomysql"}


def async_url(url: str) -> str:
    """``url`` with an asyncio driver: ``sqlite://`` -> ``sqlite+aiosqlite://``,
    ``mysql+pymysql://`` -> ``mysql+aiomysql://``; PostgreSQL's psycopg 3 is async as is."""
    parsed = make_url(url)
    driver = _ASYNC_DRIVERS.get(parsed.get_backend_name())
    if driver is not None and parsed.get_driver_name() not in ("aiosqlite", "aiomysql", "asyncmy"):
        parsed = parsed.set(drivername=f"{parsed.get_backend_name()}+{driver}")
    elif parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg2":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> AsyncEngine:
    """An async engine on ``url``; SQLite in memory is one connection shared by every task."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return create_async_engine(url, poolclass=StaticPool)
    return create_async_engine(url)


def middleware_options(development: bool) -> dict[str, Any]:
    """``mode="development"``: every request audited with strict thresholds
    (``AuditConfig.for_development()``), the statement count and finding kinds in an
    ``X-SQL-Queries`` header, DB time in ``Server-Timing``, the last requests at ``/_sqlaudit``
    with the plans (``explain=True``) of the statements behind N+1 and slow-query findings.
    Production: the production floors (``AuditConfig.for_production()``), one request in ten
    audited, nothing added to responses."""
    if development:
        return {"mode": "development", "explain": True}
    return {"mode": "production", "sample_rate": 0.1}


def tracer_provider(exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider exporting to ``exporter`` (console, in-memory, OTLP...), if any.

    A simple processor exports each span as it ends, which suits the console and the tests; a
    service exporting over the network uses ``BatchSpanProcessor`` (README, OpenTelemetry).
    """
    provider = TracerProvider()
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def create_app(
    database_url: str | None = None,
    *,
    development: bool = True,
    reporters: Sequence[Reporter] = (),
    span_exporter: SpanExporter | None = None,
) -> FastAPI:
    """The service on ``database_url`` (default: ``$DATABASE_URL``, else SQLite in memory).

    Its lifespan creates the tables afresh, seeds them, and drops them on shutdown.
    ``reporters`` are added to the default ones (log, OpenTelemetry); spans go to
    ``span_exporter`` when given.
    """
    url = async_url(database_url or os.environ.get("DATABASE_URL") or "sqlite://")
    engine = make_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await reset_schema(engine)
        async with sessions() as session:
            await seed(session)
        # Instrument after the schema is made: DDL and seed rows are nobody's request.
        handle = sqlaudit.instrument(engine)
        try:
            yield
        finally:
            handle.remove()
            await drop_schema(engine)
            await engine.dispose()

    app = FastAPI(title="sqlaudit FastAPI example", lifespan=lifespan)
    app.state.sessions = sessions
    app.include_router(router)
    provider = tracer_provider(span_exporter)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    app.add_middleware(
        ASGIAuditMiddleware,
        budgets=BUDGETS,
        exclude=["/health"],
        reporters=[LogReporter(), OTelReporter(tracer_provider=provider), *reporters],
        **middleware_options(development),
    )
    return app
