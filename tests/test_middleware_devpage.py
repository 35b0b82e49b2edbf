"""The development page, loaded in headless Chromium from real servers, reads as it should.

Screenshots go to ``$SQLAUDIT_SCREENSHOTS`` when set (a directory, created if needed), else to
the test's tmp dir.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import render
from flask import Flask, request
from models import prepared
from sqlalchemy import Engine, text
from timing import untimed
from werkzeug.serving import BaseWSGIServer, make_server

from sqlaudit.wsgi import WSGIAuditMiddleware

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the screenshots go: ``$SQLAUDIT_SCREENSHOTS``, else a tmp dir."""
    where = os.environ.get("SQLAUDIT_SCREENSHOTS")
    if not where:
        return tmp_path
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def server() -> Iterator[str]:
    """The Flask example (development settings, SQLite) on a real loopback HTTP server."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from flask_service import create_app

        app = create_app("sqlite://")
    finally:
        sys.path.remove(str(EXAMPLES))
    httpd: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def wait_for_entries(server: str, count: int) -> None:
    """Wait until the page lists ``count`` requests: the server thread closes a request's
    audit after the client already has the response (PEP 3333 ``close()``)."""
    for _ in range(200):
        with urllib.request.urlopen(server + "/_sqlaudit", timeout=30) as response:
            if f"<title>sqlaudit: last {count} requests</title>" in response.read().decode():
                return
        time.sleep(0.05)
    raise AssertionError(f"the page never listed {count} requests")


def wait_for_text(server: str, text: str) -> None:
    """Wait until the page shows ``text``."""
    for _ in range(200):
        with urllib.request.urlopen(server + "/_sqlaudit", timeout=30) as response:
            if text in response.read().decode():
                return
        time.sleep(0.05)
    raise AssertionError(f"the page never showed {text!r}")


def test_dev_page_in_headless_chromium(server: str, screenshots: Path) -> None:
    """After real requests, Chromium shows a table of them, newest first, with their counts
    and finding kinds, and each finding's diagnosis and fix; no bind value appears."""
    audited = 0
    for path in ("/streams", "/streams/eager", "/streams/4", "/export.csv", "/health"):
        with urllib.request.urlopen(server + path, timeout=30) as response:
            response.read()
        if path != "/health":
            audited += 1
            wait_for_entries(server, audited)
    request = urllib.request.Request(
        server + "/streams/2/comments",
        data=b'{"bodies": ["secret-value-1", "b", "c", "d", "e"]}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    wait_for_entries(server, audited + 1)

    screenshot = screenshots / "devpage-requests.png"
    dom = render(server + "/_sqlaudit", screenshot)

    assert "<title>sqlaudit: last 5 requests</title>" in dom
    names = [
        "POST /streams/&lt;int:stream_id&gt;/comments",
        "GET /export.csv",
        "GET /streams/&lt;int:stream_id&gt;",
        "GET /streams/eager",
        "GET /streams",
    ]
    positions = [dom.index(f">{name}</a>") for name in names]
    assert positions == sorted(positions)  # newest first
    assert "/health" not in dom  # excluded
    assert '<span class="k warning">n_plus_one</span>' in dom
    assert '<span class="k error">query_budget</span>' in dom
    assert "N+1: Stream.streamer lazy-loaded 6x" in dom
    assert "fix: " in dom
    assert "write_loop" in dom
    assert "secret-value-1" not in dom
    assert "<script" not in dom
    assert screenshot.stat().st_size > 10_000


def test_dev_page_timeline_and_views_in_headless_chromium(server: str, screenshots: Path) -> None:
    """Chromium shows the N+1 request's timeline: one transaction opened by BEGIN, the query,
    then the lazy loads flagged and open with their whole SQL (every column, ``?`` for the
    value) and their application stack, each linked to the finding; the by-route view counts
    requests and finding occurrences per route; the findings-only filter keeps the N+1
    requests. Screenshots of each view are written."""
    for path in ("/streams", "/streams/4", "/streams", "/streams/eager"):
        with urllib.request.urlopen(server + path, timeout=30) as response:
            response.read()
    wait_for_entries(server, 4)

    dom = render(server + "/_sqlaudit?request=3", screenshots / "devpage-timeline.png")
    request = re.search(
        r'<details class="req" id="r3" open="">(.*?)</details>\s*</body>', dom, re.DOTALL
    )
    assert request is not None
    timeline = request.group(1)
    assert "Timeline (execution order, by transaction)" in timeline
    assert re.search(
        r'<section class="tx c\d"><h3>ORM session transaction 1: 7 statements', timeline
    )
    assert '<li class="ev">BEGIN +' in timeline
    finding = re.search(r'<li id="r3-f(\d+)">.*?N\+1: Stream.streamer.*?</li>', timeline)
    assert finding is not None
    assert re.findall(r'href="#r3-s(\d+)"', finding.group(0)) == ["2", "3", "4", "5", "6", "7"]
    step = re.search(
        r'<li id="r3-s2" class="step flag"><details open="">(.*?)</details></li>',
        timeline,
        re.DOTALL,
    )
    assert step is not None
    assert f'href="#r3-f{finding.group(1)}">n_plus_one</a>' in step.group(1)
    # SQLAlchemy 2.0 labels a lazy load's columns (AS flask_svc_streamers_id), 2.1 does not.
    assert re.search(
        r'<pre class="sql">SELECT flask_svc_streamers\.id(?: AS \w+)?,\n'
        r"       flask_svc_streamers\.name(?: AS \w+)?\n"
        r"FROM flask_svc_streamers\nWHERE flask_svc_streamers\.id = \?</pre>",
        step.group(1),
    )
    frames = re.findall(r"<li><code>([^<]*)</code></li>", step.group(1))
    assert frames[0] == "examples/flask_service/views.py:24 in _card()"
    assert frames[-1].startswith("examples/flask_service/views.py:") and frames[-1].endswith(
        " in list_streams()"
    )
    assert 'class="bar"><i style="margin-left:' in step.group(1)
    # explain=True in the example's development options: the lazy load's plan, from SQLite.
    assert '<div class="explain"><h5>EXPLAIN QUERY PLAN (sqlite)</h5>' in step.group(1)
    assert "SEARCH flask_svc_streamers USING INTEGER PRIMARY KEY" in step.group(1)
    assert "EXPLAIN: no full table scan in the plan" in finding.group(0)

    routes = render(server + "/_sqlaudit?view=routes", screenshots / "devpage-routes.png")
    row = re.search(
        r'<tr><td><a href="\?route=GET\+%2Fstreams">GET /streams</a></td>(.*?)</tr>', routes
    )
    assert row is not None
    assert row.group(1).startswith('<td class="n">2</td><td>200 x2</td>')
    assert "n_plus_one \u00d72" in row.group(1)
    assert "<b>By route</b>" in routes

    only = render(server + "/_sqlaudit?findings=1", screenshots / "devpage-findings-only.png")
    listed = re.findall(r'<td><a href="#r(\d+)">', only)
    # The two N+1 requests; on a slow clock (timing findings everywhere) the others too.
    assert listed[-1] == "1" and "3" in listed and listed == sorted(listed, reverse=True)
    assert '<span class="ok">clean</span>' not in only
    assert "<b>Only with findings</b>" in only
    assert "<script" not in dom + routes + only


@pytest.fixture
def asgi_server() -> Iterator[str]:
    """The FastAPI example (development settings, SQLite through aiosqlite) served by uvicorn
    on a real loopback socket."""
    import uvicorn

    sys.path.insert(0, str(EXAMPLES))
    try:
        from fastapi_service import create_app

        app = create_app("sqlite://")
    finally:
        sys.path.remove(str(EXAMPLES))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.025)
    try:
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_asgi_dev_page_in_headless_chromium(asgi_server: str, screenshots: Path) -> None:
    """Through the ASGI middleware under uvicorn: the async N+1's lazy loads are on the
    timeline with their SQL and the async view's stack (the greenlet's parent frames)."""
    for path in ("/streams", "/streams/3"):
        with urllib.request.urlopen(asgi_server + path, timeout=30) as response:
            response.read()
    wait_for_entries(asgi_server, 2)
    # The ASGI middleware lists a request once its response is sent, and adds the plans
    # when the database answered, from the request's task.
    wait_for_text(asgi_server, "EXPLAIN: no full table scan in the plan")
    dom = render(asgi_server + "/_sqlaudit", screenshots / "devpage-asgi.png")
    assert "GET /streams/{stream_id}" in dom and "<code>/streams/{id}</code>" in dom
    finding = re.search(r'<li id="r1-f(\d+)">.*?N\+1: Stream.streamer.*?</li>', dom)
    assert finding is not None
    first = re.findall(r'href="#r1-s(\d+)"', finding.group(0))[0]
    step = re.search(
        rf'<li id="r1-s{first}" class="step flag">(.*?)</details></li>', dom, re.DOTALL
    )
    assert step is not None
    assert "FROM flask_svc_streamers" not in step.group(1)
    assert re.search(r'<pre class="sql">SELECT \w+\.id(?: AS \w+)?,\n', step.group(1))
    frames = re.findall(r"<li><code>([^<]*)</code></li>", step.group(1))
    assert frames and all(f.startswith("examples/fastapi_service/") for f in frames)
    assert any(f.endswith(" in list_streams()") for f in frames)
    # The plan, from aiosqlite: asked after the response, from the request's task.
    assert '<div class="explain"><h5>EXPLAIN QUERY PLAN (sqlite)</h5>' in step.group(1)
    assert "EXPLAIN failed" not in dom
    assert "<script" not in dom


def test_explain_in_headless_chromium(sqlite_engine: Engine, screenshots: Path) -> None:
    """A repeated lookup on an unindexed column, served for real with ``explain=True``:
    Chromium shows the SQLite plan on the statement and the full scan on the finding."""
    with prepared(sqlite_engine, authors=40, books_each=1) as engine:
        app = Flask(__name__)

        @app.get("/authors/by-name")
        def by_name() -> str:
            name = request.args["name"]
            with engine.connect() as connection:
                for _ in range(3):
                    connection.execute(
                        text("SELECT id, name FROM sqlaudit_t_author WHERE name = :name"),
                        {"name": name},
                    ).all()
            return "ok"

        app.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, untimed(), mode="development", explain=True, on_finding="ignore"
        )
        httpd = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{httpd.server_port}"
        try:
            with urllib.request.urlopen(
                base + "/authors/by-name?name=alice", timeout=30
            ) as response:
                response.read()
            wait_for_entries(base, 1)
            dom = render(base + "/_sqlaudit?request=1", screenshots / "devpage-explain.png")
        finally:
            httpd.shutdown()
            thread.join(timeout=10)
    assert "EXPLAIN: full scan of sqlaudit_t_author" in dom
    assert '<div class="explain"><h5>EXPLAIN QUERY PLAN (sqlite)</h5>' in dom
    assert re.search(r"<pre>SCAN (TABLE )?sqlaudit_t_author</pre>", dom)
    assert "alice" not in dom
