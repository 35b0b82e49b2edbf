"""``create_app()``: the Flask service, its database, tracing and sqlaudit.

Tracing is OpenTelemetry's own Flask instrumentation (``FlaskInstrumentor``): a SERVER span per
request, named after its rule, with ``http.route``. sqlaudit's Flask integration is installed
after it, so that its teardown hook, which closes each request's audit, runs while that span is
still open: the ``sqlaudit.*`` attributes and one ``sqlaudit.finding`` event per finding land on
it (``sqlaudit.flask``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

import sqlaudit
import sqlaudit.flask
from flask_service.models import db, reset_schema, seed
from flask_service.views import views
from sqlaudit.otel import OTelReporter
from sqlaudit.reporters import LogReporter, Reporter

__all__ = ["BUDGETS", "create_app", "middleware_options", "tracer_provider"]

#: Statement budgets per route: exact Flask rules first, then globs.
BUDGETS = {"GET /streams": 5, "GET /streams/*": 3}


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
) -> Flask:
    """The service on ``database_url`` (default: ``$DATABASE_URL``, else SQLite in memory).

    The tables are created afresh and seeded. ``reporters`` are added to the default ones
    (log, OpenTelemetry); spans go to ``span_exporter`` when given.
    """
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = (
        database_url or os.environ.get("DATABASE_URL") or "sqlite://"
    )
    # One line for every engine (and bind) Flask-SQLAlchemy makes, now or in init_app below;
    # idempotent, so an app factory called per test may call it each time.
    app.extensions["sqlaudit"] = sqlaudit.instrument(db)
    db.init_app(app)
    app.register_blueprint(views)
    with app.app_context():
        reset_schema()  # instrumented, but outside any request: nobody's unit of work
        seed()

    provider = tracer_provider(span_exporter)
    # The standard instrumentation first, then sqlaudit: Flask runs teardown hooks in reverse
    # order of registration, so sqlaudit reports before FlaskInstrumentor ends its span.
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    sqlaudit.flask.init_app(
        app,
        budgets=BUDGETS,
        exclude=["/health"],
        reporters=[LogReporter(), OTelReporter(tracer_provider=provider), *reporters],
        **middleware_options(development),
    )
    return app
