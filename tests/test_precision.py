"""Detector precision on SQLite, MariaDB and PostgreSQL: each rule's finding beside the trap a
real application sets for it (batched imports, repository methods on an autocommit engine,
streamed exports, retries, paged parent queries, delete loops), so that every finding is one
a senior engineer would act on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from models import Author, Book, Review, prepared
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from timing import UNTIMED, Clock, kinds

import sqlaudit


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def autocommit(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def findings(report: sqlaudit.AuditReport, kind: str) -> list[sqlaudit.Finding]:
    return [f for f in report.findings if f.kind == kind]


# -- commit_in_loop counts rows ------------------------------------------------------------


def import_in_batches(engine: Engine, batches: int, size: int) -> None:
    """An import committing every ``size`` rows, each batch one executemany / insertmanyvalues
    statement (one statement, ``size`` rows)."""
    next_id = 1000
    for _ in range(batches):
        rows = [{"id": next_id + i, "name": f"imported {next_id + i}"} for i in range(size)]
        next_id += size
        with Session(engine) as session:
            session.execute(insert(Author), rows)
            session.commit()  # commits-a-batch


def test_an_import_committing_every_100_rows_is_not_a_commit_per_row(db: Engine) -> None:
    """Three commits of 100 rows from one line: batching, the cure, silent everywhere (the
    rows come from the driver's rowcount, not from the number of statements)."""
    with sqlaudit.audit("import", on_finding="ignore", **UNTIMED) as report:
        import_in_batches(db, 3, 100)
    assert findings(report, "commit_in_loop") == []
    assert [t.rows_written for t in report.transaction_records if t.writes] == [100] * 3


def delete_books_one_by_one(engine: Engine, book_ids: list[int]) -> None:
    """A per-item operation writing two rows: null the reviews' link, delete the book."""
    for book_id in book_ids:
        with Session(engine) as session:
            session.execute(delete(Review).where(Review.book_id == book_id))
            session.execute(delete(Book).where(Book.id == book_id))
            session.commit()  # commit-per-item


def test_a_commit_per_item_writing_two_rows_is_a_commit_in_a_loop(db: Engine) -> None:
    """Each item commits its DELETE of one review and of one book: two rows per commit, a
    commit per item from one line, flagged (it was missed while only 1-row commits counted)."""
    with sqlaudit.audit("delete", on_finding="ignore", **UNTIMED) as report:
        delete_books_one_by_one(db, [1, 2, 3])
    (finding,) = findings(report, "commit_in_loop")
    assert "3 commits from one line, 2 rows each" in finding.message
    assert finding.location is not None
    assert finding.location.function == "delete_books_one_by_one"


# -- autocommit_writes across checkouts ----------------------------------------------------


class AuthorRepository:
    """A repository whose methods each take a connection of their own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def rename(self, author_id: int, name: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(update(Author).where(Author.id == author_id).values(name=name))
            conn.commit()

    def add(self, author_id: int) -> None:
        with self.engine.connect() as conn:
            conn.execute(insert(Author).values(id=author_id, name="new"))
            conn.commit()


def test_writes_in_several_checkouts_of_an_autocommit_engine_are_not_atomic(
    db: Engine,
) -> None:
    """One request, three repository calls, each its own checkout of an AUTOCOMMIT engine:
    three writes each committed alone, not atomic: flagged (it was counted per checkout)."""
    repository = AuthorRepository(autocommit(db))
    with sqlaudit.audit("POST /merge", on_finding="ignore", **UNTIMED) as report:
        repository.rename(1, "merged")
        repository.rename(2, "merged")
        repository.add(200)
    (finding,) = findings(report, "autocommit_writes")
    assert "3 writes in 3 connection checkouts" in finding.message


def test_one_write_per_unit_on_an_autocommit_engine_is_fine(db: Engine) -> None:
    """A single write is atomic on its own: two requests of one write each are silent."""
    repository = AuthorRepository(autocommit(db))
    for n in (1, 2):
        with sqlaudit.audit(f"PUT /authors/{n}", on_finding="ignore", **UNTIMED) as report:
            repository.rename(n, "renamed")
        assert findings(report, "autocommit_writes") == []


# -- long_transaction: streaming covers fetching, not idle ----------------------------------


def test_streaming_is_exempt_while_fetching_but_not_when_idle_after(
    db: Engine, db_kind: str, clock: Clock
) -> None:
    """A streamed export may take long while rows are fetched (silent), but sitting idle in
    the same transaction afterwards (a slow call before commit) is idle in transaction."""
    if db_kind == "mysql":
        pytest.skip("PyMySQL cannot run a statement while a streamed result is unread")
    with sqlaudit.audit("export", idle_in_transaction_ms=100, on_finding="ignore") as fetch:
        with db.begin() as conn:
            streamed = select(Author.id).execution_options(stream_results=True)
            result = conn.execute(streamed)
            for _ in result:
                clock.advance(0.05)  # fetching and writing rows out, 250 ms in all
            conn.execute(select(Book.id)).all()
    assert findings(fetch, "long_transaction") == []
    with sqlaudit.audit("export", idle_in_transaction_ms=100, on_finding="ignore") as idle:
        with db.begin() as conn:
            result = conn.execute(select(Author.id).execution_options(stream_results=True))
            result.all()
            conn.execute(select(Book.id)).all()
            clock.advance(0.3)  # a slow backend call before the commit
    (finding,) = findings(idle, "long_transaction")
    assert "idle 300 ms" in finding.message


# -- retries are not loops -----------------------------------------------------------------


def add_with_retries(engine: Engine, attempts: int) -> None:
    """Optimistic concurrency: an attempt that fails rolls back and is tried again."""
    for attempt in range(attempts):
        with Session(engine) as session:
            session.scalars(select(Author).where(Author.id == 1)).one()  # attempt-read
            try:
                session.execute(insert(Author).values(id=1 if attempt < 2 else 300, name="x"))
                session.commit()
                return
            except IntegrityError:
                session.rollback()


def test_a_retry_after_rollbacks_is_not_a_repeated_query(db: Engine) -> None:
    """Three attempts, the first two rolled back: the same read three times is a retry."""
    with sqlaudit.audit("retry", on_finding="ignore", **UNTIMED) as report:
        add_with_retries(db, 3)
    assert findings(report, "repeated_query") == []
    assert findings(report, "write_loop") == []


def test_the_same_read_without_rollbacks_is_still_a_repeated_query(db: Engine) -> None:
    """The matching trap: the same three reads with no failed attempt between them."""
    with sqlaudit.audit("loop", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        for _ in range(3):
            s.scalars(select(Author).where(Author.id == 1)).one()
    assert kinds(report) == ["repeated_query"]


# -- fixes that apply ----------------------------------------------------------------------


def test_a_paged_parent_query_gets_selectinload_even_for_many_to_one(db: Engine) -> None:
    """Books read with OFFSET only (PostgreSQL and MySQL render no LIMIT): the author fix is
    selectinload, as for LIMIT, never joinedload."""
    with sqlaudit.audit("page", on_finding="ignore", **UNTIMED) as report, Session(db) as s:
        books = s.scalars(select(Book).order_by(Book.id).offset(2)).all()
        assert [b.author.name for b in books]
    (finding,) = findings(report, "n_plus_one")
    assert "selectinload(Book.author)" in finding.fix
    assert "joinedload" not in finding.fix


def test_a_delete_loop_is_told_to_delete_in_one_statement(db: Engine) -> None:
    """A write loop of DELETEs gets a DELETE fix (one statement for all the rows), not the
    INSERT batching advice."""
    with sqlaudit.audit("purge", on_finding="ignore", **UNTIMED) as report, db.begin() as conn:
        for review_id in range(1, 7):
            conn.execute(delete(Review).where(Review.id == review_id))
    (finding,) = findings(report, "write_loop")
    assert "delete(Model).where(Model.id.in_(ids))" in finding.fix
    assert "insert" not in finding.fix.lower()


def test_the_budget_fix_points_at_nothing_that_is_not_there(db: Engine) -> None:
    """A blown budget with no other finding: the fix does not send the reader to findings
    "reported above", and names the budget that would fit."""
    with sqlaudit.audit("budget", max_queries=1, on_finding="ignore", **UNTIMED) as report:
        with db.connect() as conn:
            conn.execute(select(Author.id)).all()
            conn.execute(select(Book.id)).all()
    (finding,) = report.findings
    assert finding.kind == "query_budget"
    assert "above" not in finding.fix
    assert "max_queries to 2" in finding.fix
