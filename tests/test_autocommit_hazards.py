"""autocommit_lock and autocommit_read_modify_write on SQLite, MariaDB and PostgreSQL: each
finding beside the real effect it describes (a lock another connection takes at once, an
update that is lost), and silence on its traps."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import Kind, resolve_url
from lines import line_of
from models import Author, Book, Review, prepared
from sqlalchemy import Engine, bindparam, create_engine, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from timing import UNTIMED, kinds

import sqlaudit
from sqlaudit import Finding, Severity


@pytest.fixture
def db(db_kind: Kind, tmp_path: Path) -> Iterator[Engine]:
    """The seeded test tables. SQLite is a file here, not the suite's shared in-memory
    connection: a concurrent update needs a second connection of its own."""
    if db_kind == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'hazards.db'}")
    else:
        engine = create_engine(resolve_url(db_kind))
    try:
        with prepared(engine) as eng:
            yield eng
    finally:
        engine.dispose()


def autocommit(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def only(report: sqlaudit.AuditReport, kind: str) -> Finding:
    [finding] = [f for f in report.findings if f.kind == kind]
    return finding


def stars(engine: Engine, review_id: int = 1) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(Review.stars).where(Review.id == review_id)).scalar_one())


def bump_elsewhere(engine: Engine, by: int = 10) -> None:
    """A concurrent request adds ``by`` stars to review 1, atomically, in its own transaction."""
    with engine.begin() as conn:
        conn.execute(update(Review).where(Review.id == 1).values(stars=Review.stars + by))


def lock_elsewhere(engine: Engine) -> None:
    """Another connection locks review 1 without waiting (raises if it is locked)."""
    with engine.connect() as other:
        query = select(Review.id).where(Review.id == 1).with_for_update(nowait=True)
        other.execute(query).one()
        other.rollback()


# -- autocommit_lock -----------------------------------------------------------------------


@pytest.mark.parametrize("db_kind", ["mysql", "postgresql"])
def test_autocommit_lock_is_released_at_once(db: Engine) -> None:
    """SELECT ... FOR UPDATE on an autocommit connection: another connection locks the row
    the moment the read returns, and the read is an error naming its line."""
    with sqlaudit.audit("lock", on_finding="ignore", **UNTIMED) as report:
        with autocommit(db).connect() as conn:
            query = select(Review).where(Review.id == 1).with_for_update()
            conn.execute(query).one()  # marker: autocommit lock
            lock_elsewhere(db)  # the lock is already gone
    assert kinds(report) == ["autocommit_lock"]
    finding = only(report, "autocommit_lock")
    assert finding.severity is Severity.ERROR
    assert finding.location is not None
    assert finding.location.line == line_of(__file__, "marker: autocommit lock")
    assert "FOR UPDATE" in (finding.fingerprint or "")
    assert [report.statements[i].sql for i in finding.statements] == [finding.sql]


@pytest.mark.parametrize("db_kind", ["mysql", "postgresql"])
def test_autocommit_lock_orm_session(db: Engine) -> None:
    """``session.get(..., with_for_update=True)`` on an autocommit session is the same error."""
    with sqlaudit.audit("lock orm", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            session.get_one(Review, 1, with_for_update=True)
    assert kinds(report) == ["autocommit_lock"]


@pytest.mark.parametrize("db_kind", ["mysql", "postgresql"])
def test_lock_in_a_real_transaction_is_held_and_silent(db: Engine) -> None:
    """The same read in a real transaction holds its lock (another connection cannot take it)
    and is not flagged; so is a share lock read there."""
    with sqlaudit.audit("locked", on_finding="ignore", **UNTIMED) as report:
        with db.begin() as conn:
            conn.execute(select(Review).where(Review.id == 1).with_for_update()).one()
            with pytest.raises(OperationalError):
                lock_elsewhere(db)
            conn.execute(select(Review).where(Review.id == 2).with_for_update(read=True)).one()
        with Session(db) as session, session.begin():
            session.get_one(Review, 1, with_for_update=True).stars += 1
    assert kinds(report) == []


def test_sqlite_renders_no_lock_clause_and_is_silent(sqlite_engine: Engine) -> None:
    """SQLite has no row locks: with_for_update() renders nothing there, so nothing is flagged
    (the autocommit_lock pair runs on MariaDB and PostgreSQL)."""
    with prepared(sqlite_engine) as db:
        with sqlaudit.audit("sqlite", on_finding="ignore", **UNTIMED) as report:
            with autocommit(db).connect() as conn:
                conn.execute(select(Review).where(Review.id == 1).with_for_update()).one()
    assert kinds(report) == []
    assert "FOR UPDATE" not in report.statements[0].sql


# -- autocommit_read_modify_write ----------------------------------------------------------


def test_orm_read_modify_write_loses_the_concurrent_update(db: Engine) -> None:
    """An object read and written back (``review.stars += 1``) on an autocommit session
    overwrites an update made in between: the finding names the read and the write."""
    before = stars(db)
    with sqlaudit.audit("rmw orm", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            review = session.get_one(Review, 1)  # marker: orm read
            bump_elsewhere(db)
            review.stars += 1
            session.flush()  # marker: orm write
    assert stars(db) == before + 1  # the concurrent +10 is lost
    assert kinds(report) == ["autocommit_read_modify_write"]
    finding = only(report, "autocommit_read_modify_write")
    assert finding.relationship == "Review.stars"
    assert finding.location is not None
    assert finding.location.line == line_of(__file__, "marker: orm write")
    assert (
        f"read at {os.path.relpath(__file__)}:{line_of(__file__, 'marker: orm read')}"
        in finding.message
    )
    assert "SET stars = ?" in finding.message
    assert "update(Review).where(...).values(stars=Review.stars + delta)" in finding.fix
    assert "select(Review).where(...).with_for_update()" in finding.fix


def test_core_read_modify_write_loses_the_concurrent_update(db: Engine) -> None:
    """A Core UPDATE writing back a value computed from the row the SELECT before it returned
    is the same finding, with the atomic UPDATE written in SQL."""
    before = stars(db)
    with sqlaudit.audit("rmw core", on_finding="ignore", **UNTIMED) as report:
        with autocommit(db).connect() as conn:
            row = conn.execute(select(Review.id, Review.stars).where(Review.id == 1)).one()
            bump_elsewhere(db)
            conn.execute(update(Review).where(Review.id == 1).values(stars=row.stars + 1))
    assert stars(db) == before + 1
    assert kinds(report) == ["autocommit_read_modify_write"]
    finding = only(report, "autocommit_read_modify_write")
    assert finding.relationship == "sqlaudit_t_review.stars"
    assert "`UPDATE sqlaudit_t_review SET stars = stars + ? WHERE ...`" in finding.fix
    assert [report.statements[i].kind for i in finding.statements] == ["update"]


def test_atomic_updates_keep_the_concurrent_update_and_are_silent(db: Engine) -> None:
    """SET stars = stars + 1 (Core, or assigning ``Review.stars + 1`` in the ORM) is computed
    by the database: nothing is lost, nothing is flagged."""
    before = stars(db)
    with sqlaudit.audit("atomic", on_finding="ignore", **UNTIMED) as report:
        with autocommit(db).connect() as conn:
            conn.execute(select(Review.id, Review.stars).where(Review.id == 1)).one()
            bump_elsewhere(db)
            conn.execute(update(Review).where(Review.id == 1).values(stars=Review.stars + 1))
        with Session(autocommit(db)) as session:
            review = session.get_one(Review, 1)
            review.stars = Review.stars + 1
            session.flush()
    assert stars(db) == before + 12
    assert "autocommit_read_modify_write" not in kinds(report)


def test_read_modify_write_traps_are_silent(db: Engine) -> None:
    """Not a read-modify-write on an autocommit connection: a write in a real transaction, an
    UPDATE of another row than the one read, an INSERT, an executemany UPDATE of many rows, a
    new foreign key, a new string."""
    with sqlaudit.audit("traps", on_finding="ignore", **UNTIMED) as report:
        with Session(db) as session, session.begin():
            session.get_one(Review, 1).stars += 1
        with autocommit(db).connect() as conn:
            row = conn.execute(select(Review.id, Review.stars).where(Review.id == 1)).one()
            conn.execute(update(Review).where(Review.id == 2).values(stars=row.stars + 1))
        with autocommit(db).connect() as conn:
            conn.execute(select(Review.id, Review.stars).where(Review.id == 1)).one()
            conn.execute(insert(Review).values(id=100, stars=3, book_id=1))
        with autocommit(db).connect() as conn:
            conn.execute(select(Review.id, Review.stars).where(Review.id == 1)).one()
            many = update(Review).where(Review.id == bindparam("rid")).values(stars=bindparam("s"))
            conn.execute(many, [{"rid": 1, "s": 5}, {"rid": 2, "s": 6}])
        with Session(autocommit(db)) as session:
            session.get_one(Book, 1).author_id = 2
            session.flush()
        with Session(autocommit(db)) as session:
            session.get_one(Author, 1).name = "renamed"
            session.flush()
    assert "autocommit_read_modify_write" not in kinds(report)
