"""``create_app()``: the Flask service, its database, the sqlaudit middleware and tracing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from flask import Flask
from opentelemetry.sdk.trace.export import SpanExporter

import sqlaudit
from flask_service.models import db, reset_schema, seed
from flask_service.telemetry import TracingMiddleware, audit_reporters, tracer_provider
from flask_service.views import views
from sqlaudit import AuditConfig
from sqlaudit.reporters import Reporter
from sqlaudit.wsgi import WSGIAuditMiddleware

__all__ = ["BUDGETS", "create_app", "middleware_options"]

#: Statement budgets per route: exact Flask rules first, then globs.
BUDGETS = {"GET /streams": 5, "GET /streams/*": 3}


def middleware_options(development: bool) -> dict[str, Any]:
    """Development: every request audited with strict thresholds, the statement count and
    finding kinds in an ``X-SQL-Queries`` header, DB time in ``Server-Timing``, the last
    requests at ``/_sqlaudit``. Production: production floors, one request in ten audited,
    nothing added to responses."""
    if development:
        return {
            "config": AuditConfig(),
            "header": True,
            "server_timing": True,
            "dev_page": "/_sqlaudit",
        }
    return {"config": AuditConfig.for_production(), "sample_rate": 0.1}


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
    db.init_app(app)
    app.register_blueprint(views)
    with app.app_context():
        reset_schema()
        seed()
        # Instrument after the schema is made: DDL and seed rows are nobody's request.
        app.extensions["sqlaudit"] = sqlaudit.instrument(db.engine)

    provider = tracer_provider(span_exporter)
    app.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        budgets=BUDGETS,
        exclude=["/health"],
        reporters=[*audit_reporters(provider), *reporters],
        **middleware_options(development),
    )
    # Outermost, so that its span is current when the audit closes and reports.
    tracer = provider.get_tracer("flask_service")
    app.wsgi_app = TracingMiddleware(app.wsgi_app, tracer)  # type: ignore[method-assign]
    return app
