"""What a newcomer meets first (issue 19): the middleware's development mode, log records that
stay when reporters are added, and source paths relative to the project root in every output
(JSON, log records, the HTML report)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from models import Author, prepared
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
import sqlaudit.flask
from sqlaudit import AuditConfig, AuditReport, ConfigError
from sqlaudit.cli.html_report import build_report
from sqlaudit.reporters import LogReporter
from sqlaudit.wsgi import WSGIAuditMiddleware

HERE = os.path.relpath(__file__).replace(os.sep, "/")


class Collect:
    """A reporter keeping every report."""

    def __init__(self) -> None:
        self.reports: list[AuditReport] = []

    def report(self, report: AuditReport) -> None:
        self.reports.append(report)


@pytest.fixture
def library(sqlite_engine: Engine) -> Iterator[Engine]:
    with prepared(sqlite_engine, authors=3) as engine:
        yield engine


def authors_app(engine: Engine) -> Flask:
    """A Flask app whose one page has an N+1 over 3 authors (below the production floors)."""
    app = Flask(__name__)

    @app.get("/authors")
    def authors() -> dict[str, Any]:
        with Session(engine) as session:
            rows = session.scalars(select(Author).order_by(Author.id))
            return {a.name: len(a.books) for a in rows}

    return app


def test_development_mode_reports_what_production_floors_hide(
    library: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The default (production floors) reports nothing for a 3-row N+1; ``mode="development"``
    reports it, in a header, in the logs and on the development page; options and an explicit
    config still win over the mode's."""
    production = authors_app(library)
    collect = Collect()
    production.wsgi_app = WSGIAuditMiddleware(production.wsgi_app, reporters=[collect])  # type: ignore[method-assign]
    response = production.test_client().get("/authors")
    assert response.json == {"author 1": 2, "author 2": 2, "author 3": 2}  # read: audit closed
    assert "X-SQL-Queries" not in response.headers
    assert [f.kind for f in collect.reports[-1].findings if f.kind == "n_plus_one"] == []

    development = authors_app(library)
    collect = Collect()
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        sqlaudit.flask.init_app(development, mode="development", reporters=[collect])
        client = development.test_client()
        response = client.get("/authors")
        assert len(response.json) == 3
    assert "n_plus_one" in response.headers["X-SQL-Queries"]
    assert response.headers["Server-Timing"].startswith("db;dur=")
    assert "n_plus_one" in {f.kind for f in collect.reports[-1].findings}
    assert any("N+1: Author.books" in r.getMessage() for r in caplog.records)  # logs kept
    assert "GET /authors" in client.get("/_sqlaudit").text

    quiet = authors_app(library)
    quiet.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
        quiet.wsgi_app, AuditConfig.for_production(), mode="development", header=False
    )
    response = quiet.test_client().get("/authors")
    assert len(response.json) == 3
    assert "X-SQL-Queries" not in response.headers
    assert "Server-Timing" in response.headers
    with pytest.raises(ConfigError, match="mode must be one of 'production', 'development'"):
        WSGIAuditMiddleware(quiet.wsgi_app, mode="dev")  # type: ignore[typeddict-item]


def test_for_development_is_the_strict_config() -> None:
    """``for_development()`` is ``AuditConfig()`` by name, overrides validated."""
    assert AuditConfig.for_development() == AuditConfig()
    assert AuditConfig.for_development(n_plus_one_min=3).n_plus_one_min == 3
    with pytest.raises(ConfigError, match="unknown AuditConfig setting"):
        AuditConfig.for_development(nplusone=3)


def test_reporters_keep_the_log_records(library: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """``reporters=[...]`` adds to ``on_finding="log"``'s records instead of replacing them;
    a LogReporter among them replaces the default one (no duplicates); ``on_finding="ignore"``
    turns the records off and still feeds the reporters."""

    def run(**options: Any) -> tuple[list[str], Collect]:
        collect = Collect()
        caplog.clear()
        reporters = [collect, *options.pop("extra", ())]
        with caplog.at_level(logging.WARNING):
            with (
                sqlaudit.audit("page", reporters=reporters, **UNTIMED, **options),
                Session(library) as session,
            ):
                for author in session.scalars(select(Author).order_by(Author.id)):
                    assert author.books
        return [r.getMessage() for r in caplog.records if r.name == "sqlaudit"], collect

    logged, collect = run()
    assert len(logged) == 1
    assert "page: N+1: Author.books" in logged[0]
    assert len(collect.reports) == 1
    logged, _ = run(extra=[LogReporter()])
    assert len(logged) == 1
    logged, collect = run(on_finding="ignore")
    assert logged == []
    assert len(collect.reports[0].findings) == 1


def test_paths_are_relative_in_json_logs_and_html(
    library: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The JSON form, the log records and the HTML report write this file as the text
    report does, relative to the working directory, never as an absolute path."""
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        with sqlaudit.audit("page", **UNTIMED) as report, Session(library) as session:
            for author in session.scalars(select(Author).order_by(Author.id)):
                assert author.books
    assert not os.path.isabs(HERE)
    data = json.dumps(report.to_dict())
    assert os.path.abspath(HERE) not in data
    assert report.to_dict()["findings"][0]["location"]["file"] == HERE
    assert {s["location"]["file"] for s in report.to_dict()["statements"]} == {HERE}
    [record] = [r for r in caplog.records if r.name == "sqlaudit"]
    assert f" at {HERE}:" in record.getMessage()
    assert os.path.abspath(HERE) not in record.getMessage()
    event = [
        {"key": "sqlaudit.finding.kind", "value": {"stringValue": "n_plus_one"}},
        {"key": "code.file.path", "value": {"stringValue": os.path.abspath(HERE)}},
        {"key": "code.line.number", "value": {"intValue": "12"}},
        {"key": "code.function.name", "value": {"stringValue": "page"}},
    ]
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "GET /authors",
        "kind": 2,
        "startTimeUnixNano": "1000",
        "endTimeUnixNano": "2000",
        "attributes": [{"key": "sqlaudit.query_count", "value": {"intValue": "4"}}],
        "events": [{"name": "sqlaudit.finding", "attributes": event}],
    }
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    page = build_report([line])
    assert f"{HERE}:12 in page()" in page
    assert os.path.abspath(HERE) not in page
