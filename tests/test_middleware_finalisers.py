"""A request's unit ended by a finaliser: a WSGI body collected neither read nor closed, an ASGI
coroutine closed while its application ran.

The garbage collector runs finalisers at any allocation, also in a thread that holds one of
sqlaudit's plain locks (a memo's inside ``Memo.put``, ``sql.cache``'s inside ``hold``, the
development page's, a statement log's). Finishing the unit there takes that lock again: the
thread waited for itself for ever. The finaliser now only queues the unit
(``RequestAuditor.defer``); the auditor's next request, ``drain()`` or interpreter exit
finishes it, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Generator, Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from collect import Collect
from sqlalchemy import Engine, text
from timing import untimed
from werkzeug.test import Client

import sqlaudit
from sqlaudit import AuditReport
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.sql import cache
from sqlaudit.web.auditor import RequestAuditor
from sqlaudit.wsgi import WSGIAuditMiddleware

StartResponse = Callable[..., Any]


@pytest.fixture
def engine(sqlite_engine: Engine) -> Iterator[Engine]:
    handle = sqlaudit.instrument(sqlite_engine)
    yield sqlite_engine
    handle.remove()


def select_n(engine: Engine, n: int) -> None:
    with engine.connect() as connection:
        for i in range(n):
            connection.execute(text("SELECT :i"), {"i": i})


def streaming_app(engine: Engine) -> Callable[[dict[str, Any], StartResponse], Iterator[bytes]]:
    """A plain WSGI app: one statement before its first chunk, one per chunk after."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        select_n(engine, 1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(5):
            select_n(engine, 1)
            yield b"%d\n" % i

    return app


def the_lock(name: str, auditor: RequestAuditor) -> Any:
    """A plain lock that finishing a unit takes: ``sql.cache``'s (``release``), or the
    development page's (``DevPage.add``)."""
    if name == "memos":
        return cache._lock
    assert auditor.dev_page is not None
    return auditor.dev_page._lock


def collected_under(lock: Any, holder: list[Any], before: Callable[[], None] = list) -> bool:
    """In a thread that holds ``lock``, drop the last reference in ``holder`` (its finaliser
    runs there and then, as the collector would run it at an allocation under the lock).
    True when the thread went on; else the lock is released for it (a plain Lock has no
    owner) so that the suite can go on, and False."""
    done = threading.Event()

    def run() -> None:
        before()
        lock.acquire()
        try:
            holder.clear()
        finally:
            if lock.locked():  # else the test released it for the stuck finaliser
                lock.release()
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if done.is_set():
        return True
    lock.release()
    thread.join(timeout=10)
    return False


@pytest.mark.parametrize("lock_name", ["memos", "dev page"])
def test_wsgi_body_collected_under_a_held_lock_does_not_hang(
    engine: Engine, lock_name: str
) -> None:
    """The body of a request nobody read nor closed is collected in a thread holding a lock
    that finishing the unit takes: the thread goes on; the unit is finished (reported, with
    its statements) by the middleware's next request."""
    collect = Collect()
    middleware = WSGIAuditMiddleware(
        streaming_app(engine), untimed(), reporters=[collect], dev_page="/_sqlaudit"
    )
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/feed/7"}
    holder = [middleware(environ, lambda status, headers, exc_info=None: None)]
    next(iter(holder[0]))
    assert collected_under(the_lock(lock_name, middleware.auditor), holder), (
        "the finaliser waited for a lock its own thread held"
    )
    assert collect.reports == []  # left to a safe point
    assert Client(middleware).get("/other").get_data() == b"0\n1\n2\n3\n4\n"
    assert [(r.name, r.query_count) for r in collect.reports] == [
        ("GET /feed/{id}", 2),
        ("GET /other", 6),
    ]
    page = Client(middleware).get("/_sqlaudit").get_data(as_text=True)
    assert "/feed/{id}" in page and "/other" in page


class Pending:
    """An awaitable that suspends once and is never resumed (a request still being served)."""

    def __await__(self) -> Generator[None, None, None]:
        yield


@pytest.mark.parametrize("lock_name", ["memos", "dev page"])
def test_asgi_coroutine_collected_under_a_held_lock_does_not_hang(
    engine: Engine, lock_name: str
) -> None:
    """The coroutine of a request still running (a task dropped while pending) is closed by
    the collector in a thread holding a lock that finishing the unit takes: the thread goes
    on; the unit is finished by the middleware's next request, nothing lost."""
    collect = Collect()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        select_n(engine, scope["path"].count("/"))
        if scope["path"] == "/slow/1":
            await Pending()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ASGIAuditMiddleware(app, untimed(), reporters=[collect], dev_page="/_sqlaudit")
    holder: list[Any] = []

    def started() -> None:  # in the thread: the coroutine runs in the thread's context
        scope = {"type": "http", "method": "GET", "path": "/slow/1", "headers": []}
        coroutine = middleware(scope, None, None)  # type: ignore[arg-type]
        coroutine.send(None)  # suspended in the application, its unit open
        holder.append(coroutine)

    assert collected_under(the_lock(lock_name, middleware.auditor), holder, started), (
        "the finaliser waited for a lock its own thread held"
    )
    assert collect.reports == []

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "GET", "path": "/fast", "headers": []}
    asyncio.run(middleware(scope, None, send))  # type: ignore[arg-type]
    assert [(r.name, r.query_count) for r in collect.reports] == [
        ("GET /slow/{id}", 2),
        ("GET /fast", 1),
    ]


#: Set by the test around one request, read by ``Where`` when a unit is reported.
REQUEST: ContextVar[str | None] = ContextVar("request", default=None)


class Where(Collect):
    """``Collect``, noting which request's context each report was made in."""

    def __init__(self) -> None:
        super().__init__()
        self.contexts: list[str | None] = []

    def report(self, report: AuditReport) -> None:
        self.contexts.append(REQUEST.get())
        super().report(report)


def test_werkzeug_response_dropped_unread_is_still_reported(engine: Engine) -> None:
    """Through Werkzeug's test client: a streamed response dropped before it was read (the
    client read the first chunk only) is reported with the statements issued so far, once,
    by the next request, outside that request's context (a reporter would take its span for
    the unit's); a unit finished early is not finished again."""
    collect = Where()
    middleware = WSGIAuditMiddleware(
        streaming_app(engine), untimed(), reporters=[collect], header=True
    )
    client = Client(middleware)
    response = client.get("/feed/1", buffered=False)
    assert response.headers["X-SQL-Queries"].startswith("1;")
    del response  # collected: not read, not closed
    assert collect.reports == []
    token = REQUEST.set("/feed/2")
    try:
        assert client.get("/feed/2").get_data() == b"0\n1\n2\n3\n4\n"
    finally:
        REQUEST.reset(token)
    assert [(r.name, r.query_count) for r in collect.reports] == [
        ("GET /feed/{id}", 2),
        ("GET /feed/{id}", 6),
    ]
    assert collect.contexts == [None, "/feed/2"]
    middleware.auditor.drain()
    assert len(collect.reports) == 2


def test_units_left_by_finalisers_are_finished_at_exit() -> None:
    """A unit whose body was collected after the last request is finished at interpreter
    exit (reported, not lost)."""
    script = textwrap.dedent(
        """
        import sqlaudit
        from sqlalchemy import create_engine, text
        from sqlaudit.wsgi import WSGIAuditMiddleware

        class Print:
            def report(self, report):
                print("reported", report.name, report.query_count, flush=True)

        engine = create_engine("sqlite://")
        sqlaudit.instrument(engine)

        def app(environ, start_response):
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            start_response("200 OK", [])
            return iter([b"a", b"b"])

        middleware = WSGIAuditMiddleware(app, reporters=[Print()], on_finding="ignore")
        body = middleware({"REQUEST_METHOD": "GET", "PATH_INFO": "/last"}, lambda *a: None)
        del body
        print("dropped", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines() == ["dropped", "reported GET /last 1"]
