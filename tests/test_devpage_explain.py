"""EXPLAIN on the development page (``explain=True``), on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from flask import Flask
from models import Author, Base, prepared
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session
from timing import Clock, untimed

import sqlaudit
from sqlaudit import AuditReport, ConfigError
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.capture import explain as explain_module
from sqlaudit.otel import OTelReporter
from sqlaudit.report import scope_of
from sqlaudit.reporters import LogReporter
from sqlaudit.wsgi import WSGIAuditMiddleware

#: A bind value: it must reach the database (EXPLAIN included) and nothing else.
CANARY = "canary-5ecr3t-7f3a"


class Peek:
    """A reporter noting, while reporters run, what the request's unit keeps for EXPLAIN."""

    def __init__(self) -> None:
        self.reports: list[AuditReport] = []
        self.kept: list[str] = []

    def report(self, report: AuditReport) -> None:
        self.reports.append(report)
        samples = scope_of(report).explain
        self.kept.append(repr(samples.by_sql) if samples is not None else "")


def make_app(engine: Engine, **options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/by-name")
    def by_name() -> str:
        # The same lookup on an unindexed column three times from one line: repeated_query.
        with engine.connect() as connection:
            for _ in range(3):
                connection.execute(
                    text("SELECT id FROM sqlaudit_t_author WHERE name = :name"), {"name": CANARY}
                ).all()
        return "ok"

    @app.get("/by-id")
    def by_id() -> str:
        # The same lookup on the primary key: repeated too, but the plan seeks.
        with engine.connect() as connection:
            for i in range(3):
                connection.execute(
                    text("SELECT id, name FROM sqlaudit_t_author WHERE id = :id"), {"id": 1 + i}
                ).all()
        return "ok"

    @app.get("/books")
    def books() -> str:
        with Session(engine) as session:
            return str(sum(len(a.books) for a in session.scalars(select(Author))))

    options.setdefault("config", untimed())
    app.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, dev_page="/_sqlaudit", on_finding="ignore", **options
    )
    return app


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine, authors=4, books_each=2) as prepared_engine:
        yield prepared_engine


def get(app: Flask, url: str) -> str:
    with app.test_client().get(url) as response:
        assert response.status_code == 200
        return response.get_data(as_text=True)


def step(html: str, number: int) -> str:
    found = re.search(
        rf'<li id="r1-s{number}" class="step[^"]*">(.*?)</details></li>', html, re.DOTALL
    )
    assert found is not None, number
    return found.group(1)


COMMANDS = {
    "sqlite": "EXPLAIN QUERY PLAN",
    "mysql": "EXPLAIN",
    "postgresql": "EXPLAIN (FORMAT JSON)",
}


def test_full_scan_shown_with_the_plan(db: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """A repeated lookup on an unindexed column gets its plan from the database that ran it,
    shown on the statement and named on the finding as a full scan of the table; the bind
    value reached the database (the request found its rows by it) and appears on no page."""
    caplog.set_level(logging.DEBUG, logger="sqlaudit")
    app = make_app(db, explain=True)
    get(app, "/by-name")
    html = get(app, "/_sqlaudit")

    dialect = db.dialect.name
    first = step(html, 1)
    assert f"<h5>{COMMANDS[dialect]} ({dialect})</h5>" in first
    assert '<p class="plan bad">full scan of sqlaudit_t_author' in first
    finding = re.search(r'<li id="r1-f\d+">.*?repeated.*?</li>', html, re.DOTALL)
    assert finding is not None
    assert "EXPLAIN: full scan of sqlaudit_t_author" in finding.group(0)
    assert CANARY not in html
    assert not [r for r in caplog.records if "EXPLAIN failed" in r.getMessage()]


def test_seek_is_not_a_full_scan(db: Engine) -> None:
    """The same repeated shape on the primary key: its plan is shown, and no full scan is
    claimed (the trap of the check above)."""
    app = make_app(db, explain=True)
    get(app, "/by-id")
    html = get(app, "/_sqlaudit")
    first = step(html, 1)
    assert '<div class="explain">' in first
    assert "full scan" not in first
    assert "EXPLAIN: no full table scan in the plan" in html
    plan = re.search(r'<div class="explain">.*?<pre>(.*?)</pre>', first, re.DOTALL)
    assert plan is not None
    expected = {
        "sqlite": "SEARCH sqlaudit_t_author USING INTEGER PRIMARY KEY",
        "mysql": "type=const",
        "postgresql": "Index Scan",
    }
    assert expected[db.dialect.name] in plan.group(1)


def test_n_plus_one_lazy_loads_are_explained_once(db: Engine) -> None:
    """An N+1's lazy loads share one shape: one plan, shown on each of them; nothing else is
    explained (the parents' query is in no explained finding)."""
    app = make_app(db, explain=True)
    with mock.patch.object(explain_module, "explain", wraps=explain_module.explain) as spy:
        get(app, "/books")
    assert spy.call_count == 1
    html = get(app, "/_sqlaudit")
    assert '<div class="explain">' not in step(html, 1)
    for number in range(2, 6):
        assert '<div class="explain">' in step(html, number)


def test_parameters_kept_for_explain_only_and_dropped(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """While reporters run, the request's unit holds the bind value for EXPLAIN (so the check
    below could fail); after the request it holds nothing. Logs, spans, the JSON report and the
    page never show it, and the EXPLAIN statements are in no audit: not the request's, not the
    enclosing test's."""
    caplog.set_level(logging.DEBUG, logger="sqlaudit")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    peek = Peek()
    reporters = [LogReporter(summary=True), OTelReporter(tracer_provider=provider), peek]
    app = make_app(db, explain=True, reporters=reporters)
    with sqlaudit.audit("test", on_finding="ignore", slow_query_ms=None) as outer:
        get(app, "/by-name")
    html = get(app, "/_sqlaudit")

    assert CANARY in peek.kept[0]  # held while the request was being reported
    (report,) = peek.reports
    assert scope_of(report).explain is None  # and let go after it
    assert report.query_count == 3
    assert outer.query_count == 3  # the EXPLAIN ran outside every audit
    assert '<p class="plan bad">full scan of sqlaudit_t_author' in html  # it did run
    outputs = {
        "page": html,
        "json": json.dumps(report.to_dict()),
        "outer json": json.dumps(outer.to_dict()),
        "text": report.render(),
        "logs": "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records),
        "spans": "\n".join(s.to_json() for s in exporter.get_finished_spans()),
    }
    assert exporter.get_finished_spans()
    for name, output in outputs.items():
        assert CANARY not in output, name


def test_explain_is_off_by_default(db: Engine) -> None:
    """Without ``explain=True`` (also in development mode) no value is kept and no plan asked."""
    peek = Peek()
    app = make_app(db, mode="development", reporters=[peek])
    with mock.patch.object(explain_module, "explain", wraps=explain_module.explain) as spy:
        get(app, "/by-name")
    html = get(app, "/_sqlaudit")
    assert spy.call_count == 0
    assert peek.kept == [""]
    assert '<div class="explain">' not in html and "EXPLAIN" not in html


def test_explain_failure_is_logged_and_shown_never_raised(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A database refusing the EXPLAIN: the request is unaffected, the page says it failed by
    the error's class only, and one warning is logged (no value in either)."""
    caplog.set_level(logging.WARNING, logger="sqlaudit")
    app = make_app(db, explain=True)
    original = explain_module._PREFIX.copy()
    with mock.patch.dict(explain_module._PREFIX, dict.fromkeys(original, "EXPLAIN NONSENSE ")):
        get(app, "/by-name")
    html = get(app, "/_sqlaudit")
    assert re.search(r"EXPLAIN failed: \w+ \(see the log\)", html)
    messages = [r.getMessage() for r in caplog.records if "EXPLAIN failed" in r.getMessage()]
    assert len(messages) == 1
    assert CANARY not in html + "\n".join(messages)


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_explain_needs_the_page(db_kind: str) -> None:
    """``explain=True`` without a development page is a configuration error at construction."""
    with pytest.raises(ConfigError, match="explain=True needs dev_page"):
        WSGIAuditMiddleware(lambda environ, start: [], explain=True)
    with pytest.raises(ConfigError, match="explain must be True or False, got 'yes'"):
        WSGIAuditMiddleware(lambda environ, start: [], dev_page="/_sqlaudit", explain="yes")


@pytest.mark.parametrize(
    ("rows", "lines", "scans"),
    [
        (
            [{"id": 2, "parent": 0, "notused": 0, "detail": "SCAN t"}],
            ["SCAN t"],
            ["t"],
        ),
        (
            [{"id": 2, "parent": 0, "notused": 0, "detail": "SCAN TABLE t"}],
            ["SCAN TABLE t"],
            ["t"],
        ),
        (
            [{"id": 2, "parent": 0, "notused": 0, "detail": "SCAN t USING COVERING INDEX ix"}],
            ["SCAN t USING COVERING INDEX ix"],
            [],
        ),
        (
            [
                {
                    "id": 3,
                    "parent": 0,
                    "notused": 0,
                    "detail": "SEARCH a USING INTEGER PRIMARY KEY (rowid=?)",
                },
                {"id": 7, "parent": 0, "notused": 0, "detail": "SCAN CONSTANT ROW"},
                {"id": 9, "parent": 7, "notused": 0, "detail": "SCAN b"},
            ],
            ["SEARCH a USING INTEGER PRIMARY KEY (rowid=?)", "SCAN CONSTANT ROW", "  SCAN b"],
            ["b"],
        ),
    ],
    ids=["scan", "old-sqlite-scan", "covering-index", "nested"],
)
def test_sqlite_plan_reading(
    rows: list[dict[str, Any]], lines: list[str], scans: list[str]
) -> None:
    """SQLite's plan rows become indented lines; a SCAN without an index is a full scan."""
    assert explain_module._sqlite(rows) == (lines, scans)


def test_postgresql_plan_keeps_no_condition() -> None:
    """PostgreSQL writes bound values into conditions: only node, relation, index, estimates
    and costs are kept."""
    document = [
        {
            "Plan": {
                "Node Type": "Nested Loop",
                "Plan Rows": 5,
                "Total Cost": 20.5,
                "Plans": [
                    {
                        "Node Type": "Seq Scan",
                        "Relation Name": "a",
                        "Plan Rows": 1000,
                        "Total Cost": 9.0,
                        "Filter": "(name = 'secret')",
                    },
                    {
                        "Node Type": "Index Scan",
                        "Relation Name": "b",
                        "Index Name": "b_pkey",
                        "Plan Rows": 1,
                        "Total Cost": 1.0,
                        "Index Cond": "(id = 42)",
                    },
                ],
            }
        }
    ]
    lines, scans = explain_module._postgresql([{"QUERY PLAN": document}])
    assert lines == [
        "Nested Loop (rows~5, cost 20.5)",
        "  Seq Scan on a (rows~1000, cost 9.0)",
        "  Index Scan on b using b_pkey (rows~1, cost 1.0)",
    ]
    assert scans == ["a (~1000 rows estimated)"]
    assert "secret" not in repr(lines) and "42" not in repr(lines)


def test_asgi_explains_with_async_drivers(async_engine: AsyncEngine) -> None:
    """Through the ASGI middleware, an engine whose driver is async (aiosqlite, psycopg async,
    aiomysql) gets its plan too: asked after the response, from the request's task."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async with async_engine.connect() as connection:
            for _ in range(3):
                result = await connection.execute(
                    text("SELECT id FROM sqlaudit_t_author WHERE name = :name"), {"name": CANARY}
                )
                result.all()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ASGIAuditMiddleware(
        app, untimed(), dev_page="/_sqlaudit", on_finding="ignore", explain=True
    )

    async def run() -> str:
        async with async_engine.begin() as connection:
            await connection.run_sync(Base.metadata.drop_all)
            await connection.run_sync(Base.metadata.create_all)
        handle = sqlaudit.instrument(async_engine)
        try:
            transport = httpx.ASGITransport(app=middleware)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                assert (await client.get("/lookup")).status_code == 200
                return (await client.get("/_sqlaudit")).text
        finally:
            handle.remove()
            async with async_engine.begin() as connection:
                await connection.run_sync(Base.metadata.drop_all)

    html = asyncio.run(run())
    dialect = async_engine.dialect.name
    assert f"<h5>{COMMANDS[dialect]} ({dialect})</h5>" in step(html, 1)
    assert "EXPLAIN: full scan of sqlaudit_t_author" in html
    assert "EXPLAIN failed" not in html
    assert CANARY not in html


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_slow_query_is_explained(db: Engine, clock: Clock) -> None:
    """A statement over ``slow_query_ms`` (the clock moves one second per row the database
    reads, through a SQLite function) gets its plan: the finding says the table was read in
    full. Only that statement is explained."""
    with db.connect() as connection:  # StaticPool: the one connection every request uses
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        dbapi.create_function("pause", 1, lambda v: clock.advance(1.0) or v)

    app = make_app(db, explain=True, config=untimed().replace(slow_query_ms=500))

    @app.get("/slow")
    def slow() -> str:
        with db.connect() as connection:
            connection.execute(
                text("SELECT id FROM sqlaudit_t_author WHERE pause(name) = :name"),
                {"name": CANARY},
            ).all()
            connection.execute(text("SELECT count(*) FROM sqlaudit_t_book")).all()
        return "ok"

    with mock.patch.object(explain_module, "explain", wraps=explain_module.explain) as spy:
        get(app, "/slow")
    assert spy.call_count == 1
    html = get(app, "/_sqlaudit")
    finding = re.search(r'<li id="r1-f\d+">.*?slow query.*?</li>', html, re.DOTALL | re.IGNORECASE)
    assert finding is not None
    assert "EXPLAIN: full scan of sqlaudit_t_author" in finding.group(0)
    assert '<p class="plan bad">full scan of sqlaudit_t_author</p>' in step(html, 1)
    assert '<div class="explain">' not in step(html, 2)
    assert CANARY not in html


def test_asgi_lists_the_request_before_its_plans(db: Engine) -> None:
    """Through the ASGI middleware the request is on the page as soon as its response is
    sent (a client reading the page then finds it); its plans follow when the database
    answered."""
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        with db.connect() as connection:
            for _ in range(3):
                connection.execute(
                    text("SELECT id FROM sqlaudit_t_author WHERE name = :name"), {"name": CANARY}
                ).all()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ASGIAuditMiddleware(
        app, untimed(), dev_page="/_sqlaudit", on_finding="ignore", explain=True
    )
    page = middleware.auditor.dev_page
    assert page is not None

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            seen.append(page.render().decode())

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/lookup", "query_string": b"", "headers": []}
    asyncio.run(middleware(scope, receive, send))
    (during,) = seen
    assert '<a href="#r1">GET /lookup</a>' in during
    assert '<div class="explain">' not in during
    after = page.render().decode()
    assert '<div class="explain">' in step(after, 1)
    assert "EXPLAIN: full scan of sqlaudit_t_author" in after
