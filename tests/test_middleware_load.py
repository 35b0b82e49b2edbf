"""Isolation under load: 2,000 requests through each middleware, every report exact.

Each request issues a different, known number of statements (some while its body streams);
half of the requests are sampled (full audit), the others counted only (for the header).
Every request's own report, the header and the reporter's reports must agree exactly with
what the request issued, and no audit scope may outlive its request in any thread or task.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from collect import Collect
from flask import Flask, Response, stream_with_context
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

import sqlaudit
from sqlaudit import AuditConfig, AuditReport
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.capture.scope import CURRENT, FALLBACK
from sqlaudit.wsgi import WSGIAuditMiddleware

REQUESTS = 2000
WSGI_THREADS = 8
ASGI_CONCURRENCY = 100


def statements_for(request_id: int) -> int:
    """1 to 23 statements, varying from one request to the next."""
    return 1 + (request_id * 7) % 23


def check(
    seen: dict[int, AuditReport],
    headers: dict[int, str],
    collect: Collect,
    streamed: set[int],
) -> None:
    """Every request's report exact and closed, headers exact, reporter saw each sampled one."""
    assert len(seen) == REQUESTS
    assert len({id(r) for r in seen.values()}) == REQUESTS  # one report per request
    for request_id, report in seen.items():
        expected = statements_for(request_id)
        assert report.query_count == expected, (request_id, report)
        assert report.ended is not None, request_id
        assert report.parent is None, request_id  # no scope leaked into a later request
        before_body = 1 if request_id in streamed else expected
        assert headers[request_id].split(";")[0] == str(before_body), request_id
    # Sampled requests' headers carry their finding kinds; only those reach the reporter.
    sampled = {id(seen[i]) for i, header in headers.items() if "findings=" in header}
    assert sorted(id(r) for r in collect.reports) == sorted(sampled)
    assert 0.35 * REQUESTS < len(sampled) < 0.65 * REQUESTS
    assert CURRENT.get() is None
    assert FALLBACK == []


def test_wsgi_2000_requests_from_8_threads_each_exact(tmp_path: Path) -> None:
    """Flask behind WSGIAuditMiddleware, 8 client threads, 250 requests each: exact reports,
    exact headers, and each thread's context is clean before and after every request."""
    engine = create_engine(f"sqlite:///{tmp_path / 'load.db'}", pool_size=WSGI_THREADS)
    handle = sqlaudit.instrument(engine)
    seen: dict[int, AuditReport] = {}
    leaks: list[str] = []
    app = Flask(__name__)

    def issue(n: int) -> None:
        with engine.connect() as connection:
            for i in range(n):
                connection.execute(text("SELECT :i"), {"i": i})

    @app.get("/plain/<int:request_id>")
    def plain(request_id: int) -> str:
        seen[request_id] = sqlaudit.current_report()  # type: ignore[assignment]
        issue(statements_for(request_id))
        return "ok"

    @app.get("/stream/<int:request_id>")
    def stream(request_id: int) -> Response:
        seen[request_id] = sqlaudit.current_report()  # type: ignore[assignment]
        issue(1)

        @stream_with_context
        def body() -> Iterator[str]:
            for _ in range(statements_for(request_id) - 1):
                issue(1)
                yield "."

        return Response(body())

    collect = Collect()
    audited = WSGIAuditMiddleware(
        app.wsgi_app,
        AuditConfig(),
        sample_rate=0.5,
        header=True,
        reporters=[collect],
    )

    def probe(environ: dict[str, Any], start_response: Any) -> Any:
        if CURRENT.get() is not None:
            leaks.append(f"scope open before {environ['PATH_INFO']}")
        return audited(environ, start_response)

    app.wsgi_app = probe  # type: ignore[assignment]
    headers: dict[int, str] = {}
    streamed = {i for i in range(REQUESTS) if i % 2}

    def worker(first: int) -> None:
        http = app.test_client()
        for request_id in range(first, REQUESTS, WSGI_THREADS):
            kind = "stream" if request_id in streamed else "plain"
            with http.get(f"/{kind}/{request_id}") as response:
                body = response.get_data()
                assert len(body) in (2, statements_for(request_id) - 1)
                headers[request_id] = response.headers["X-SQL-Queries"]
            if CURRENT.get() is not None:
                leaks.append(f"scope open after {request_id}")

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(WSGI_THREADS)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        handle.remove()
        engine.dispose()
    elapsed = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads)
    assert leaks == []
    check(seen, headers, collect, streamed)
    print(f"\nWSGI: {REQUESTS} requests, {WSGI_THREADS} threads, {elapsed:.1f} s")


def test_asgi_2000_concurrent_requests_each_exact() -> None:
    """Starlette behind ASGIAuditMiddleware, 2,000 requests as concurrent asyncio tasks (100
    in flight) whose statements interleave: each task yields to the others after every
    statement. One request in 25 runs on an async engine (aiosqlite through SQLAlchemy's
    greenlet bridge), the others on a sync engine called from the event loop: every report
    is exact, and no task ends with a scope open."""
    seen: dict[int, AuditReport] = {}
    headers: dict[int, str] = {}
    streamed = {i for i in range(REQUESTS) if i % 2}
    leaks: list[str] = []
    collect = Collect()
    sync_engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )

    async def main() -> float:
        async_engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        handles = [sqlaudit.instrument(async_engine), sqlaudit.instrument(sync_engine)]

        async def issue(request_id: int, n: int) -> None:
            if request_id % 25 == 0:
                async with async_engine.connect() as connection:
                    for i in range(n):
                        await connection.execute(text("SELECT :i"), {"i": i})
                        await asyncio.sleep(0)
                return
            for i in range(n):
                with sync_engine.connect() as connection:
                    connection.execute(text("SELECT :i"), {"i": i})
                await asyncio.sleep(0)

        async def plain(request: Request) -> PlainTextResponse:
            request_id = request.path_params["request_id"]
            seen[request_id] = sqlaudit.current_report()  # type: ignore[assignment]
            await issue(request_id, statements_for(request_id))
            return PlainTextResponse("ok")

        async def stream(request: Request) -> StreamingResponse:
            request_id = request.path_params["request_id"]
            seen[request_id] = sqlaudit.current_report()  # type: ignore[assignment]
            await issue(request_id, 1)

            async def body() -> AsyncIterator[bytes]:
                for _ in range(statements_for(request_id) - 1):
                    await issue(request_id, 1)
                    yield b"."

            return StreamingResponse(body())

        app = Starlette(
            routes=[
                Route("/plain/{request_id:int}", plain),
                Route("/stream/{request_id:int}", stream),
            ]
        )
        audited = ASGIAuditMiddleware(
            app, AuditConfig(), sample_rate=0.5, header=True, reporters=[collect]
        )
        limit = asyncio.Semaphore(ASGI_CONCURRENCY)

        async def one(http: httpx.AsyncClient, request_id: int) -> None:
            kind = "stream" if request_id in streamed else "plain"
            async with limit:
                response = await http.get(f"/{kind}/{request_id}")
            assert len(response.content) in (2, statements_for(request_id) - 1)
            headers[request_id] = response.headers["x-sql-queries"]
            if CURRENT.get() is not None:
                leaks.append(f"scope open after {request_id}")

        started = time.perf_counter()
        transport = httpx.ASGITransport(app=audited)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://load") as http:
                await asyncio.gather(*(one(http, n) for n in range(REQUESTS)))
        finally:
            for handle in handles:
                handle.remove()
            await async_engine.dispose()
        if CURRENT.get() is not None:
            leaks.append("scope open in the main task")
        return time.perf_counter() - started

    try:
        elapsed = asyncio.run(main())
    finally:
        sync_engine.dispose()
    assert leaks == []
    check(seen, headers, collect, streamed)
    print(f"\nASGI: {REQUESTS} requests, {ASGI_CONCURRENCY} in flight, {elapsed:.1f} s")
