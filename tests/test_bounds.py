"""Memory and time bounds: what a long-running service or a huge test keeps, measured.

* 10,000 requests through ``WSGIAuditMiddleware`` and 3,000 through ``ASGIAuditMiddleware``
  (two statements each, a finding each, header, Server-Timing and the development page on):
  after a warm-up of 500 requests, the memory still allocated (``tracemalloc``) grows by
  less than a per-request leak of ~20 bytes would add, and every report is exact.
* Engines are held weakly: a sync ``Engine`` and an ``AsyncEngine`` (aiosqlite) that ran
  audited Core and ORM statements are garbage-collected once the application drops them,
  whether or not ``remove()`` was called, while their reports and handles are still alive,
  and sqlaudit's engine registry and ORM listeners let go of them.
* Instrumenting and removing one live engine many times keeps memory bounded (expected to
  fail for now: ``instrument()`` leaves a ``weakref.finalize`` behind per call).
* 1,000,000 statements in one audit keep ``max_records`` records, count the rest, and do not
  grow the number of allocated memory blocks once the cap is reached.

Measured on the 2-core development machine (SQLAlchemy 2.1.9, Python 3.11; run with ``-s``
to see the figures): WSGI, 9,500 requests after the warm-up: +7.7 to +8.9 KB (17 to 18 s
under tracemalloc, 3.7 s without); ASGI, 2,500 requests: +15.5 KB (10 to 11 s); with a
50-byte leak injected per request the same tests measured +564 KB and +248 KB and failed.
1,000,000 statements: 9 s, -77 memory blocks past the cap (a one-object-per-statement leak
injected: +899,923).
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import tracemalloc
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import pytest
from collect import every_output
from models import Author, Base, seed
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from timing import UNTIMED

import sqlaudit
from sqlaudit import AuditConfig, AuditReport
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.capture import claims as _claims
from sqlaudit.capture import instrumentation as _capture
from sqlaudit.capture.scope import CURRENT, FALLBACK
from sqlaudit.report import scope_of
from sqlaudit.wsgi import WSGIAuditMiddleware

WARM_UP = 500
WSGI_REQUESTS = 10_000
ASGI_REQUESTS = 3_000
#: Allowed growth after the warm-up: 9,500 WSGI requests (21 bytes each) and 2,500 ASGI
#: requests (40 bytes each). A leak of 50 bytes per request exceeds both.
WSGI_GROWTH_LIMIT = 200_000
ASGI_GROWTH_LIMIT = 100_000
STATEMENTS_PER_REQUEST = 2
AUTHORS = 5

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


class Tally:
    """A reporter that keeps counts, never the reports (it must not be the leak itself)."""

    def __init__(self) -> None:
        self.reports = 0
        self.statements = 0
        self.counts: set[int] = set()
        self.kinds: set[str] = set()

    def report(self, report: AuditReport) -> None:
        self.reports += 1
        self.statements += report.query_count
        self.counts.add(report.query_count)
        self.kinds.update(f.kind for f in report.findings)


def seeded_sqlite() -> Engine:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session, authors=AUTHORS)
    return engine


def author_id(path: str) -> int:
    return int(path.rsplit("/", 1)[1])


class Growth:
    """Memory still allocated (``tracemalloc``) at the end beyond what it was at ``mark()``.

    Tracing starts before the warm-up, so objects made then and freed later count as freed.
    """

    def __init__(self) -> None:
        self.before = 0
        self.bytes = 0
        self.top = ""
        self._snapshot: tracemalloc.Snapshot | None = None

    def __enter__(self) -> Growth:
        tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        tracemalloc.stop()

    def mark(self) -> None:
        gc.collect()
        self._snapshot = tracemalloc.take_snapshot()
        self.before = tracemalloc.get_traced_memory()[0]

    def measure(self) -> None:
        gc.collect()
        self.bytes = tracemalloc.get_traced_memory()[0] - self.before
        assert self._snapshot is not None
        diff = tracemalloc.take_snapshot().compare_to(self._snapshot, "lineno")
        self.top = "\n".join(str(stat) for stat in diff[:8])


@pytest.mark.heavy
def test_wsgi_10000_requests_memory_bounded() -> None:
    """10,000 requests through ``WSGIAuditMiddleware`` on a SQLite app (one Core and one ORM
    statement each, a ``query_budget`` finding each): every report is exact, and memory still
    allocated after the last 9,500 requests grew by less than 200 KB."""
    engine = seeded_sqlite()
    handle = sqlaudit.instrument(engine)
    tally = Tally()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        ident = author_id(environ["PATH_INFO"])
        with engine.connect() as conn:
            conn.execute(select(Author.name).where(Author.id == ident)).one()
        with Session(engine) as session:
            assert session.get(Author, ident) is not None
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = WSGIAuditMiddleware(app, **every_output({"GET /authors/{id}": 1}, tally))
    headers: list[str] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> Any:
        assert status == "200 OK"
        headers[:] = [v for k, v in response_headers if k == "X-SQL-Queries"]
        return None

    def run(first: int, last: int) -> None:
        for i in range(first, last):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/authors/{i % AUTHORS + 1}"}
            body = middleware(environ, start_response)
            assert b"".join(body) == b"ok"
            body.close()  # type: ignore[attr-defined]  # the audited body has close() (PEP 3333)
            assert headers == ['2; findings="query_budget"'], i

    started = time.perf_counter()
    try:
        with Growth() as growth:
            run(0, WARM_UP)
            growth.mark()
            run(WARM_UP, WSGI_REQUESTS)
            growth.measure()
    finally:
        handle.remove()
        engine.dispose()
    elapsed = time.perf_counter() - started
    assert tally.reports == WSGI_REQUESTS
    assert tally.counts == {STATEMENTS_PER_REQUEST}
    assert tally.statements == STATEMENTS_PER_REQUEST * WSGI_REQUESTS
    assert tally.kinds == {"query_budget"}
    assert middleware.auditor.dev_page is not None
    assert len(middleware.auditor.dev_page.entries()) == 50
    assert CURRENT.get() is None and FALLBACK == []
    print(f"\nWSGI: {WSGI_REQUESTS} requests in {elapsed:.1f} s, +{growth.bytes} bytes")
    assert growth.bytes < WSGI_GROWTH_LIMIT, f"+{growth.bytes} bytes, by line:\n{growth.top}"


async def seeded_async_engine() -> AsyncEngine:
    """An aiosqlite engine in memory with the test models and ``AUTHORS`` authors."""
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session:
        await session.run_sync(lambda s: seed(s, authors=AUTHORS))
    return engine


@pytest.mark.heavy
def test_asgi_3000_requests_memory_bounded() -> None:
    """3,000 requests through ``ASGIAuditMiddleware`` on an aiosqlite app (one Core and one
    ORM statement each, through SQLAlchemy's greenlet bridge): every report is exact, and
    memory still allocated after the last 2,500 requests grew by less than 100 KB."""
    tally = Tally()
    headers: list[bytes] = []

    async def main() -> tuple[Growth, float]:
        engine = await seeded_async_engine()
        handle = sqlaudit.instrument(engine)

        async def app(
            scope: Scope,
            receive: Callable[[], Awaitable[Message]],
            send: Callable[[Message], Awaitable[None]],
        ) -> None:
            ident = author_id(scope["path"])
            async with engine.connect() as conn:
                (await conn.execute(select(Author.name).where(Author.id == ident))).one()
            async with AsyncSession(engine) as session:
                assert await session.get(Author, ident) is not None
            start = {"type": "http.response.start", "status": 200, "headers": []}
            await send(start)
            await send({"type": "http.response.body", "body": b"ok"})

        middleware = ASGIAuditMiddleware(app, **every_output({"GET /authors/{id}": 1}, tally))

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers[:] = [v for k, v in message["headers"] if k == b"x-sql-queries"]

        async def requests(first: int, last: int) -> None:
            for i in range(first, last):
                scope = {
                    "type": "http",
                    "method": "GET",
                    "path": f"/authors/{i % AUTHORS + 1}",
                    "headers": [],
                }
                await middleware(scope, receive, send)
                assert headers == [b'2; findings="query_budget"'], i

        started = time.perf_counter()
        try:
            with Growth() as growth:
                await requests(0, WARM_UP)
                growth.mark()
                await requests(WARM_UP, ASGI_REQUESTS)
                growth.measure()
        finally:
            handle.remove()
            await engine.dispose()
        return growth, time.perf_counter() - started

    growth, elapsed = asyncio.run(main())
    assert tally.reports == ASGI_REQUESTS
    assert tally.counts == {STATEMENTS_PER_REQUEST}
    assert tally.statements == STATEMENTS_PER_REQUEST * ASGI_REQUESTS
    assert tally.kinds == {"query_budget"}
    print(f"\nASGI: {ASGI_REQUESTS} requests in {elapsed:.1f} s, +{growth.bytes} bytes")
    assert growth.bytes < ASGI_GROWTH_LIMIT, f"+{growth.bytes} bytes, by line:\n{growth.top}"


# -- engines are held weakly ---------------------------------------------------------------


def audited_work(engine: Engine) -> AuditReport:
    """Core and ORM statements (a lazy load included) in one audit; the closed report."""
    with sqlaudit.audit("work", on_finding="ignore", **UNTIMED) as report:
        with engine.connect() as conn:
            conn.execute(select(Author.name).where(Author.id == 1)).one()
        with Session(engine) as session:
            for author in session.scalars(select(Author)):
                assert author.books
            session.commit()
    return report


@pytest.mark.parametrize("remove", [True, False], ids=["removed", "not-removed"])
def test_sync_engine_collected_after_audits(remove: bool) -> None:
    """An instrumented engine that ran audited Core and ORM work is collected once dropped
    (with or without ``remove()``), although its report and handle are alive: records hold
    no SQLAlchemy object, the registry holds engines weakly, the ORM listeners are released."""
    gc.collect()  # engines that earlier tests dropped leave the registry now, not below
    registered, users = len(_capture._registry), _claims._users["session"]
    engine = seeded_sqlite()
    handle = sqlaudit.instrument(engine)
    assert sqlaudit.instrument(engine) is handle
    assert len(_capture._registry) == registered + 1
    report = audited_work(engine)
    assert report.query_count == 2 + AUTHORS  # the select, the authors, one lazy load each
    assert {f.kind for f in report.findings} >= {"n_plus_one"}
    if remove:
        handle.remove()
    # Not the dialect: SQLAlchemy's mappers cache compiled flush statements per dialect.
    refs: list[weakref.ref[Any]] = [weakref.ref(engine), weakref.ref(engine.pool)]
    engine.dispose()
    del engine
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
    assert len(_capture._registry) == registered
    assert not handle.active and handle.engine is None
    assert _claims._users["session"] == users  # this engine's claim on the ORM listeners is gone
    handle.remove()  # after the engine is gone: a no-op
    assert report.query_count == 2 + AUTHORS and report.statements  # still readable


@pytest.mark.parametrize("remove", [True, False], ids=["removed", "not-removed"])
def test_async_engine_collected_after_audits(remove: bool) -> None:
    """The same for an ``AsyncEngine`` on aiosqlite: instrumented through its ``sync_engine``,
    audited from async code, disposed and dropped, both engines are collected."""
    gc.collect()  # engines that earlier tests dropped leave the registry now, not below
    registered, users = len(_capture._registry), _claims._users["session"]

    async def main() -> tuple[list[weakref.ref[Any]], AuditReport, _capture.Instrumentation]:
        engine = await seeded_async_engine()
        handle = sqlaudit.instrument(engine)
        assert handle.engine is engine.sync_engine
        assert len(_capture._registry) == registered + 1
        async with sqlaudit.audit("work", on_finding="ignore", **UNTIMED) as report:
            async with engine.connect() as conn:
                (await conn.execute(select(Author.name).where(Author.id == 1))).one()
            async with AsyncSession(engine) as session:
                for author in await session.scalars(select(Author)):
                    assert await author.awaitable_attrs.books
        if remove:
            handle.remove()
        refs: list[weakref.ref[Any]] = [weakref.ref(engine), weakref.ref(engine.sync_engine)]
        await engine.dispose()
        return refs, report, handle

    refs, report, handle = asyncio.run(main())
    gc.collect()
    assert [ref() for ref in refs] == [None, None]
    assert len(_capture._registry) == registered
    assert not handle.active and handle.engine is None
    assert _claims._users["session"] == users  # this engine's claim on the ORM listeners is gone
    assert report.query_count == 2 + AUTHORS
    assert {f.kind for f in report.findings} >= {"n_plus_one"}


def test_instrument_remove_cycles_memory_bounded() -> None:
    """Instrumenting and removing one live engine 2,000 times (after 200 to warm up) leaves
    less than 20 KB allocated: nothing accumulates per cycle."""
    users = _claims._users["session"]  # other tests' engines may still be instrumented
    engine = create_engine("sqlite://")
    try:
        with Growth() as growth:
            for _ in range(200):
                sqlaudit.instrument(engine).remove()
            growth.mark()
            for _ in range(2000):
                sqlaudit.instrument(engine).remove()
            growth.measure()
    finally:
        engine.dispose()
    assert _claims._users["session"] == users
    assert growth.bytes < 20_000, f"+{growth.bytes} bytes, by line:\n{growth.top}"


# -- 1,000,000 statements in one audit -----------------------------------------------------

MILLION = 1_000_000
CAP = AuditConfig().max_records


@pytest.mark.heavy
def test_million_statements_stay_within_max_records() -> None:
    """1,000,000 statements in one audit (default ``max_records``): the first 10,000 are
    recorded, the rest counted, and once past the cap the number of allocated memory blocks
    does not grow (a leak of one object per statement would add ~900,000)."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    handle = sqlaudit.instrument(engine)
    started = time.perf_counter()
    try:
        with (
            sqlaudit.audit("million", on_finding="ignore", **UNTIMED) as report,
            engine.connect() as conn,
        ):
            for _ in range(MILLION // 10):
                conn.exec_driver_sql("SELECT 1")
            gc.collect()
            blocks_before = sys.getallocatedblocks()
            for _ in range(MILLION - MILLION // 10):
                conn.exec_driver_sql("SELECT 1")
            gc.collect()
            blocks_after = sys.getallocatedblocks()
    finally:
        handle.remove()
        engine.dispose()
    elapsed = time.perf_counter() - started
    assert CAP == 10_000
    assert report.query_count == MILLION
    assert report.recorded_count == CAP
    assert len(report.statements) == CAP
    assert report.overflow == MILLION - CAP
    assert report.counts == {"select": MILLION}
    growth = blocks_after - blocks_before
    print(f"\n{MILLION} statements in {elapsed:.1f} s, {growth:+d} memory blocks past the cap")
    assert growth < 1_000


def test_transactions_past_max_records_are_counted_not_kept() -> None:
    """A unit running more transactions than ``max_records`` keeps that many in detail and
    counts the others: its capture state (transactions, checkouts, sessions) stays bounded,
    and the report's transaction, commit and round-trip counts stay exact (before, every
    ``engine.connect()`` and every ORM session added ~450-670 bytes that were never freed)."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    handle = sqlaudit.instrument(engine)
    try:
        with sqlaudit.audit("many", on_finding="ignore", max_records=50, **UNTIMED) as report:
            scope = scope_of(report)
            for i in range(2_000):
                if i % 2:
                    with engine.begin() as conn:
                        conn.exec_driver_sql("SELECT 1")
                else:
                    with Session(engine) as session:
                        session.execute(text("SELECT 2"))
                        session.commit()
                if i in (200, 1_999):
                    sizes = (
                        len(scope.tx_all),
                        len(scope.checkouts),
                        len(scope.identity),
                        len(scope.committed),
                        len(scope.tx_by_session),
                    )
                    assert sizes[0] == 50
                    assert max(sizes[1:]) <= 1
    finally:
        handle.remove()
        engine.dispose()
    assert len(report.transaction_records) == 50
    assert report.transaction_count == 2_000
    # Sessions' commits are seen; a read-only Core commit is not (no listener is attached to a
    # connection that only reads: measured to cost ~5 us per statement).
    assert report.commit_count == 1_000


def test_statements_after_the_audit_closed_are_not_recorded_into_it() -> None:
    """A task created inside ``async with sqlaudit.audit()`` keeps its context after the block:
    what it runs later belongs to no closed unit (before, the closed report counted it:
    1 statement became 2,001)."""

    async def main() -> tuple[AuditReport, AuditReport]:
        engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        handle = sqlaudit.instrument(engine)
        go = asyncio.Event()

        async def later() -> None:
            await go.wait()
            async with engine.connect() as conn:
                for i in range(200):
                    await conn.execute(text("SELECT :i"), {"i": i})

        try:
            async with sqlaudit.audit("outer", on_finding="ignore", **UNTIMED) as outer:
                async with sqlaudit.audit("request", on_finding="ignore", **UNTIMED) as inner:
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                    task = asyncio.create_task(later())
                go.set()
                await task  # runs in the request's context, after the request closed
            async with engine.connect() as conn:  # and once more, after everything closed
                await conn.execute(text("SELECT 1"))
        finally:
            handle.remove()
            await engine.dispose()
        return outer, inner

    outer, inner = asyncio.run(main())
    assert inner.query_count == 1
    assert outer.query_count == 1 + 200  # the nearest unit still open took them
