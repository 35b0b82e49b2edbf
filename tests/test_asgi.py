"""ASGIAuditMiddleware through real clients (httpx's ASGI transport) and the ASGI protocol."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from collect import Collect
from fastapi import APIRouter, FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from timing import UNTIMED, untimed

import sqlaudit
from sqlaudit import AuditFailed, AuditReport
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.capture.scope import CURRENT

T = TypeVar("T")
Message = dict[str, Any]


def run(main: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``main`` with an instrumented in-memory aiosqlite engine, all in one event loop."""

    async def wrapper() -> T:
        engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
        handle = sqlaudit.instrument(engine)
        try:
            return await main(engine)
        finally:
            handle.remove()
            await engine.dispose()
            assert CURRENT.get() is None

    return asyncio.run(wrapper())


async def select_n(engine: AsyncEngine, n: int) -> None:
    async with engine.connect() as connection:
        for i in range(n):
            await connection.execute(text("SELECT :i"), {"i": i})


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A plain ASGI app (no framework) answering every request with "raw"."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


def starlette_app(engine: AsyncEngine) -> Starlette:
    async def user(request: Request) -> Response:
        await select_n(engine, request.path_params["user_id"])
        return PlainTextResponse("ok")

    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(request.path_params["n"]):
                await select_n(engine, 1)
                yield b"%d\n" % i

        return StreamingResponse(chunks())

    async def boom(request: Request) -> Response:
        await select_n(engine, 2)
        raise KeyError("app's own error")

    async def health(request: Request) -> Response:
        await select_n(engine, 1)
        return PlainTextResponse("ok")

    async def item(request: Request) -> Response:
        await select_n(engine, 1)
        return PlainTextResponse(request.path_params["item_id"])

    return Starlette(
        routes=[
            Route("/users/{user_id:int}", user),
            Route("/stream/{n:int}", stream),
            Route("/boom", boom),
            Route("/health", health),
            Mount("/tenants/{tenant}", routes=[Route("/items/{item_id}", item)]),
            Mount("/static", app=raw_app),
        ]
    )


def wrap(app: Any, **options: Any) -> tuple[ASGIAuditMiddleware, Collect]:
    collect = Collect()
    options.setdefault("config", untimed())
    options["reporters"] = [collect, *options.get("reporters", ())]
    return ASGIAuditMiddleware(app, **options), collect


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(
    ("path", "name", "count"),
    [
        ("/users/3", "GET /users/{user_id}", 3),
        ("/tenants/acme/items/7", "GET /tenants/{tenant}/items/{item_id}", 1),
        ("/tenants/42/items/7", "GET /tenants/{tenant}/items/{item_id}", 1),
        ("/static/css/app.css", "GET /static/{path}", 0),
        ("/nope/123", "GET /nope/{id}", 0),
    ],
)
def test_starlette_request_named_after_its_route(path: str, name: str, count: int) -> None:
    """Named ``METHOD route``: Starlette's ``scope["route"]`` with mount prefixes as templates
    (a tenant's name never splits a route); a mount answering itself is ``/prefix/{path}``; no
    route: the path with ids collapsed. The same names when the router puts no
    ``scope["route"]`` (Starlette before 1.10, simulated): the router is matched again."""

    async def main(engine: AsyncEngine) -> list[tuple[str, int]]:
        app = starlette_app(engine)

        async def without_route(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await app(scope, receive, send)
            scope.pop("route", None)  # what Starlette < 1.10 leaves: endpoint, path_params

        names = []
        for wrapped in (app, without_route):
            middleware, collect = wrap(wrapped)
            async with client(middleware) as http:
                await http.get(path)
            names += [(r.name, r.query_count) for r in collect.reports]
        return names

    assert run(main) == [(name, count)] * 2


def test_fastapi_router_dependency_threadpool_and_base_http_middleware(tmp_path: Path) -> None:
    """FastAPI: router prefixes are in the name; a sync endpoint running in the threadpool and
    a BaseHTTPMiddleware in the stack still see the request's audit."""
    sync_engine = create_engine(f"sqlite:///{tmp_path / 'sync.db'}")
    handle = sqlaudit.instrument(sync_engine)
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/sync/{n}")
    def sync_endpoint(n: int) -> dict[str, int]:
        with sync_engine.connect() as connection:
            for _ in range(n):
                connection.execute(text("SELECT 1"))
        return {"n": n}

    class Passthrough(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            return await call_next(request)

    app.include_router(router)
    app.add_middleware(Passthrough)
    collect = Collect()
    app.add_middleware(ASGIAuditMiddleware, config=untimed(), reporters=[collect], header=True)

    async def main() -> httpx.Response:
        async with client(app) as http:
            return await http.get("/v1/sync/4")

    try:
        response = asyncio.run(main())
    finally:
        handle.remove()
        sync_engine.dispose()
    assert response.json() == {"n": 4}
    assert response.headers["x-sql-queries"] == '4; findings="repeated_query"'
    assert [(r.name, r.query_count) for r in collect.reports] == [("GET /v1/sync/{n}", 4)]


def test_streamed_body_counted_header_and_server_timing() -> None:
    """A StreamingResponse that queries is counted in the report; the headers, sent first,
    describe what was issued before the response started."""

    async def main(engine: AsyncEngine) -> tuple[httpx.Response, Collect]:
        middleware, collect = wrap(starlette_app(engine), header=True, server_timing=True)
        async with client(middleware) as http:
            return await http.get("/stream/4"), collect

    response, collect = run(main)
    assert response.text == "0\n1\n2\n3\n"
    assert response.headers["x-sql-queries"] == '0; findings=""'
    assert response.headers["server-timing"] == 'db;dur=0.0;desc="0 SQL statements"'
    assert collect.named("GET /stream/{n}").query_count == 4


def test_exclude_and_unsampled_counting() -> None:
    """Excluded: untouched. Unsampled: counted for the header, never reported."""

    async def main(engine: AsyncEngine) -> tuple[list[httpx.Response], Collect]:
        middleware, collect = wrap(
            starlette_app(engine), header=True, sample_rate=0.0, exclude=["/health"]
        )
        async with client(middleware) as http:
            return [await http.get("/health"), await http.get("/users/5")], collect

    (health, user), collect = run(main)
    assert "x-sql-queries" not in health.headers
    assert user.headers["x-sql-queries"] == "5"
    assert collect.reports == []


def test_app_exception_propagates_unchanged_and_audit_is_reported() -> None:
    """The app's exception reaches the server unchanged; the audit is closed and reported,
    and AuditFailed never replaces it."""

    async def main(engine: AsyncEngine) -> Collect:
        middleware, collect = wrap(
            starlette_app(engine), on_finding="raise", budgets={"GET /boom": 0}
        )
        async with client(middleware) as http:
            with pytest.raises(KeyError, match="app's own error"):
                await http.get("/boom")
        return collect

    report = run(main).named("GET /boom")
    assert report.query_count == 2
    assert report.ended is not None


def test_on_finding_raise_fails_the_request_in_development() -> None:
    """Development policy: AuditFailed, with the report, once the app returned normally."""

    async def main(engine: AsyncEngine) -> AuditFailed:
        middleware, _ = wrap(starlette_app(engine), on_finding="raise", budgets={"* /users/*": 1})
        async with client(middleware) as http:
            assert (await http.get("/users/1")).status_code == 200
            with pytest.raises(AuditFailed) as failed:
                await http.get("/users/2")
        return failed.value

    assert run(main).report.name == "GET /users/{user_id}"


class AsgiDetectorError(Exception):
    pass


class ExplodingAsgiDetector:
    kind = "repeated_query"

    def detect(self, report: AuditReport, records: Any) -> Iterable[Any]:
        raise AsgiDetectorError("detector bug")


class AsgiReporterExploded:
    def report(self, report: AuditReport) -> None:
        raise RuntimeError("reporter bug")


class AsgiExporterDown:
    """A reporter exporting JSON lines to a sink that has gone away."""

    def __init__(self, path: Path) -> None:
        self.sink = path.open("w")
        self.sink.close()

    def report(self, report: AuditReport) -> None:
        self.sink.write(f"{report.to_dict()}\n")


@pytest.mark.parametrize("broken", ["detector", "reporter", "exporter"])
def test_sqlaudit_failure_is_logged_once_and_response_unchanged(
    broken: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in a detector, reporter or exporter never reaches the client: same responses,
    one log record, counted on the report."""
    monkeypatch.setenv("SQLAUDIT_STRICT", "0")
    options: dict[str, Any] = {"header": True}
    if broken == "detector":
        options["detectors"] = [ExplodingAsgiDetector()]
    elif broken == "reporter":
        options["reporters"] = [AsgiReporterExploded()]
    else:
        options["reporters"] = [AsgiExporterDown(tmp_path / "out.jsonl")]

    async def main(engine: AsyncEngine) -> tuple[list[str], Collect]:
        middleware, collect = wrap(starlette_app(engine), **options)
        async with client(middleware) as http:
            return [(await http.get(f"/users/{n}")).text for n in (1, 2, 3)], collect

    with caplog.at_level(logging.ERROR, logger="sqlaudit"):
        bodies, collect = run(main)
    assert bodies == ["ok", "ok", "ok"]
    assert [r.query_count for r in collect.reports] == [1, 2, 3]
    assert all(r.internal_errors >= 1 for r in collect.reports)
    assert len([r for r in caplog.records if "internal error" in r.getMessage()]) == 1


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
def test_non_http_scopes_pass_through_untouched(scope_type: str) -> None:
    """Lifespan and websocket scopes reach the app as the very same objects, unaudited."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend([scope, receive, send, CURRENT.get()])

    async def receive() -> Message:
        return {"type": f"{scope_type}.disconnect"}

    async def send(message: Message) -> None:
        pass

    scope = {"type": scope_type, "path": "/ws", "asgi": {"version": "3.0"}}
    middleware = ASGIAuditMiddleware(app, header=True, dev_page="/ws")
    asyncio.run(middleware(scope, receive, send))
    assert seen[0] is scope
    assert seen[1] is receive
    assert seen[2] is send
    assert seen[3] is None


def streaming_protocol_run(
    disconnect_after: int, send_fails_after: int | None
) -> tuple[Collect, list[bytes], BaseException | None]:
    """Drive a StreamingResponse of 10 querying chunks at the protocol level, as a server
    would, with a client that goes away after ``disconnect_after`` chunks."""

    async def main(engine: AsyncEngine) -> tuple[Collect, list[bytes], BaseException | None]:
        middleware, collect = wrap(starlette_app(engine))
        bodies: list[bytes] = []
        gone = asyncio.Event()
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] != "http.response.body" or not message.get("body"):
                return
            if send_fails_after is not None and len(bodies) >= send_fails_after:
                raise OSError("connection reset by peer")
            bodies.append(message["body"])
            if len(bodies) >= disconnect_after:
                gone.set()
            await asyncio.sleep(0.01)

        scope = {"type": "http", "method": "GET", "path": "/stream/10", "headers": []}
        error: BaseException | None = None
        try:
            await middleware(scope, receive, send)
        except OSError as exc:
            error = exc
        return collect, bodies, error

    return run(main)


def test_client_disconnect_mid_stream_closes_the_audit() -> None:
    """The client disconnects after 3 chunks: Starlette stops the stream, the audit closes
    with the statements issued so far."""
    collect, bodies, error = streaming_protocol_run(disconnect_after=3, send_fails_after=None)
    assert error is None
    assert 3 <= len(bodies) < 10
    [report] = collect.reports
    assert report.name == "GET /stream/{n}"
    assert len(bodies) <= report.query_count < 10


def test_send_failing_mid_stream_propagates_and_closes_the_audit() -> None:
    """The server's send raises (socket gone): the error propagates unchanged, the audit is
    closed and reported."""
    collect, bodies, error = streaming_protocol_run(disconnect_after=99, send_fails_after=2)
    assert isinstance(error, OSError)
    assert len(bodies) == 2
    [report] = collect.reports
    assert report.query_count == 3


def test_cancelled_request_closes_the_audit_and_resets_the_context() -> None:
    """A server cancelling the request task (shutdown, timeout) still closes the audit."""

    async def main(engine: AsyncEngine) -> Collect:
        started = asyncio.Event()

        async def slow(scope: Any, receive: Any, send: Any) -> None:
            await select_n(engine, 2)
            started.set()
            await asyncio.sleep(60)

        middleware, collect = wrap(slow)
        scope = {"type": "http", "method": "GET", "path": "/slow", "headers": []}
        task = asyncio.ensure_future(middleware(scope, None, None))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return collect

    [report] = run(main).reports
    assert (report.name, report.query_count) == ("GET /slow", 2)


def test_raw_asgi_app_named_after_its_path() -> None:
    """Any ASGI app works; without a router the path names the unit, ids collapsed."""

    async def main(engine: AsyncEngine) -> list[str]:
        middleware, collect = wrap(raw_app)
        async with client(middleware) as http:
            assert (await http.get("/things/99")).text == "raw"
        return [r.name for r in collect.reports]

    assert run(main) == ["GET /things/{id}"]


def test_request_inside_an_enclosing_audit_rolls_up() -> None:
    """A test auditing a whole client call also sees the request's statements."""

    async def main(engine: AsyncEngine) -> int:
        middleware, _ = wrap(starlette_app(engine))
        async with client(middleware) as http:
            async with sqlaudit.audit("test", on_finding="ignore", **UNTIMED) as outer:
                await http.get("/users/2")
        return outer.query_count

    assert run(main) == 2


def test_dev_page_served_at_its_path() -> None:
    """The page lists the last requests and is itself not audited."""

    async def main(engine: AsyncEngine) -> tuple[httpx.Response, httpx.Response, Collect]:
        middleware, collect = wrap(starlette_app(engine), dev_page="/_sqlaudit")
        async with client(middleware) as http:
            await http.get("/users/3")
            return await http.get("/_sqlaudit"), await http.head("/_sqlaudit"), collect

    page, head, collect = run(main)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "GET /users/{user_id}" in page.text
    assert head.content == b""
    assert len(collect.reports) == 1
