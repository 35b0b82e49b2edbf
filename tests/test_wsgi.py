"""WSGIAuditMiddleware through real test clients (Flask's, Werkzeug's) and the WSGI protocol."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from collect import Collect
from flask import Flask, Response, request, stream_with_context
from sqlalchemy import Engine, text
from timing import UNTIMED, untimed
from werkzeug.test import Client

import sqlaudit
from sqlaudit import AuditFailed, AuditReport
from sqlaudit.capture.scope import CURRENT
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


def flask_app(engine: Engine) -> Flask:
    app = Flask(__name__)

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> str:
        select_n(engine, user_id)
        if request.args.get("fail"):
            raise KeyError("failing on request")
        return "ok"

    @app.get("/stream/<int:n>")
    def stream(n: int) -> Response:
        @stream_with_context
        def chunks() -> Iterator[str]:
            for i in range(n):
                select_n(engine, 1)
                yield f"{i}\n"

        return Response(chunks())

    @app.get("/boom")
    def boom() -> str:
        select_n(engine, 2)
        raise KeyError("app's own error")

    @app.get("/health")
    def health() -> str:
        select_n(engine, 1)
        return "ok"

    return app


def wrap(app: Flask, **options: Any) -> Collect:
    collect = Collect()
    options.setdefault("config", untimed())
    options["reporters"] = [collect, *options.get("reporters", ())]
    app.wsgi_app = WSGIAuditMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return collect


def test_flask_request_named_after_its_rule_and_counted(engine: Engine) -> None:
    """A Flask request is one unit named ``METHOD rule``, with exactly its statements."""
    app = flask_app(engine)
    collect = wrap(app)
    response = app.test_client().get("/users/3")
    assert response.status_code == 200
    assert response.text == "ok"
    report = collect.named("GET /users/<int:user_id>")
    assert report.query_count == 3
    assert CURRENT.get() is None


def test_propagated_flask_exception_keeps_the_rule_name(engine: Engine) -> None:
    """With ``PROPAGATE_EXCEPTIONS`` Flask ends its request context (and clears
    ``environ["werkzeug.request"]``) before the exception reaches the middleware; the unit is
    still named after the matched rule, so per-route budgets and dashboards see one route."""
    app = flask_app(engine)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    collect = wrap(app)
    with pytest.raises(KeyError, match="app's own error"):
        app.test_client().get("/boom")
    with pytest.raises(KeyError):
        app.test_client().get("/users/7", query_string={"fail": "1"})
    assert [r.name for r in collect.reports] == ["GET /boom", "GET /users/<int:user_id>"]
    assert [r.query_count for r in collect.reports] == [2, 7]


def test_flask_404_named_after_the_path_with_ids_collapsed(engine: Engine) -> None:
    """No rule matched: the unit is named after the path, ids collapsed."""
    app = flask_app(engine)
    collect = wrap(app)
    with app.test_client().get("/nope/123") as response:
        assert response.status_code == 404
    assert [r.name for r in collect.reports] == ["GET /nope/{id}"]


def test_streamed_body_statements_are_counted_after_the_headers(engine: Engine) -> None:
    """Statements issued while the body streams count in the report; the header, sent
    before the body, counts those issued before the response started."""
    app = flask_app(engine)
    collect = wrap(app, header=True, server_timing=True)
    response = app.test_client().get("/stream/4")
    assert response.text == "0\n1\n2\n3\n"
    assert response.headers["X-SQL-Queries"] == '0; findings=""'
    assert response.headers["Server-Timing"].startswith("db;dur=")
    assert collect.named("GET /stream/<int:n>").query_count == 4


def test_header_carries_count_and_finding_kinds(engine: Engine) -> None:
    """``X-SQL-Queries`` shows the count and the kinds found, under the route's budget."""
    app = flask_app(engine)
    wrap(app, header=True, budgets={"GET /users/*": 2})
    response = app.test_client().get("/users/3")
    assert response.headers["X-SQL-Queries"] == '3; findings="query_budget repeated_query"'


def test_excluded_paths_are_not_audited(engine: Engine) -> None:
    """Health checks pass through: no report, no header."""
    app = flask_app(engine)
    collect = wrap(app, header=True, exclude=["/health"])
    response = app.test_client().get("/health")
    assert response.text == "ok"
    assert "X-SQL-Queries" not in response.headers
    assert collect.reports == []


def test_exclude_by_route_template_skips_reporting(engine: Engine) -> None:
    """A pattern naming a route template is matched once the route is known: the request
    still runs inside a scope (its path matched nothing up front) but is never reported."""
    app = flask_app(engine)
    collect = wrap(app, exclude=["GET /users/<int:user_id>"])
    client = app.test_client()
    assert client.get("/users/2").text == "ok"
    assert client.get("/stream/1").text == "0\n"
    assert [r.name for r in collect.reports] == ["GET /stream/<int:n>"]


def test_sample_rate_zero_reports_nothing_but_counts_for_the_header(engine: Engine) -> None:
    """Unsampled requests are counted only: exact header, no detectors, no reporters."""
    app = flask_app(engine)
    collect = wrap(app, header=True, sample_rate=0.0)
    response = app.test_client().get("/users/5")
    assert response.headers["X-SQL-Queries"] == "5"
    assert collect.reports == []


def test_app_exception_propagates_unchanged_and_audit_is_reported(engine: Engine) -> None:
    """The app's own exception reaches the server as it was raised; the audit is closed and
    reported, and the policy never replaces the app's error with AuditFailed."""
    app = flask_app(engine)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    collect = wrap(app, on_finding="raise", budgets={"GET /boom": 0})
    with pytest.raises(KeyError, match="app's own error"):
        app.test_client().get("/boom")
    report = collect.named("GET /boom")
    assert report.query_count == 2
    assert report.ended is not None
    assert CURRENT.get() is None


def test_on_finding_raise_fails_the_request_in_development(engine: Engine) -> None:
    """Development policy: once the body is done, findings raise AuditFailed to the caller
    (the test client here; the dev server logs it), carrying the report."""
    app = flask_app(engine)
    wrap(app, on_finding="raise", budgets={"GET /users/*": 1})
    client = app.test_client()
    assert client.get("/users/1").status_code == 200
    with pytest.raises(AuditFailed) as failed:
        client.get("/users/2").get_data()
    assert failed.value.report.name == "GET /users/<int:user_id>"
    response = client.get("/users/3")
    with pytest.raises(AuditFailed):
        response.close()  # closed unread, as `with client.get(...)` does
    assert CURRENT.get() is None


class DetectorBugError(Exception):
    pass


class Exploding:
    kind = "n_plus_one"

    def detect(self, report: AuditReport, records: Any) -> Iterable[Any]:
        raise DetectorBugError("detector bug")


class ReporterExploded:
    def report(self, report: AuditReport) -> None:
        raise RuntimeError("reporter bug")


class ExporterDown:
    """A reporter exporting JSON lines to a sink that has gone away."""

    def __init__(self, path: Path) -> None:
        self.sink = path.open("w")
        self.sink.close()

    def report(self, report: AuditReport) -> None:
        self.sink.write(f"{report.to_dict()}\n")


@pytest.mark.parametrize("broken", ["detector", "reporter", "exporter"])
def test_sqlaudit_failure_is_logged_once_and_response_unchanged(
    engine: Engine,
    broken: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in a detector, reporter or exporter never reaches the client: the response is
    the one the app made, the error is logged once, the report counts it."""
    monkeypatch.setenv("SQLAUDIT_STRICT", "0")
    app = flask_app(engine)
    options: dict[str, Any] = {"header": True}
    if broken == "detector":
        options["detectors"] = [Exploding()]
    elif broken == "reporter":
        options["reporters"] = [ReporterExploded()]
    else:
        options["reporters"] = [ExporterDown(tmp_path / "out.jsonl")]
    collect = wrap(app, **options)
    client = app.test_client()
    with caplog.at_level(logging.ERROR, logger="sqlaudit"):
        bodies = [client.get(f"/users/{n}").text for n in (1, 2, 3)]
    assert bodies == ["ok", "ok", "ok"]
    assert [r.query_count for r in collect.reports] == [1, 2, 3]
    assert all(r.internal_errors >= 1 for r in collect.reports)
    logged = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert len(logged) == 1
    assert CURRENT.get() is None


def test_middleware_failure_leaves_the_response_alone(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in the middleware's own header code drops the header, nothing else."""
    monkeypatch.setenv("SQLAUDIT_STRICT", "0")

    class HeaderBugError(Exception):
        pass

    def explode(*args: Any) -> None:
        raise HeaderBugError

    monkeypatch.setattr("sqlaudit.web.auditor.run_detectors", explode)
    app = flask_app(engine)
    collect = wrap(app, header=True)
    with caplog.at_level(logging.ERROR, logger="sqlaudit"):
        response = app.test_client().get("/users/2")
    assert response.status_code == 200
    assert response.text == "ok"
    assert "X-SQL-Queries" not in response.headers
    assert collect.named("GET /users/<int:user_id>").query_count == 2
    assert any("response headers" in r.getMessage() for r in caplog.records)


def raw_streaming_app(engine: Engine) -> Callable[[dict[str, Any], StartResponse], Any]:
    """A plain WSGI app streaming one chunk per statement; records when it was closed."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for i in range(10):
                select_n(engine, 1)
                yield b"%d\n" % i
        finally:
            environ["test.closed"] = True

    return app


def test_client_disconnect_mid_stream_closes_the_audit(engine: Engine) -> None:
    """The server stops iterating and calls close() (PEP 3333) after 3 of 10 chunks: the
    app's generator is closed, the audit closed and reported with the 3 statements."""
    collect = Collect()
    middleware = WSGIAuditMiddleware(raw_streaming_app(engine), untimed(), reporters=[collect])
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/feed/7"}
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    iterator = iter(body)
    assert [next(iterator) for _ in range(3)] == [b"0\n", b"1\n", b"2\n"]
    assert CURRENT.get() is None  # not left set between chunks
    body.close()  # type: ignore[attr-defined]
    assert environ["test.closed"] is True
    [report] = collect.reports
    assert (report.name, report.query_count) == ("GET /feed/{id}", 3)
    body.close()  # type: ignore[attr-defined]
    assert len(collect.reports) == 1


def test_body_neither_read_nor_closed_is_reported_when_collected(engine: Engine) -> None:
    """A test client response that is never read nor closed still ends its audit: its
    finaliser leaves the unit to the auditor (``test_middleware_finalisers``), which
    finishes it at its next request or ``drain()``."""
    collect = Collect()
    middleware = WSGIAuditMiddleware(raw_streaming_app(engine), untimed(), reporters=[collect])
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/feed"}
    body = middleware(environ, lambda status, headers, exc_info=None: None)
    next(iter(body))
    del body
    assert collect.reports == []
    middleware.auditor.drain()
    assert [r.query_count for r in collect.reports] == [1]


def test_werkzeug_client_on_a_plain_wsgi_app(engine: Engine) -> None:
    """Any WSGI app works: named after its path with ids collapsed, streamed body counted."""
    collect = Collect()
    middleware = WSGIAuditMiddleware(
        raw_streaming_app(engine), untimed(), reporters=[collect], header=True
    )
    response = Client(middleware).get("/feed/42")
    assert response.get_data() == b"".join(b"%d\n" % i for i in range(10))
    assert [(r.name, r.query_count) for r in collect.reports] == [("GET /feed/{id}", 10)]


def test_request_inside_an_enclosing_audit_rolls_up(engine: Engine) -> None:
    """A test auditing a whole client call also sees the request's statements."""
    app = flask_app(engine)
    wrap(app)
    with sqlaudit.audit("test", on_finding="ignore", **UNTIMED) as outer:
        app.test_client().get("/users/2")
    assert outer.query_count == 2


def test_dev_page_served_at_its_path(engine: Engine) -> None:
    """The page lists the last requests, with no script, and is itself not audited."""
    app = flask_app(engine)
    collect = wrap(app, dev_page="/_sqlaudit")
    client = app.test_client()
    client.get("/users/3")
    page = client.get("/_sqlaudit")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert "GET /users/&lt;int:user_id&gt;" in page.text
    assert "<script" not in page.text
    assert len(collect.reports) == 1
    assert client.post("/_sqlaudit").status_code == 405


# -- the application's close(), through real servers (issue 14, row 7) -----------------------


class CloseFailedError(Exception):
    pass


class FailingClose:
    """A body whose ``close()`` raises (after counting how often it ran)."""

    def __init__(self, chunks: list[bytes], engine: Engine) -> None:
        self.chunks = chunks
        self.engine = engine
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            select_n(self.engine, 1)
            yield chunk

    def close(self) -> None:
        self.closed += 1
        raise CloseFailedError("the application's close()")


def serve_once(server: str, app: Callable[..., Any]) -> tuple[int, bytes]:
    """One HTTP/1.1 GET through a real server (``wsgiref`` or Werkzeug's), in a thread."""
    import http.client
    import threading
    import wsgiref.simple_server

    from werkzeug.serving import WSGIRequestHandler, make_server

    class Http11(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"  # so that a body of unknown length is sent chunked

        def log(self, *args: Any) -> None:  # quiet: the failing close() is logged on purpose
            pass

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd: Any
    if server == "wsgiref":
        httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
        httpd.handle_error = lambda *args: None  # the failing close() is expected
    else:
        httpd = make_server("127.0.0.1", 0, app, request_handler=Http11)
    thread = threading.Thread(target=httpd.handle_request)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=30)
        conn.request("GET", "/feed/7")
        response = conn.getresponse()
        status, body = response.status, response.read()
        conn.close()
    finally:
        thread.join(30)
        httpd.server_close()
    return status, body


@pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
@pytest.mark.parametrize("chunks", [[], [b"a\n", b"b\n", b"c\n"]], ids=["empty", "streamed"])
def test_an_exception_from_the_apps_close_leaves_the_response_whole(
    engine: Engine, server: str, chunks: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """The application's ``close()`` raising is the server's business, after the response:
    through the middleware an empty body still answers 200 and a chunked one arrives whole,
    exactly as without it; ``close()`` runs once, and the unit is reported with its
    statements. (The middleware used to close the body inside the last ``next()``.)"""
    outcomes = []
    for wrapped in (False, True):
        collect = Collect()
        body = FailingClose(chunks, engine)

        def app(environ: dict[str, Any], start_response: StartResponse, body: Any = body) -> Any:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return body

        served = WSGIAuditMiddleware(app, untimed(), reporters=[collect]) if wrapped else app
        outcomes.append(serve_once(server, served))
        assert body.closed == 1
        if wrapped:
            assert [(r.name, r.query_count) for r in collect.reports] == [
                ("GET /feed/{id}", len(chunks))
            ]
    assert outcomes[0] == outcomes[1] == (200, b"".join(chunks))


def test_the_apps_close_runs_when_the_server_closes_the_body(engine: Engine) -> None:
    """PEP 3333: the application's iterable is closed when the server closes ours, never
    during iteration; its exception reaches the server from ``close()``. Closed before the
    end, its statements count in the unit; after the end, in the server's context."""
    collect = Collect()
    bodies: list[FailingClose] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        bodies.append(FailingClose([b"a", b"b"], engine))
        return bodies[-1]

    middleware = WSGIAuditMiddleware(app, untimed(), reporters=[collect])
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
    body: Any = middleware(dict(environ), lambda *args: None)
    assert list(body) == [b"a", b"b"]  # exhausted: no close() yet, no exception
    assert bodies[0].closed == 0
    assert [r.query_count for r in collect.reports] == [2]
    with pytest.raises(CloseFailedError):
        body.close()
    assert bodies[0].closed == 1
    body.close()  # idempotent
    assert bodies[0].closed == 1

    early: Any = middleware(dict(environ), lambda *args: None)
    assert next(early) == b"a"
    with pytest.raises(CloseFailedError):
        early.close()  # closed early: the audit ends, marked as ended by an error
    assert [r.query_count for r in collect.reports] == [2, 1]
    assert CURRENT.get() is None
