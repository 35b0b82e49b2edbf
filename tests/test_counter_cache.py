"""The counter-cache fix of repeated_query on SQLite, MariaDB and PostgreSQL: a COUNT per parent
row in a loop is reported with a grouped query / column_property written out for its
relationship, and that written-out fix, run as given, returns the same numbers in one
statement without a finding."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from models import Author, Book, prepared
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, column_property
from timing import UNTIMED, kinds

import sqlaudit


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine, authors=5, books_each=2) as eng:
        yield eng


def test_count_per_parent_gets_a_grouped_query_fix(db: Engine) -> None:
    """One COUNT of books per author in a loop: the finding names Author.books, and its
    grouped query gives every author's count in one statement, silently."""
    with sqlaudit.audit("counts", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        authors = s.scalars(select(Author).order_by(Author.id)).all()
        counts = {
            a.id: s.scalar(select(func.count(Book.id)).where(Book.author_id == a.id))
            for a in authors
        }
    assert kinds(report) == ["repeated_query"]
    [finding] = report.findings
    assert (
        "one COUNT() per Author row (Author.books), a counter queried in a loop" in finding.message
    )
    grouped = (
        "select(Book.author_id, func.count(Book.id)).where(Book.author_id.in_(keys))"
        ".group_by(Book.author_id)"
    )
    assert grouped in finding.fix
    assert (
        "books_count = column_property(select(func.count(Book.id)).where(Book.author_id == "
        "Author.id).correlate_except(Book).scalar_subquery())" in finding.fix
    )
    with sqlaudit.audit("fixed", on_finding="ignore", **UNTIMED) as fixed, Session(db) as s:
        keys = list(counts)
        grouped_query = (  # the fix, as written in the finding
            select(Book.author_id, func.count(Book.id))
            .where(Book.author_id.in_(keys))
            .group_by(Book.author_id)
        )
        totals = dict(s.execute(grouped_query).all())
    assert {key: totals.get(key, 0) for key in keys} == counts
    assert fixed.query_count == 1
    assert kinds(fixed) == []


def test_the_correlated_subquery_fix_reads_counts_with_the_parents(db: Engine) -> None:
    """The subquery fix, added to the parent query, returns the same counts in one statement."""
    books_count = select(func.count(Book.id)).where(Book.author_id == Author.id).scalar_subquery()
    with sqlaudit.audit("subquery", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        rows = s.execute(select(Author, books_count).order_by(Author.id)).all()
    assert [n for _, n in rows] == [2, 2, 2, 2, 2]
    assert report.query_count == 1
    assert kinds(report) == []
    assert column_property(books_count) is not None  # the mapped form builds as well


def test_core_sum_per_parent_gets_the_fix_in_sql(db: Engine) -> None:
    """Without the ORM (Core tables) the fix is written in SQL: one GROUP BY query."""
    book = Book.__table__
    with sqlaudit.audit("core", on_finding="ignore", **UNTIMED) as report, db.connect() as conn:
        for author_id in range(1, 5):
            conn.execute(select(func.sum(book.c.id)).where(book.c.author_id == author_id)).scalar()
    [finding] = report.findings
    assert "one SUM() per parent row, a counter queried in a loop" in finding.message
    assert (
        "SELECT author_id, sum(sqlaudit_t_book.id) FROM sqlaudit_t_book WHERE author_id IN (...) "
        "GROUP BY author_id" in finding.fix
    )
