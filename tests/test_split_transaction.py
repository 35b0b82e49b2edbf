"""split_transaction on SQLite, MariaDB and PostgreSQL: an operation calling two repository
methods that each commit is reported (and really is left half done by a failure between
them); one transaction, savepoints, retries, an audit log of its own and a function that owns
its two transactions are quiet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lines import line_of
from models import Author, prepared
from sqlalchemy import Engine, String, func, insert, select, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from timing import UNTIMED, kinds

import sqlaudit
from sqlaudit import Finding, Severity


class _Base(DeclarativeBase):
    pass


class AuditLog(_Base):
    """An append-only audit trail, written in a transaction of its own on purpose."""

    __tablename__ = "sqlaudit_t_audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int]
    message: Mapped[str] = mapped_column(String(80))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        _Base.metadata.create_all(eng)
        try:
            yield eng
        finally:
            _Base.metadata.drop_all(eng)


def info_kinds(report: sqlaudit.AuditReport) -> list[str]:
    """The kinds found at info or above, transaction_overhead aside (these units are made of
    short transactions on purpose)."""
    return [k for k in kinds(report, severity=Severity.INFO) if k != "transaction_overhead"]


# -- the application: repository methods that commit on their own, and services -------------


def add_author(engine: Engine, author_id: int) -> None:
    with Session(engine) as session, session.begin():
        session.add(Author(id=author_id, name=f"author {author_id}"))


def rename_author(engine: Engine, author_id: int, name: str) -> None:
    with Session(engine) as session, session.begin():
        session.get_one(Author, author_id).name = name


def add_author_core(engine: Engine, author_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Author).values(id=author_id, name=f"author {author_id}"))


def rename_author_core(engine: Engine, author_id: int, name: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(Author).where(Author.id == author_id).values(name=name))


def log(engine: Engine, author_id: int, message: str) -> None:
    with Session(engine) as session, session.begin():
        session.add(AuditLog(author_id=author_id, message=message))


def onboard(engine: Engine, author_id: int, rename: int) -> None:
    """The operation: add an author, then rename another one; two transactions."""
    add_author(engine, author_id)  # marker: first call
    rename_author(engine, rename, "renamed")  # marker: second call


def onboard_core(engine: Engine, author_id: int) -> None:
    add_author_core(engine, author_id)
    rename_author_core(engine, 1, "renamed")


def authors(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Author)).scalar_one())


# -- the finding ---------------------------------------------------------------------------


def test_service_calling_two_committing_methods_is_split(db: Engine) -> None:
    """Two repository calls of one service that each commit are one info finding at the
    service's first call; a failure in the second leaves the first committed."""
    with sqlaudit.audit("onboard", on_finding="ignore", **UNTIMED) as report:
        onboard(db, 100, rename=1)
        with pytest.raises(NoResultFound):
            onboard(db, 101, rename=999)  # the rename fails: author 101 stays, half done
    assert authors(db) == 7
    assert info_kinds(report) == ["split_transaction"]
    [finding] = [f for f in report.findings if f.kind == "split_transaction"]
    assert finding.severity is Severity.INFO
    assert finding.location is not None
    assert (finding.location.file, finding.location.function) == (__file__, "onboard")
    assert finding.location.line == line_of(__file__, "marker: first call")
    first, second = (
        line_of(__file__, "marker: first call"),
        line_of(__file__, "marker: second call"),
    )
    assert f"line {first} (add_author()), line {second} (rename_author())" in finding.message
    assert "pass the session or connection to add_author() and rename_author()" in finding.fix


def test_core_repository_methods_are_split_too(db: Engine) -> None:
    """The same with ``engine.begin()`` blocks in the repository methods."""
    with sqlaudit.audit("onboard core", on_finding="ignore", **UNTIMED) as report:
        onboard_core(db, 100)
    finding: Finding = next(f for f in report.findings if f.kind == "split_transaction")
    assert "onboard_core() committed its writes in 2 separate transactions" in finding.message


# -- the traps -----------------------------------------------------------------------------


def onboard_atomic(engine: Engine) -> None:
    """The fix: one transaction, handed to both steps."""
    with Session(engine) as session, session.begin():
        session.add(Author(id=100, name="author 100"))
        session.flush()
        session.get_one(Author, 1).name = "renamed"


def onboard_with_savepoints(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        with session.begin_nested():
            session.add(Author(id=101, name="author 101"))
        with session.begin_nested():
            session.get_one(Author, 2).name = "renamed"


def onboard_with_audit_log(engine: Engine) -> None:
    """An audit record kept in its own transaction on purpose (it must survive a failure)."""
    add_author(engine, 102)
    log(engine, 102, "added")


def retry_rename(engine: Engine) -> None:
    for _ in range(2):  # e.g. a retry after a serialization failure
        rename_author(engine, 3, "renamed again")


def claim_then_finish(engine: Engine) -> None:
    """A function that owns its two transactions (claim, work, finish): deliberate."""
    with Session(engine) as session, session.begin():
        session.add(Author(id=103, name="claimed"))
    with Session(engine) as session, session.begin():
        session.get_one(Author, 103).name = "finished"


def test_deliberate_transaction_boundaries_are_quiet(db: Engine) -> None:
    """One transaction, savepoints in one transaction, an audit-log insert of its own, a
    retry from one call site and a function opening both transactions itself: no finding."""
    with sqlaudit.audit("quiet", on_finding="ignore", **UNTIMED) as report:
        onboard_atomic(db)
        onboard_with_savepoints(db)
        onboard_with_audit_log(db)
        retry_rename(db)
        claim_then_finish(db)
    assert authors(db) == 9
    assert info_kinds(report) == []
