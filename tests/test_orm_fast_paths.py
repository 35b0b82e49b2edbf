"""The per-statement and per-object ORM paths taken without a general function call: a lazy
load's parent key and origin chain (``origins.on_lazy``), and the stale-read check skipped
for a session whose identity map is empty."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from models import Author, Book, prepared
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, immediateload
from timing import UNTIMED, kinds

import sqlaudit


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def test_lazy_parent_key_is_the_row_and_chains_to_its_query(db: Engine) -> None:
    """Book 1's author, lazy-loaded from two sessions, has one parent key (the row, not the
    object); Book 2's differs; each lazy load's origin points at the origin of the query
    that loaded its book."""
    with sqlaudit.audit("lazy", on_finding="ignore", **UNTIMED) as report:
        for book_id in (1, 1, 2):
            with Session(db) as session:
                book = session.scalars(select(Book).where(Book.id == book_id)).one()
                assert book.author.name
    lazy = [r for r in report.statements if r.orm is not None and r.orm.load == "lazy"]
    assert [r.orm.relationship for r in lazy if r.orm] == ["Book.author"] * 3
    parents = [r.orm.parent for r in lazy if r.orm]
    assert parents[0] == parents[1] != parents[2]
    assert all(isinstance(p, int) for p in parents)
    queries = [r for r in report.statements if r.orm is not None and r.orm.load == "query"]
    origins = report.origin_records
    for query, load in zip(queries, lazy, strict=True):
        assert query.orm is not None and load.orm is not None
        assert origins[query.orm.query].rows == 1
        lazy_origin = origins[load.orm.query]
        assert (lazy_origin.load, lazy_origin.parent, lazy_origin.rows) == (
            "lazy",
            query.orm.query,
            1,
        )
        assert (lazy_origin.relationship, lazy_origin.many_to_one) == ("Book.author", True)


def test_a_session_holding_nothing_is_not_judged_stale(db: Engine) -> None:
    """Under autocommit, a re-read of a row whose object the session no longer holds (garbage
    collected out of its weak identity map) is no stale read; holding it, it is."""
    autocommit = db.execution_options(isolation_level="AUTOCOMMIT")
    for hold in (False, True):
        with sqlaudit.audit("reread", on_finding="ignore", **UNTIMED) as report:
            with Session(autocommit) as session:
                held = session.get_one(Author, 1)
                if not hold:
                    del held
                    gc.collect()
                    assert not session.identity_map
                with db.begin() as conn:
                    conn.execute(update(Author).where(Author.id == 1).values(name="renamed"))
                session.scalars(select(Author).where(Author.id == 1)).one()
        assert ("stale_identity_map" in kinds(report)) is hold
        with db.begin() as conn:
            conn.execute(update(Author).where(Author.id == 1).values(name="author 1"))


def test_every_lazy_strategy_is_told_from_a_plain_query(db: Engine) -> None:
    """Lazy loads are found only among statements with a loader path: a many-to-one by primary
    key, a one-to-many and an ``immediateload`` are each a lazy load of their relationship,
    while the queries that loaded their parents stay plain queries."""
    with sqlaudit.audit("strategies", on_finding="ignore", **UNTIMED) as report:
        with Session(db) as session:
            book = session.scalars(select(Book).where(Book.id == 1)).one()
            assert book.author.name  # many-to-one, by primary key
            author = session.scalars(select(Author).where(Author.id == 2)).one()
            assert author.books  # one-to-many
            session.scalars(
                select(Author).where(Author.id == 3).options(immediateload(Author.books))
            ).all()
    loads = [(r.orm.load, r.orm.relationship) for r in report.statements if r.orm is not None]
    assert loads == [
        ("query", None),
        ("lazy", "Book.author"),
        ("query", None),
        ("lazy", "Author.books"),
        ("query", None),
        ("lazy", "Author.books"),
    ]
