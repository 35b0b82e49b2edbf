"""Unsampled requests whose count is shown (issue 20): counted, not audited.

At ``sample_rate`` < 1 with the statement-count header or Server-Timing, an unsampled request
is counted in a counting-only scope (no records) and ended without a freeze, detectors or
reporters. The values it shows must be those a full audit of the same request shows: same
statements counted (N+1 loads, commits, executemany, a failing statement, a nested
``sqlaudit.audit`` block) on SQLite and the server databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from collect import Collect
from models import Author, prepared
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from timing import untimed
from werkzeug.test import Client

import sqlaudit
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.capture.scope import CURRENT, Scope
from sqlaudit.wsgi import WSGIAuditMiddleware

StartResponse = Callable[..., Any]
SHOWN = {"header": True, "server_timing": True}


@pytest.fixture
def seeded(engine: Engine) -> Iterator[Engine]:
    with prepared(engine, authors=3, books_each=2) as ready:
        yield ready


def work(engine: Engine, seen: list[Any]) -> None:
    """What one request does: ORM loads with an N+1, a write committed, an executemany, a
    statement that fails (caught), a nested audit block; notes the scope it ran in."""
    seen.append(CURRENT.get())
    with Session(engine) as session:
        for author in session.scalars(select(Author).order_by(Author.id)):
            _ = [book.title for book in author.books]  # N+1: one SELECT per author
        session.get(Author, 1).name = "renamed"  # type: ignore[union-attr]
        session.commit()
    with engine.begin() as connection:
        connection.execute(
            Author.__table__.update().where(Author.__table__.c.id == 1),  # type: ignore[attr-defined]
            [{"name": "a"}],
        )
        connection.execute(text("SELECT 1"))
    with engine.connect() as connection:
        with contextlib.suppress(DBAPIError):
            connection.execute(text("SELECT * FROM sqlaudit_t_missing"))
    with sqlaudit.audit("nested", on_finding="ignore"), engine.connect() as connection:
        connection.execute(text("SELECT 2"))
        connection.execute(text("SELECT 3"))


def wsgi_app(engine: Engine, seen: list[Any]) -> Callable[[dict[str, Any], StartResponse], Any]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        work(engine, seen)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def shown(headers: Any) -> tuple[str, str]:
    """The count in ``X-SQL-Queries`` (without the findings a full audit adds) and the
    statements in Server-Timing's description."""
    lowered = {name.lower(): value for name, value in headers.items()}
    count = lowered["x-sql-queries"].split(";")[0]
    timing = lowered["server-timing"]
    assert re.fullmatch(r'db;dur=\d+\.\d;desc="\d+ SQL statements?"', timing), timing
    return count, timing.split(";desc=")[1]


def test_counted_values_are_those_of_a_full_audit(seeded: Engine) -> None:
    """The same request, unsampled then audited in full: the same count in both headers,
    equal to the full report's ``query_count``; the counting scope took the statements (the
    nested audit rolled up into it) and was ended; nothing was reported for it."""
    seen: list[Any] = []
    collect = Collect()
    counted = WSGIAuditMiddleware(
        wsgi_app(seeded, seen), untimed(), sample_rate=0.0, reporters=[collect], **SHOWN
    )
    full = WSGIAuditMiddleware(
        wsgi_app(seeded, seen), untimed(), sample_rate=1.0, reporters=[collect], **SHOWN
    )
    counted_response = Client(counted).get("/authors", buffered=True)
    assert collect.reports == []  # unsampled: never reported
    full_response = Client(full).get("/authors", buffered=True)
    [report] = collect.reports
    assert report.query_count > 10
    count, statements = shown(counted_response.headers)
    assert (count, statements) == shown(full_response.headers)
    assert count == str(report.query_count)
    assert statements == f'"{report.query_count} SQL statements"'
    counting, audited = seen
    assert isinstance(counting, Scope) and counting.ended is not None
    assert counting.query_count() == report.query_count
    assert counting.records == [] and audited.ended is not None


def test_asgi_counted_values_are_those_of_a_full_audit(seeded: Engine) -> None:
    """The same through the ASGI middleware (its application calls the sync engine)."""
    seen: list[Any] = []
    responses: list[dict[str, Any]] = []
    collect = Collect()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        work(seeded, seen)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            responses.append({k.decode(): v.decode() for k, v in message["headers"]})

    for rate in (0.0, 1.0):
        middleware = ASGIAuditMiddleware(
            app, untimed(), sample_rate=rate, reporters=[collect], **SHOWN
        )
        scope = {"type": "http", "method": "GET", "path": "/authors", "headers": []}
        asyncio.run(middleware(scope, None, send))  # type: ignore[arg-type]
    [report] = collect.reports
    counted, full = (shown(headers) for headers in responses)
    assert counted == full == (str(report.query_count), f'"{report.query_count} SQL statements"')


def test_a_context_that_outlived_the_counted_request_adds_nothing(
    sqlite_engine: Engine,
) -> None:
    """A context copied inside an unsampled request (a thread or task started there) runs
    statements after the request ended: they belong to no unit, as after a full audit."""
    handle = sqlaudit.instrument(sqlite_engine)
    kept: list[contextvars.Context] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        with sqlite_engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        kept.append(contextvars.copy_context())
        start_response("200 OK", [])
        return [b"ok"]

    def later() -> Any:
        scope = CURRENT.get()
        with sqlite_engine.connect() as connection:
            connection.execute(text("SELECT 2"))
        return scope

    try:
        middleware = WSGIAuditMiddleware(app, untimed(), sample_rate=0.0, header=True)
        response = Client(middleware).get("/x", buffered=True)
        assert response.headers["X-SQL-Queries"] == "1"
        scope = kept[0].run(later)
        assert scope is not None and scope.ended is not None
        assert scope.query_count() == 1
    finally:
        handle.remove()
