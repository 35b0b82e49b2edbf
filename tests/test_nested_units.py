"""Nested units keep their own verdicts: a unit opened inside another (a request inside a test)
is judged on its own statements; the enclosing unit reports those findings, named after the
nested unit, plus the findings of its own statements, and its budget counts everything."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from models import Author, Book, prepared
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED, kinds

import sqlaudit


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def create_author(engine: Engine, author_id: int) -> None:
    """One "create" request: one row, one commit (the line every request shares)."""
    with Session(engine) as session:
        session.add(Author(id=author_id, name=f"a{author_id}"))
        session.commit()  # marker: the commit each request makes


def show_book(engine: Engine, book_id: int) -> str:
    """One "show" request: a book and its author (a lazy load per request)."""
    with Session(engine) as session:
        book = session.get_one(Book, book_id)
        return book.author.name


def list_authors(engine: Engine) -> list[int]:
    """One "list" request with a planted N+1."""
    with Session(engine) as session:
        return [len(a.books) for a in session.scalars(select(Author))]


def test_clean_requests_in_one_test_make_no_loop_finding(db: Engine) -> None:
    """Three create requests and five show requests of the same row from one test: each
    request is clean, so the test is clean (before, the test's detectors ran over the union and
    reported "3 commits from one line" and "Book.author lazy-loaded 5x")."""
    with sqlaudit.audit("test_requests", on_finding="ignore", **UNTIMED) as test:
        for author_id in (100, 101, 102):
            with sqlaudit.audit(f"POST /authors/{author_id}", on_finding="ignore", **UNTIMED):
                create_author(db, author_id)
        for _ in range(5):
            with sqlaudit.audit("GET /books/1", on_finding="ignore", **UNTIMED):
                assert show_book(db, 1)
    assert kinds(test) == []
    assert test.query_count == 3 + 5 * 2  # everything counts


def test_a_requests_n_plus_one_is_reported_by_the_test_named_after_the_request(
    db: Engine,
) -> None:
    """The request's own finding is the test's finding, named after the request; the test's
    budget counts the request's statements; the test's own statements are judged too."""
    with sqlaudit.audit("test_list", on_finding="ignore", max_queries=3, **UNTIMED) as test:
        with sqlaudit.audit("GET /authors", on_finding="ignore", **UNTIMED) as request:
            assert len(list_authors(db)) == 5
        with db.connect() as conn:
            for book_id in (1, 2, 3):
                conn.execute(select(Book.title).where(Book.id == book_id)).all()
    assert kinds(request) == ["n_plus_one"]
    assert kinds(test) == ["n_plus_one", "query_budget", "repeated_query"]
    (n_plus_one,) = [f for f in test.findings if f.kind == "n_plus_one"]
    assert n_plus_one.unit == "GET /authors"
    assert n_plus_one.headline.startswith("GET /authors: N+1: Author.books lazy-loaded 5x")
    assert "GET /authors: N+1" in test.render()
    lazy = [test.statements[i] for i in n_plus_one.statements]
    assert len(lazy) == 5
    assert all(r.orm is not None and r.orm.load == "lazy" for r in lazy)
    (repeated,) = [f for f in test.findings if f.kind == "repeated_query"]
    assert repeated.unit is None
    assert test.query_count == 6 + 3
    (budget,) = [f for f in test.findings if f.kind == "query_budget"]
    assert "9 statements, budget 3" in budget.message


def test_three_levels_keep_the_innermost_name(db: Engine) -> None:
    """A job inside a request inside a test: the finding keeps the job's name at every level."""
    with sqlaudit.audit("test", on_finding="ignore", **UNTIMED) as test:
        with sqlaudit.audit("POST /import", on_finding="ignore", **UNTIMED) as request:
            with sqlaudit.audit("job: reindex", on_finding="ignore", **UNTIMED):
                list_authors(db)
    assert [f.unit for f in request.findings] == ["job: reindex"]
    assert [f.unit for f in test.findings] == ["job: reindex"]


def per_item_sessions(engine: Engine, book_ids: list[int]) -> list[str]:
    """A loop that opens a session per item: each book's author is a lazy load."""
    names = []
    for book_id in book_ids:
        with Session(engine) as session:
            book = session.get_one(Book, book_id)
            names.append(book.author.name)  # marker: per-item lazy load
    return names


def test_parents_are_rows_not_objects_every_run_the_same(db: Engine) -> None:
    """Lazy-load parents are told apart by row, never by ``id()``: a per-item-session loop over
    five distinct books is the same finding (five parents) in 100 runs, and the same row read
    five times is one parent (no N+1) in 100 runs. With ``id()`` keys a freed object's id was
    reused by the next one: "4 parents" for 5 rows, or an N+1 for one row, by chance."""
    outcomes = set()
    for _ in range(100):
        with sqlaudit.audit("loop", on_finding="ignore", **UNTIMED) as distinct:
            per_item_sessions(db, [1, 3, 5, 7, 9])
        with sqlaudit.audit("same row", on_finding="ignore", **UNTIMED) as same:
            per_item_sessions(db, [1, 1, 1, 1, 1])
        (n_plus_one,) = [f for f in distinct.findings if f.kind == "n_plus_one"]
        outcomes.add(
            (
                tuple(kinds(distinct)),
                "N+1: Book.author lazy-loaded 5x, once per Book (5 parents)" in n_plus_one.message,
                tuple(f.kind for f in same.findings if f.kind == "n_plus_one"),
            )
        )
    assert outcomes == {(("n_plus_one",), True, ())}
