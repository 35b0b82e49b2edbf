"""The development page's timeline, views and SQL text, through the real middlewares."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask
from models import Author, prepared
from records import q, tx
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from timing import Clock, untimed

from sqlaudit import Finding, Severity
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.model.records import QueryRecord, TransactionRecord
from sqlaudit.report.sqltext import format_sql
from sqlaudit.web import devhtml, timeline
from sqlaudit.web.devpage import View, parse_view
from sqlaudit.wsgi import WSGIAuditMiddleware

CANARY = "canary-5ecr3t-7f3a"


def books_page(engine: Engine) -> int:
    """The N+1 under test: one lazy load of ``Author.books`` per author (two frames deep)."""
    with Session(engine) as session:
        return titles(session)


def titles(session: Session) -> int:
    return sum(len(author.books) for author in session.scalars(select(Author).order_by(Author.id)))


def make_app(engine: Engine, clock: Clock | None = None, **options: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/authors")
    def authors() -> str:
        return str(books_page(engine))

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        with engine.begin() as connection:
            connection.execute(
                text("SELECT id, name FROM sqlaudit_t_author WHERE id = :id"), {"id": order_id}
            )
            if clock is not None:
                clock.advance(0.25)  # the transaction sits idle between its statements
            connection.execute(text(f"UPDATE sqlaudit_t_author SET name = '{CANARY}' WHERE id = 1"))
        with engine.connect() as connection:
            connection.begin()
            connection.execute(
                text("INSERT INTO sqlaudit_t_author (id, name) VALUES (:id, :name)"),
                {"id": 1000 + order_id, "name": CANARY},
            )
            connection.rollback()
        return "ok"

    @app.get("/many/<int:n>")
    def many(n: int) -> str:
        with engine.connect() as connection:
            for i in range(n):
                connection.execute(text("SELECT :i"), {"i": i})
        return "ok"

    @app.get("/odd/<path:rest>")
    def odd(rest: str) -> str:
        with engine.connect() as connection:
            connection.execute(text('SELECT 1 AS "</pre><script>alert(1)</script>"'))
        return "ok"

    options.setdefault("config", untimed())
    app.wsgi_app = WSGIAuditMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, dev_page="/_sqlaudit", on_finding="ignore", **options
    )
    return app


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[Engine]:
    with prepared(sqlite_engine, authors=4, books_each=1) as engine:
        yield engine


def get(app: Flask, url: str) -> int:
    """Request ``url`` and close the response: the middleware closes its audit then."""
    with app.test_client().get(url) as response:
        response.get_data()
        return response.status_code


def page(app: Flask, query: str = "") -> str:
    response = app.test_client().get("/_sqlaudit" + query)
    assert response.status_code == 200
    assert "<script" not in response.text
    return response.text


def positions(html: str, *needles: str) -> list[int]:
    found = [html.find(needle) for needle in needles]
    assert -1 not in found, [n for n, at in zip(needles, found, strict=True) if at < 0]
    return found


def test_timeline_shows_each_transaction_in_order_with_its_whole_sql(db: Engine) -> None:
    """A request with a committed and a rolled-back transaction shows both, in execution
    order: BEGIN, its statements with their whole SQL (columns listed, placeholders as ``?``),
    COMMIT; then BEGIN, the INSERT, ROLLBACK. The real path stands beside the route, its id
    collapsed; the literal the application inlined and the bind values appear nowhere."""
    app = make_app(db)
    assert get(app, "/orders/42") == 200
    html = page(app)

    assert "GET /orders/&lt;int:order_id&gt;" in html
    assert "<code>/orders/{id}</code>" in html
    assert "/orders/42" not in html
    first, second = re.findall(r'<section class="tx c\d">.*?</section>', html, re.DOTALL)
    assert "Transaction 1: 2 statements, 1 write" in first
    assert "Transaction 2: 1 statement, 1 write" in second
    before_second = positions(
        first, "BEGIN +", 'id="r1-s1"', "SELECT id,\n       name", 'id="r1-s2"', "COMMIT +"
    )
    assert before_second == sorted(before_second)
    assert "WHERE id = ?</pre>" in first
    assert "SET name = ?" in first
    in_second = positions(second, "BEGIN +", 'id="r1-s3"', "VALUES (?, ?)", "ROLLBACK +")
    assert in_second == sorted(in_second)
    stack = re.search(r'id="r1-s1".*?<ol class="stack">(.*?)</ol>', first, re.DOTALL)
    assert stack is not None and "tests/test_devpage_timeline.py:" in stack.group(1)
    assert "in order()" in stack.group(1)
    assert CANARY not in html
    assert "1042" not in html


def test_findings_link_to_their_statements_and_back(db: Engine) -> None:
    """The N+1 finding lists its lazy loads as links to their timeline entries; each entry is
    open, flagged with a link back to the finding, and shows the whole application stack (the
    helper that loads, then the view that called it)."""
    app = make_app(db)
    get(app, "/authors")
    html = page(app)

    finding = re.search(
        r'<li id="r1-f(\d+)"><span class="k warning">.*?N\+1: Author.books.*?</li>', html
    )
    assert finding is not None
    number = finding.group(1)
    links = re.findall(r'href="#r1-s(\d+)"', finding.group(0))
    assert links == ["2", "3", "4", "5"]  # the query is #1, then one lazy load per author
    for step in links:
        entry = re.search(
            rf'<li id="r1-s{step}" class="step flag"><details open>(.*?)</details></li>',
            html,
            re.DOTALL,
        )
        assert entry is not None, step
        assert f'href="#r1-f{number}">n_plus_one</a>' in entry.group(1)
        assert "ORM lazy load of Author.books" in entry.group(1)
        frames = re.findall(r"<li><code>([^<]*)</code></li>", entry.group(1))
        functions = [f.rsplit(" in ", 1)[1] for f in frames if "&lt;genexpr&gt;" not in f]
        assert functions == ["titles()", "books_page()", "authors()"]
    assert 'id="r1-s1" class="step">' in html  # the parents' query is not flagged


def test_one_request_view_unfolds_it_alone(db: Engine) -> None:
    """``?request=N`` shows request N alone, unfolded even when clean, with a way back."""
    app = make_app(db)
    for url in ("/orders/1", "/authors", "/orders/2"):
        get(app, url)
    html = page(app, "?request=3")
    assert re.findall(r'<details class="req" id="r(\d+)"( open)?>', html) == [("3", " open")]
    assert '| request 3 <a href="?">(all requests)</a>' in html
    assert page(app, "?request=99").count('<details class="req"') == 0


def test_idle_stretches_inside_a_transaction_are_shown(db: Engine, clock: Clock) -> None:
    """With the clock under the test's control, the 250 ms the transaction waited between its
    two statements is an idle row between them; no other idle row appears."""
    app = make_app(db, clock)
    get(app, "/orders/7")
    html = page(app)
    assert html.count('<li class="idle">') == 1
    at = positions(html, 'id="r1-s1"', '<li class="idle">idle 250.0 ms</li>', 'id="r1-s2"')
    assert at == sorted(at)


def test_timeline_is_bounded_per_request(db: Engine) -> None:
    """A request of 250 statements keeps the first ``MAX_STEPS`` on its timeline and says how
    many it left out; the statement count stays exact."""
    app = make_app(db)
    get(app, "/many/250")
    html = page(app)
    assert f'id="r1-s{timeline.MAX_STEPS}"' in html
    assert f'id="r1-s{timeline.MAX_STEPS + 1}"' not in html
    assert f"{250 - timeline.MAX_STEPS} more statements are not on the timeline" in html
    assert "250 statements" in html


def test_request_path_and_sql_are_escaped(db: Engine) -> None:
    """A path and a quoted identifier that hold markup are shown as text, never as markup."""
    app = make_app(db)
    get(app, "/odd/<b>x</b>")
    html = page(app)
    assert "<b>x</b>" not in html
    assert "/odd/&lt;b&gt;x&lt;/b&gt;" in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "</pre><script>" not in html


def test_by_route_view_counts_and_filters(db: Engine) -> None:
    """``?view=routes`` gives one row per route with its request count, statuses and finding
    occurrences; ``findings=1`` keeps the routes (requests) with findings; a route's link lists
    its requests only. All of it through links, without script."""
    app = make_app(db)
    for url in ("/authors", "/orders/1", "/authors", "/orders/2", "/missing/7"):
        get(app, url)

    routes = page(app, "?view=routes")
    rows = re.findall(r"<tr><td><a href=\"([^\"]+)\">([^<]+)</a></td>(.*?)</tr>", routes)
    by_name = {name: (href, cells) for href, name, cells in rows}
    assert set(by_name) == {"GET /authors", "GET /orders/&lt;int:order_id&gt;", "GET /missing/{id}"}
    href, cells = by_name["GET /authors"]
    assert cells.startswith('<td class="n">2</td><td>200 x2</td>')
    assert "n_plus_one &times;2" in cells
    assert by_name["GET /missing/{id}"][1].startswith('<td class="n">1</td><td>404 x1</td>')
    assert href == "?route=GET+%2Fauthors"

    with_findings = page(app, "?view=routes&findings=1")
    assert "GET /authors" in with_findings and "/orders/" not in with_findings.split("<table>")[1]

    requests_with_findings = page(app, "?findings=1")
    listed = re.findall(r'<td><a href="#r(\d+)">', requests_with_findings)
    assert listed == ["3", "1"]  # newest first, only the two N+1 requests

    one_route = page(app, "?route=GET+%2Forders%2F%3Cint%3Aorder_id%3E")
    assert re.findall(r'<td><a href="#r(\d+)">', one_route) == ["4", "2"]
    assert '<a href="?view=routes&amp;findings=1">Only with findings</a>' in routes


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", View()),
        ("view=routes", View(view="routes")),
        ("view=nonsense&findings=yes", View()),
        ("findings=1&route=GET+%2Fa", View(findings=True, route="GET /a")),
        ("route=" + "x" * 5000, View(route="x" * 400)),
        ("%%%&&&=", View()),
        ("request=12", View(request=12)),
        ("request=-1&request=x", View()),
        ("&".join(f"a{i}=1" for i in range(50)), View()),
    ],
    ids=[
        "empty",
        "routes",
        "unknown-values",
        "filters",
        "long-route",
        "garbage",
        "request",
        "bad-request",
        "too-many-fields",
    ],
)
def test_parse_view(query: str, expected: View) -> None:
    """The page reads only the parameters it knows, bounded, and never fails on a query."""
    assert parse_view(query) == expected


def test_asgi_page_reads_its_query_string(db: Engine) -> None:
    """The ASGI middleware hands the query string to the page (``scope["query_string"]``)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        books_page(db)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = ASGIAuditMiddleware(app, untimed(), dev_page="/_sqlaudit", on_finding="ignore")

    async def run() -> str:
        transport = httpx.ASGITransport(app=middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await client.get("/books/5")
            return (await client.get("/_sqlaudit?view=routes&findings=1")).text

    html = asyncio.run(run())
    assert "<th class=n>requests with findings</th>" in html
    assert '<a href="?findings=1&amp;route=GET+%2Fbooks%2F%7Bid%7D">GET /books/{id}</a>' in html


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a, b FROM t WHERE id = :id", "SELECT a,\n       b\nFROM t\nWHERE id = ?"),
        (
            "select a from t where x = %(x)s and y = $1",
            "select a\nfrom t\nwhere x = ?\n  and y = ?",
        ),
        ("INSERT INTO c (id, body) VALUES (:id, :body)", "INSERT INTO c (id, body)\nVALUES (?, ?)"),
        (
            "SELECT * FROM t WHERE name = 'secret' AND n = 42",
            "SELECT *\nFROM t\nWHERE name = ?\n  AND n = ?",
        ),
        ("SELECT * FROM t WHERE id IN (?, ?, ?)", "SELECT *\nFROM t\nWHERE id IN (?)"),
    ],
    ids=["named", "pyformat-and-numeric", "keyword-named-column", "inlined-literals", "in-list"],
)
def test_format_sql(sql: str, expected: str) -> None:
    """``format_sql`` indents the whole statement, placeholders as ``?`` and no literal; the
    case of words is the statement's own (a column named ``body`` stays ``body``)."""
    assert format_sql(sql) == expected


@pytest.mark.parametrize(
    ("sql", "dialect", "expected"),
    [
        ('SELECT "order".id FROM "order" WHERE x = %(x)s', "postgresql", '"order".id'),
        ("SELECT `order`.id FROM `order` WHERE x = %s", "mysql", "`order`.id"),
    ],
    ids=["postgresql", "mysql"],
)
def test_format_sql_keeps_the_dialects_quoted_names(sql: str, dialect: str, expected: str) -> None:
    """With its dialect, a statement's quoted identifiers stay (they are names, not values)."""
    formatted = format_sql(sql, dialect)
    assert expected in formatted
    assert "'v'" not in formatted


def test_format_sql_without_sqlparse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without sqlparse the statement is the flat fingerprint: still no values."""
    monkeypatch.setitem(sys.modules, "sqlparse", None)
    assert (
        format_sql("SELECT zz_unseen FROM t WHERE v = 'x'") == "SELECT zz_unseen FROM t WHERE v = ?"
    )


def test_page_weight_is_bounded(db: Engine) -> None:
    """Only the newest ``MAX_DETAILED`` requests are unfolded on the list; older ones link to
    their own view, which shows them whole."""
    app = make_app(db)
    for _ in range(devhtml.MAX_DETAILED + 2):
        get(app, "/many/3")
    html = page(app)
    shown = re.findall(r'<details class="req" id="r(\d+)"', html)
    assert shown == [str(n) for n in range(devhtml.MAX_DETAILED + 2, 2, -1)]
    assert '<a href="?request=1">GET /many/&lt;int:n&gt;</a>' in html
    assert "2 older requests not unfolded here" in html
    assert 'id="r1-s3"' in page(app, "?request=1")


@dataclass
class Recorded:
    """What ``timeline.build`` reads of a report, hand-built."""

    statements: tuple[QueryRecord, ...]
    transaction_records: tuple[TransactionRecord, ...]
    started: float = 0.0

    @property
    def recorded_count(self) -> int:
        return len(self.statements)


def test_statements_go_to_their_connections_transaction() -> None:
    """Two connections' transactions overlapping in time keep their own statements, in
    execution order; statements outside any recorded transaction form one block between
    transactions; the finding's statements carry its number; idle stretches are measured
    from the previous statement of the same transaction."""
    a, b, c = 11, 22, 33
    statements = (
        q(start=0.000, duration=0.001)._replace(connection=a),
        q("SELECT b FROM u", start=0.015, duration=0.002)._replace(connection=b),
        q(start=0.020, duration=0.001)._replace(connection=a),
        q(start=0.060, duration=0.001)._replace(connection=a),  # after A's transaction ended
        q("SELECT 1", start=0.070, duration=0.001)._replace(connection=c),
    )
    transactions = (
        tx(started=0.0, ended=0.05, statements=2)._replace(connection=a),
        tx(end="rollback", started=0.01, ended=0.03, statements=1)._replace(connection=b),
    )
    finding = Finding("repeated_query", Severity.WARNING, "m", 2, None, "f", statements=(0, 2))
    blocks, left_out = timeline.build(Recorded(statements, transactions), [finding])  # type: ignore[arg-type]

    assert left_out == 0
    assert [[s.number for s in block.steps] for block in blocks] == [[1, 3], [2], [4, 5]]
    first, second, loose = blocks
    assert (first.end, second.end, loose.end, loose.source) == ("COMMIT", "ROLLBACK", "", "")
    assert [s.findings for s in first.steps] == [(1,), (1,)]
    assert second.steps[0].findings == ()
    assert first.steps[1].idle == pytest.approx(0.019)
    assert first.idle_end == pytest.approx(0.029)
    assert second.begin == pytest.approx(0.01) and second.finish == pytest.approx(0.03)
