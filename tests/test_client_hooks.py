"""Each request a test makes through a test client is a unit of its own (the pytest plugin's
client hooks, ``sqlaudit.pytest_plugin.requests``), with the real Flask, Starlette, FastAPI and
httpx test clients: the test's statements stay the test's, each request's are judged on their
own, and nothing changes outside an audit."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import starlette.testclient  # noqa: F401 - the hooks patch modules already imported
import werkzeug.test  # noqa: F401
from fastapi import FastAPI
from fastapi.testclient import TestClient
from flask import Flask
from models import Author, prepared
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED, kinds

import sqlaudit
from sqlaudit.pytest_plugin import requests as client_hooks


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[Engine]:
    client_hooks.install()
    with prepared(sqlite_engine) as eng:
        yield eng


def author_names(engine: Engine, eager: bool) -> list[int]:
    with Session(engine) as session:
        query = select(Author)
        if eager:
            from sqlalchemy.orm import selectinload

            query = query.options(selectinload(Author.books))
        return [len(a.books) for a in session.scalars(query)]  # per-author books


def flask_app(engine: Engine) -> Flask:
    app = Flask(__name__)

    @app.get("/authors")
    def authors() -> Any:
        return {"books": author_names(engine, eager=False)}

    @app.get("/authors/eager")
    def eager() -> Any:
        return {"books": author_names(engine, eager=True)}

    return app


def fastapi_app(engine: Engine) -> FastAPI:
    app = FastAPI()

    @app.get("/authors")
    def authors() -> Any:  # a sync endpoint: FastAPI runs it in a worker thread
        return author_names(engine, eager=False)

    @app.get("/authors/eager")
    async def eager() -> Any:
        return author_names(engine, eager=True)

    return app


def test_flask_test_client_requests_are_units(db: Engine) -> None:
    """Flask's test client: the clean request twice and the N+1 request are three units; the
    test reports the N+1 named after the route; a response never read still counts."""
    client = flask_app(db).test_client()
    with sqlaudit.audit("test_authors", on_finding="ignore", **UNTIMED) as test:
        for _ in range(2):
            assert client.get("/authors/eager").status_code == 200  # body never read
        assert client.get("/authors").json == {"books": [2] * 5}
    assert test.query_count == 2 * 2 + 6
    assert kinds(test) == ["n_plus_one"]
    assert [f.unit for f in test.findings] == ["GET /authors"]


@pytest.mark.parametrize("path", ["/authors", "/authors/eager"])
def test_starlette_testclient_requests_are_units(db: Engine, path: str) -> None:
    """FastAPI's TestClient (the app in the portal thread, sync endpoints in the threadpool):
    each request is a unit named after its route; repeated clean requests make no loop."""
    with TestClient(fastapi_app(db)) as client:
        with sqlaudit.audit("test", on_finding="ignore", all_threads=True, **UNTIMED) as test:
            for _ in range(3):
                client.get("/authors/eager")
            client.get(path)
    assert kinds(test) == (["n_plus_one"] if path == "/authors" else [])
    assert all(f.unit == "GET /authors" for f in test.findings if f.kind == "n_plus_one")


def test_httpx_transports_requests_are_units(db: Engine) -> None:
    """httpx's ASGITransport and WSGITransport: each request is a unit too."""
    wsgi = httpx.Client(transport=httpx.WSGITransport(app=flask_app(db)), base_url="http://t")

    async def over_asgi() -> None:
        transport = httpx.ASGITransport(app=fastapi_app(db))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/authors")

    with sqlaudit.audit("test", on_finding="ignore", all_threads=True, **UNTIMED) as test:
        wsgi.get("/authors")
        asyncio.run(over_asgi())
    assert [(f.kind, f.unit) for f in test.findings] == [
        ("n_plus_one", "GET /authors"),
        ("n_plus_one", "GET /authors"),
    ]


def test_hooks_change_nothing_outside_an_audit(db: Engine) -> None:
    """No audit open: the clients run the application unwrapped (no unit, no statement
    recorded anywhere), exactly as without sqlaudit."""
    client = flask_app(db).test_client()
    assert client.get("/authors").json == {"books": [2] * 5}
    with TestClient(fastapi_app(db)) as starlette_client:
        assert starlette_client.get("/authors").json() == [2] * 5
    assert sqlaudit.current_report() is None


def test_a_module_imported_anew_is_hooked_anew(monkeypatch: pytest.MonkeyPatch) -> None:
    """A client module imported again (pytest run in-process by ``pytester`` drops the modules
    its run imported; the next run imports them anew) is hooked again: only the first of two
    such runs had its requests as units, the second judged them as one unit."""

    def run_wsgi_app(app: Any, environ: Any, buffered: bool = False) -> Any:
        return app, environ

    # What was hooked before stays so afterwards (the real module is not hooked twice).
    monkeypatch.setattr(client_hooks, "_installed", dict(client_hooks._installed))
    imports = []
    for _ in range(2):  # the module as each of two in-process runs imports it
        module = types.ModuleType("werkzeug.test")
        module.run_wsgi_app = run_wsgi_app  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "werkzeug.test", module)
        client_hooks.install()
        imports.append(module)
    assert [m.run_wsgi_app is not run_wsgi_app for m in imports] == [True, True]
    assert all(m.run_wsgi_app.__wrapped__ is run_wsgi_app for m in imports)


def starlette_app(engine: Engine) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def touch(author_id: int) -> None:
        with Session(engine) as session:
            session.get_one(Author, author_id).name = f"seen {author_id}"
            session.commit()

    def report() -> None:
        author_names(engine, eager=False)  # an N+1, after the response

    async def seen(request: Any) -> JSONResponse:
        author_id = request.path_params["author_id"]
        return JSONResponse({}, background=BackgroundTask(touch, author_id))

    async def weekly(request: Any) -> JSONResponse:
        return JSONResponse({}, background=BackgroundTask(report))

    return Starlette(
        routes=[
            Route("/authors/{author_id:int}/seen", seen, methods=["POST"]),
            Route("/weekly", weekly, methods=["POST"]),
        ]
    )


def test_background_tasks_are_their_requests_work(db: Engine) -> None:
    """Starlette's background tasks run after the response: under the hooks they belong to
    their request's unit. Three requests each committing once in the background are no
    ``commit_in_loop`` of the test's (they were, as three commits from one line); an N+1 in a
    background task is named after its request."""
    with TestClient(starlette_app(db)) as client:
        with sqlaudit.audit("test", on_finding="ignore", all_threads=True, **UNTIMED) as test:
            for author_id in (1, 2, 3):
                client.post(f"/authors/{author_id}/seen")
        assert test.query_count == 3 * 2
        assert kinds(test) == []
        with sqlaudit.audit("test", on_finding="ignore", all_threads=True, **UNTIMED) as test:
            client.post("/weekly")
        assert [(f.kind, f.unit) for f in test.findings] == [("n_plus_one", "POST /weekly")]
