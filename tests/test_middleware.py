"""The middlewares' shared, framework-free logic: naming, budgets, sampling, options, page."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from timing import untimed

import sqlaudit
from sqlaudit import AuditConfig, ConfigError
from sqlaudit.capture.scope import CURRENT
from sqlaudit.report import AuditReport, scope_of
from sqlaudit.sql.printable import UNPRINTABLE
from sqlaudit.web.auditor import RequestAuditor, collapse_ids
from sqlaudit.web.devpage import DevPage


@pytest.fixture
def engine(sqlite_engine: Engine) -> Iterator[Engine]:
    handle = sqlaudit.instrument(sqlite_engine)
    yield sqlite_engine
    handle.remove()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", "/"),
        ("/streams", "/streams"),
        ("/users/42", "/users/{id}"),
        ("/users/42/posts/7", "/users/{id}/posts/{id}"),
        ("/v2/users", "/v2/users"),
        ("/reports/2024-01-31", "/reports/{id}"),
        ("/items/3f2b6c1e-8a4d-4c3b-9f1e-2a7d5c6b8e90", "/items/{id}"),
        ("/objects/5f1d7e3a9b8c4d2e1f0a6b7c", "/objects/{id}"),
        ("/orders/01HZX3K9Q7M2W8R5T4V6Y1B0CD", "/orders/{id}"),
        ("/page2/abc", "/page2/abc"),
        ("/reset/canary-5ecr3t-7f3a", "/reset/{id}"),
        ("/invite/Xk3pQ9zL2mWv", "/invite/{id}"),
        ("/oauth2/callback", "/oauth2/callback"),
        ("/docs/html5-features", "/docs/{id}"),
        ("/files/report.pdf", "/files/report.pdf"),
        # issue 14: e-mail addresses and non-ASCII segments are values, not route names
        ("/users/bob@example.com/orders", "/users/{id}/orders"),
        ("/users/山田", "/users/{id}"),
        ("/users/alice", "/users/alice"),  # kept: documented (name routes by their template)
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_collapse_ids(path: str, expected: str) -> None:
    """Segments that identify a record become ``{id}``; resource names stay."""
    assert collapse_ids(path) == expected


def test_collapse_ids_bounds_the_name() -> None:
    """A client cannot make a unit name (or the dev page) grow without bound."""
    assert len(collapse_ids("/a" * 10_000)) <= 203


@pytest.mark.parametrize(
    ("name", "budget"),
    [
        ("GET /streams", 12),
        ("GET /streams/{stream_id}", 3),
        ("POST /streams/{stream_id}", 40),
        ("GET /admin/users", 40),
        ("GET /other", None),
    ],
)
def test_budget_for_exact_then_first_glob(name: str, budget: int | None) -> None:
    """Exact names win over globs; globs are tried in the order given."""
    auditor = RequestAuditor(
        budgets={"GET /streams": 12, "GET /streams/*": 3, "* /admin/*": 40, "POST *": 40}
    )
    assert auditor.budget_for(name) == budget


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sample_rate": 1.5}, "sample_rate must be a number from 0 to 1, got 1.5"),
        ({"sample_rate": True}, "sample_rate must be a number from 0 to 1, got True"),
        ({"budgets": {"/streams": 3}}, 'budgets keys must be "METHOD /route"'),
        ({"budgets": {"GET /x": -1}}, "budgets['GET /x'] must be an int >= 0, got -1"),
        ({"budgets": [("GET /x", 1)]}, "budgets must be a mapping"),
        ({"exclude": [""]}, "exclude must be paths or globs"),
        ({"header": "X SQL"}, "header must be True, False or an HTTP header name"),
        ({"server_timing": "yes"}, "server_timing must be True or False, got 'yes'"),
        ({"dev_page": "_sqlaudit"}, 'dev_page must be a path starting with "/"'),
        ({"dev_page": "/_sqlaudit", "dev_page_size": 0}, "dev_page_size must be an int >= 1"),
        ({"on_finding": "explode"}, "on_finding must be one of"),
        ({"config": {"max_queries": 3}}, "config must be an AuditConfig, got dict"),
        ({"reporters": [object()]}, "reporters[0] must be a reporter (an object with a report("),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_bad_options_name_the_option_and_value(options: dict[str, object], message: str) -> None:
    """Every option is validated when the middleware is built, with a message that helps."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        RequestAuditor(**options)  # type: ignore[arg-type]


def test_default_config_is_production_and_on_finding_overrides() -> None:
    """Without a config the production floors apply; ``on_finding`` replaces the policy."""
    auditor = RequestAuditor(on_finding="ignore")
    assert auditor.config == AuditConfig.for_production(on_finding="ignore")


@pytest.mark.parametrize(
    ("pattern", "method", "path", "excluded"),
    [
        ("/health", "GET", "/health", True),
        ("/health", "GET", "/healthz", False),
        ("/static/*", "GET", "/static/app.css", True),
        ("GET /static/*", "POST", "/static/app.css", False),
        ("GET /static/*", "GET", "/static/app.css", True),
    ],
)
def test_exclude_matches_path_or_method_and_path(
    pattern: str, method: str, path: str, excluded: bool
) -> None:
    """A pattern with a space matches ``METHOD /path``, one without matches the path."""
    auditor = RequestAuditor(exclude=[pattern])
    assert (auditor.begin(method, path) is None) is excluded


def test_sample_rate_half_samples_about_half() -> None:
    """Head sampling: each request is audited in full with probability ``sample_rate``."""
    auditor = RequestAuditor(sample_rate=0.5, header=True)
    units = [auditor.begin("GET", "/x") for _ in range(4000)]
    sampled = sum(1 for u in units if u is not None and u.sampled)
    assert all(u is not None for u in units)  # the header needs every request counted
    assert 1700 < sampled < 2300


def test_unsampled_requests_open_nothing_unless_their_count_is_shown() -> None:
    """sample_rate=0 with no header, timing or page: requests run with no scope at all."""
    assert RequestAuditor(sample_rate=0.0).begin("GET", "/x") is None
    unit = RequestAuditor(sample_rate=0.0, server_timing=True).begin("GET", "/x")
    assert unit is not None
    assert not unit.sampled
    assert unit.report.config.max_records == 0


def test_unsampled_unit_counts_without_recording(engine: Engine) -> None:
    """A counting-only unit counts statements and DB time but records none of them."""
    auditor = RequestAuditor(sample_rate=0.0, header=True)
    unit = auditor.begin("GET", "/x")
    assert unit is not None
    token = CURRENT.set(unit.scope)
    try:
        with engine.connect() as connection:
            for _ in range(5):
                connection.execute(text("SELECT 1"))
    finally:
        CURRENT.reset(token)
    assert auditor.response_headers(unit) == [("X-SQL-Queries", "5")]
    auditor.finish(unit, failing=False)
    assert unit.report.query_count == 5
    assert unit.report.statements == ()


def test_header_lists_finding_kinds_once_each_and_budget_applies_by_route(
    engine: Engine,
) -> None:
    """The header's kinds come from the detectors, under the route's budget."""
    auditor = RequestAuditor(untimed(), header=True, budgets={"GET /users/{id}": 2})
    unit = auditor.begin("GET", "/users/7")
    assert unit is not None
    assert unit.report.name == "GET /users/{id}"
    token = CURRENT.set(unit.scope)
    try:
        with engine.connect() as connection:
            for _ in range(4):
                connection.execute(text("SELECT 1"))
    finally:
        CURRENT.reset(token)
    [(name, value)] = auditor.response_headers(unit)
    assert name == "X-SQL-Queries"
    assert value == '4; findings="query_budget repeated_query"'


def test_finish_renames_after_the_route() -> None:
    """The provisional name gives way to ``"{method} {route}"`` before detectors run."""
    auditor = RequestAuditor(reporters=())
    unit = auditor.begin("DELETE", "/users/7")
    assert unit is not None
    unit.route = "/users/<int:user_id>"
    auditor.finish(unit, failing=False)
    assert unit.report.name == "DELETE /users/<int:user_id>"


def test_dev_page_escapes_everything_and_never_shows_values(engine: Engine) -> None:
    """Names and SQL are escaped; statements appear as fingerprints, never bind values."""
    page = DevPage("/_sqlaudit", 5)
    report = AuditReport('GET /<script>alert("x")</script>', AuditConfig())
    token = CURRENT.set(scope_of(report))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT :secret"), {"secret": "hunter2-value"})
            connection.execute(text("SELECT 'inline-literal-value'"))
    finally:
        CURRENT.reset(token)
    page.add(report, 200, True)
    html = page.render().decode()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "hunter2-value" not in html
    assert "inline-literal-value" not in html
    assert "SELECT ?" in html


def test_dev_page_keeps_the_last_n_newest_first() -> None:
    """The page is a bounded ring: the oldest requests fall off."""
    page = DevPage("/_sqlaudit", 3)
    for n in range(5):
        page.add(AuditReport(f"GET /r{n}", AuditConfig()), 200, True)
    assert [e.name for e in page.entries()] == ["GET /r4", "GET /r3", "GET /r2"]


def test_importing_the_middlewares_imports_no_framework() -> None:
    """sqlaudit.wsgi and sqlaudit.asgi are pure protocol code."""
    import subprocess

    code = (
        "import sys, sqlaudit.wsgi, sqlaudit.asgi\n"
        "bad = [m for m in ('flask', 'werkzeug', 'starlette', 'fastapi', 'django', "
        "'opentelemetry') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


FORGED = "WARNING sqlaudit forged line"


@pytest.mark.parametrize("protocol", ["wsgi", "asgi"])
def test_a_line_break_in_the_path_never_forges_a_log_line(
    engine: Engine, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14, row 11: a request to ``/a%0AWARNING ...`` (and other control characters) is
    named with them escaped, so the log record, the text report and the development page
    each show one line where the path was."""
    import asyncio
    import logging

    import httpx
    from werkzeug.test import Client

    from sqlaudit.asgi import ASGIAuditMiddleware
    from sqlaudit.wsgi import WSGIAuditMiddleware

    def query() -> None:
        with engine.connect() as conn:
            for _ in range(3):
                conn.execute(text("SELECT 1")).all()

    def wsgi_app(environ: dict[str, object], start_response: object) -> list[bytes]:
        query()
        start_response("200 OK", [])  # type: ignore[operator]
        return [b"ok"]

    async def asgi_app(scope: dict[str, object], receive: object, send: object) -> None:
        query()
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    collect: list[AuditReport] = []
    options = {"config": untimed(), "dev_page": "/_sqlaudit"}

    class Keep:
        def report(self, report: AuditReport) -> None:
            collect.append(report)

    from sqlaudit.reporters import LogReporter

    reporters = [Keep(), LogReporter(summary=True)]
    path = "/a%0A" + FORGED.replace(" ", "%20") + "%E2%80%AE%1B[31m"
    caplog.set_level(logging.INFO, logger="sqlaudit")
    if protocol == "wsgi":
        wsgi = WSGIAuditMiddleware(wsgi_app, reporters=reporters, **options)  # type: ignore[arg-type]
        client = Client(wsgi)
        with client.get(path) as response:
            assert response.status_code == 200
        with client.get("/_sqlaudit") as response:
            page = response.get_data(as_text=True)
    else:
        asgi = ASGIAuditMiddleware(asgi_app, reporters=reporters, **options)  # type: ignore[arg-type]

        async def main() -> str:
            transport = httpx.ASGITransport(app=asgi)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                assert (await http.get(path)).status_code == 200
                return (await http.get("/_sqlaudit")).text

        page = asyncio.run(main())
    [report] = collect
    # WSGI's PATH_INFO reads the path's bytes as latin-1 (PEP 3333), ASGI's as UTF-8.
    assert report.name.startswith("GET /a\\nWARNING sqlaudit forged line")
    assert report.name.endswith("\\x1b[31m")
    assert not UNPRINTABLE.search(report.name)
    assert report.render().splitlines()[0].startswith("sqlaudit: GET /a\\nWARNING")
    logged = [r.getMessage() for r in caplog.records if r.name == "sqlaudit"]
    assert logged and all("\n" not in message for message in logged)
    assert all(not line.startswith(FORGED) for message in logged for line in message.split("\n"))
    assert FORGED in page and "\n" + FORGED not in page and "\u202e" not in page
