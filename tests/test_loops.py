"""Loop findings name the loop's line (``Finding.loop``) as well as the statement's: the
innermost frame of the statements' stack whose line is inside a loop, in Python code or in a
Jinja2 template."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from models import Author, Book, prepared
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
from sqlaudit import CallSite
from sqlaudit.capture.loops import loop_of

HERE = __file__


def line_of(marker: str, path: str = HERE) -> int:
    with open(path, encoding="utf-8") as source:
        for number, text in enumerate(source, 1):
            if f"# {marker}" in text or f"{{# {marker} #}}" in text:
                return number
    raise AssertionError(marker)


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def title_of(session: Session, book_id: int) -> str:
    """A repository method: one query per call."""
    return session.scalars(select(Book.title).where(Book.id == book_id)).one()  # repo-query


def titles(session: Session, ids: list[int]) -> list[str]:
    out = []
    for book_id in ids:  # service-loop
        out.append(title_of(session, book_id))  # service-call
    return out


def test_a_loop_in_the_caller_is_named_beside_the_repository_line(db: Engine) -> None:
    """A repository method called from a service's loop: the finding is at the repository's
    query line, in the loop at the service's ``for`` line."""
    with sqlaudit.audit("titles", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        assert len(titles(s, [1, 2, 3, 4])) == 4
    (finding,) = [f for f in report.findings if f.kind == "repeated_query"]
    assert finding.location == CallSite(HERE, line_of("repo-query"), "title_of")
    assert finding.loop == CallSite(HERE, line_of("service-loop"), "titles")
    assert f"in the loop at tests/test_loops.py:{line_of('service-loop')} in titles()" in (
        report.render()
    )


def test_a_comprehension_is_its_own_loop(db: Engine) -> None:
    """An N+1 inside a list comprehension names the comprehension's line."""
    with sqlaudit.audit("comp", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        counts = [len(a.books) for a in s.scalars(select(Author))]  # comprehension
    assert len(counts) == 5
    (finding,) = [f for f in report.findings if f.kind == "n_plus_one"]
    assert finding.loop is not None
    assert finding.loop.line == line_of("comprehension")


def test_no_loop_no_loop_line() -> None:
    """Statements not repeated by a loop of the application (the stack has no frame inside a
    loop) get no loop line; missing source is no error."""
    assert loop_of((CallSite(HERE, line_of("repo-query"), "title_of"),)) is None
    assert loop_of((CallSite("/nonexistent/app.py", 3, "f"),)) is None
    assert loop_of(()) is None


def test_template_loops(tmp_path: Path) -> None:
    """In a Jinja2 template, the ``{% for %}`` enclosing the line, nested loops innermost, and
    not a loop that is closed before the line."""
    template = tmp_path / "page.html"
    template.write_text(
        "<ul>\n"  # 1
        "{% for post in posts %}\n"  # 2
        "  {% for tag in post.tags %}<b>{{ tag }}</b>{% endfor %}\n"  # 3
        "  <li>{{ post.author.name }}</li>\n"  # 4
        "  {% for c in post.comments %}\n"  # 5
        "    {{ c.author.name }}\n"  # 6
        "  {% endfor %}\n"  # 7
        "{% endfor %}\n"  # 8
        "{{ footer.owner }}\n",  # 9
        encoding="utf-8",
    )
    path = str(template)
    assert loop_of((CallSite(path, 3, "<template>"),)) == CallSite(path, 2, "<template>")
    assert loop_of((CallSite(path, 4, "<template>"),)) == CallSite(path, 2, "<template>")
    assert loop_of((CallSite(path, 5, "<template>"),)) == CallSite(path, 2, "<template>")
    assert loop_of((CallSite(path, 6, "<template>"),)) == CallSite(path, 5, "<template>")
    assert loop_of((CallSite(path, 9, "<template>"),)) is None


def value(obj: object, column: str) -> object:
    """A generic admin's cell: walks a dotted column name (``"author.name"``)."""
    for part in column.split("."):  # parts-loop
        obj = getattr(obj, part)  # cell-read
    return obj


def table(session: Session) -> list[list[object]]:
    rows = session.scalars(select(Book)).all()  # rows-query
    return [[value(row, c) for c in ("title", "author.name")] for row in rows]  # rows-loop


def test_the_loop_over_the_parents_rows_wins_over_a_helpers_loop(db: Engine) -> None:
    """A helper that loops itself (over the parts of a dotted column name), called once per
    row: the N+1 names the loop over the rows, which begins after their query in the function
    that ran it; it named the helper's loop, the innermost (seen in the Starlette admin of
    ``tests/realapps``)."""
    with sqlaudit.audit("table", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        assert len(table(s)) == 10
    (finding,) = [f for f in report.findings if f.kind == "n_plus_one"]
    assert finding.location == CallSite(HERE, line_of("cell-read"), "value")
    assert finding.origin is not None
    assert finding.origin.line == line_of("rows-query")
    assert finding.loop is not None
    assert (finding.loop.line, finding.loop.function) == (line_of("rows-loop"), "table")


def render(books: list[Book]) -> list[int]:
    return [len(book.reviews) for book in books]  # render-loop


def reviews_per_author(session: Session) -> list[list[int]]:
    out = []
    for author in session.scalars(select(Author)):  # per-author
        out.append(render(author.books))  # render-call
    return out


def test_a_loop_around_the_parents_query_is_not_the_loads_loop(db: Engine) -> None:
    """Parents loaded inside a loop (each author's books, lazily): the loop around their
    loading repeats the loading, not the per-book loads; the callee's loop over the books is
    named, as before."""
    with sqlaudit.audit("nested", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        assert len(reviews_per_author(s)) == 5
    reviews = [f for f in report.findings if f.relationship == "Book.reviews"]
    assert [f.loop.line for f in reviews if f.loop] == [line_of("render-loop")]


def test_origin_names_only_its_own_functions_loop() -> None:
    """``loop_of`` with an origin: the origin's function's loop when the origin's line is
    before it; the innermost loop when the origin's line is inside it or its function is not
    on the stack."""
    helper = CallSite(HERE, line_of("cell-read"), "value")
    caller = CallSite(HERE, line_of("rows-loop"), "table")
    rows_loop = CallSite(HERE, line_of("rows-loop"), "table")
    parts_loop = CallSite(HERE, line_of("parts-loop"), "value")
    query = CallSite(HERE, line_of("rows-query"), "table")
    assert loop_of((helper, caller), query) == rows_loop
    assert loop_of((helper, caller)) == parts_loop
    assert loop_of((helper, caller), CallSite(HERE, 1, "elsewhere")) == parts_loop
    inside = CallSite(HERE, line_of("render-call"), "reviews_per_author")
    assert loop_of((CallSite(HERE, line_of("render-loop"), "render"), inside), inside) == (
        CallSite(HERE, line_of("render-loop"), "render")
    )
