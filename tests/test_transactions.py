"""Transaction auditing on SQLite, MariaDB and PostgreSQL: each finding beside the real data
effect it describes, and silence on its false-positive trap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from models import Author, prepared
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session
from timing import UNTIMED, Clock, kinds

import sqlaudit
from sqlaudit import Severity


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def authors(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Author)).scalar_one())


def autocommit(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


# -- autocommit_writes ---------------------------------------------------------------------


def test_autocommit_writes_core(db: Engine) -> None:
    """Two writes in one checkout of an autocommit connection: not atomic."""
    with sqlaudit.audit("auto", on_finding="ignore", **UNTIMED) as report:
        with autocommit(db).connect() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
            conn.execute(insert(Author).values(id=101, name="b"))
    assert kinds(report) == ["autocommit_writes"]
    assert report.findings[0].count == 2
    assert authors(db) == 7


def test_autocommit_writes_orm_session(db: Engine) -> None:
    """A Session on an autocommit engine flushing two rows is flagged the same way."""
    with sqlaudit.audit("auto orm", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            session.add(Author(id=100, name="a"))
            session.flush()
            session.get_one(Author, 1).name = "renamed"
            session.commit()
    assert "autocommit_writes" in kinds(report)


def test_autocommit_read_only_single_write_and_ddl_are_silent(db: Engine) -> None:
    """Reads on an autocommit engine are a recommended pattern; one write is atomic anyway;
    DDL is not counted as a write."""
    with sqlaudit.audit("reads", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            session.get(Author, 1)
            session.scalars(select(Author)).all()
        with autocommit(db).connect() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
        with autocommit(db).connect() as conn:
            conn.execute(text("CREATE TABLE sqlaudit_t_ddl (id INTEGER PRIMARY KEY)"))
            conn.execute(text("DROP TABLE sqlaudit_t_ddl"))
    assert kinds(report) == []


# -- ineffective_rollback ------------------------------------------------------------------


def test_ineffective_rollback_rows_persist(db: Engine) -> None:
    """rollback() after writes on an autocommit connection undoes nothing: the rows are
    still there afterwards, and the finding is an error."""
    with sqlaudit.audit("rollback", on_finding="ignore", **UNTIMED) as report:
        with autocommit(db).connect() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
            conn.rollback()  # marker: ineffective
    assert authors(db) == 6
    finding = next(f for f in report.findings if f.kind == "ineffective_rollback")
    assert finding.severity is Severity.ERROR
    assert finding.location is not None
    assert finding.location.file == __file__


def test_ineffective_rollback_on_exception_orm(db: Engine) -> None:
    """An exception leaving ``session.begin()`` on an autocommit engine rolls back nothing."""
    with sqlaudit.audit("orm rollback", on_finding="ignore", **UNTIMED) as report:
        with pytest.raises(RuntimeError), Session(autocommit(db)) as session:
            with session.begin():
                session.add(Author(id=100, name="a"))
                session.flush()
                raise RuntimeError("payment failed")
    assert authors(db) == 6
    assert "ineffective_rollback" in kinds(report)


def test_real_rollback_is_silent(db: Engine) -> None:
    """The same rollback in a real transaction undoes the write and is not flagged."""
    with sqlaudit.audit("real", on_finding="ignore", **UNTIMED) as report:
        with db.connect() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
            conn.rollback()
    assert authors(db) == 5
    assert kinds(report) == []


# -- commit_in_loop ------------------------------------------------------------------------


def test_commit_in_loop_with_hidden_refreshes(db: Engine) -> None:
    """A commit per row from one line is flagged, with the refresh SELECTs that
    expire_on_commit adds after each commit."""
    with (
        sqlaudit.audit("commits", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        for i in range(100, 105):
            author = Author(id=i, name=f"a{i}")
            session.add(author)
            session.commit()
            assert author.name  # expired by the commit: reloaded
    finding = next(f for f in report.findings if f.kind == "commit_in_loop")
    assert finding.count == 5
    assert "refresh SELECTs" in finding.message
    assert authors(db) == 10


def test_chunked_batch_commits_are_silent(db: Engine) -> None:
    """Committing every 50 rows is the cure, not the problem."""
    with sqlaudit.audit("chunks", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for start in range(100, 400, 50):
            session.add_all([Author(id=i, name=f"a{i}") for i in range(start, start + 50)])
            session.commit()
    assert kinds(report) == []
    assert authors(db) == 305


# -- discarded_writes ----------------------------------------------------------------------


def test_discarded_writes_core_close_without_commit(db: Engine) -> None:
    """Core: insert, then close without commit: the row is gone, and that is a finding."""
    with sqlaudit.audit("discard", on_finding="ignore", **UNTIMED) as report:
        with db.connect() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
    assert authors(db) == 5
    assert kinds(report) == ["discarded_writes"]


def test_discarded_writes_orm_flush_then_close(db: Engine) -> None:
    """ORM: add + flush + close without commit discards the row."""
    with sqlaudit.audit("discard orm", on_finding="ignore", **UNTIMED) as report:
        with Session(db) as session:
            session.add(Author(id=100, name="a"))
            session.flush()
    assert authors(db) == 5
    assert kinds(report) == ["discarded_writes"]


def test_explicit_rollback_and_exception_are_not_discards(db: Engine) -> None:
    """An explicit rollback and a rollback because an exception propagated are intended."""
    with sqlaudit.audit("intended", on_finding="ignore", **UNTIMED) as report:
        with Session(db) as session:
            session.add(Author(id=100, name="a"))
            session.flush()
            session.rollback()
        with pytest.raises(ValueError), db.begin() as conn:
            conn.execute(insert(Author).values(id=101, name="b"))
            raise ValueError("validation")
    assert authors(db) == 5
    assert kinds(report) == []


def test_outer_transaction_fixture_pattern_is_silent(db: Engine, db_kind: str) -> None:
    """The "one outer transaction rolled back per test" fixture: the app's commits become
    savepoint releases and the teardown rollback discards them, with no finding."""
    conn = db.connect()
    outer = conn.begin()
    try:
        with sqlaudit.audit("test body", on_finding="ignore", **UNTIMED) as report:
            session = Session(bind=conn, join_transaction_mode="create_savepoint")
            session.add(Author(id=100, name="a"))
            session.commit()
            session.add(Author(id=101, name="b"))
            session.commit()
            session.close()
            conn.execute(select(Author.id)).all()
    finally:
        outer.rollback()
        conn.close()
    assert kinds(report) == []
    if db_kind != "sqlite":
        # pysqlite's own transaction handling breaks SAVEPOINT unless the "serializable
        # isolation / savepoints" recipe of SQLAlchemy's SQLite docs is applied: there the
        # released savepoints stay committed whatever sqlaudit does.
        assert authors(db) == 5


# -- long_transaction ----------------------------------------------------------------------


def test_idle_in_transaction(db: Engine, clock: Clock) -> None:
    """A transaction idle between statements (a backend call inside it) is flagged with how
    long it was open and how much of that was SQL."""
    with sqlaudit.audit("idle", idle_in_transaction_ms=100, on_finding="ignore") as report:
        with db.begin() as conn:
            conn.execute(select(Author.id)).all()
            clock.advance(0.2)  # the "backend API call"
            conn.execute(insert(Author).values(id=100, name="a"))
    finding = next(f for f in report.findings if f.kind == "long_transaction")
    assert "idle" in finding.message
    assert "executing SQL" in finding.message


def test_slow_work_outside_the_transaction_is_silent(db: Engine, clock: Clock) -> None:
    """The same work done before the transaction begins holds nothing open."""
    with sqlaudit.audit("tidy", idle_in_transaction_ms=100, on_finding="ignore") as report:
        with db.connect() as conn:
            conn.execute(select(Author.id)).all()
            conn.commit()
        clock.advance(0.2)
        with db.begin() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
    assert kinds(report) == []


def test_transaction_still_open_when_unit_ends(db: Engine) -> None:
    """A connection left in a transaction when the unit of work ends is flagged."""
    conn = None
    try:
        with sqlaudit.audit("leak", on_finding="ignore", **UNTIMED) as report:
            conn = db.connect()
            conn.execute(select(Author.id)).all()
        assert kinds(report, timing=True) == ["long_transaction"]
        assert "still open" in report.findings[0].message
    finally:
        if conn is not None:
            conn.close()


def test_stream_results_are_exempt(db: Engine, clock: Clock) -> None:
    """Streaming results keep a transaction open by design."""
    with sqlaudit.audit("stream", idle_in_transaction_ms=50, on_finding="ignore") as report:
        with db.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(select(Author.id))
            for _row in result:
                clock.advance(0.02)
            conn.execute(select(Author.name)).all()
    assert kinds(report) == []


# -- transaction_overhead and the summary -------------------------------------------------


def test_one_small_transaction_is_a_statistic_not_a_finding(db: Engine, db_kind: str) -> None:
    """One SELECT in a Session on PostgreSQL is BEGIN + SELECT + ROLLBACK: 2 of 3 round trips
    are transaction control, the price of a transaction, reported as a statistic (the report,
    its JSON, the span) and never as a finding."""
    with sqlaudit.audit("read", on_finding="ignore", **UNTIMED) as report:
        with Session(db) as session:
            session.get(Author, 1)
    assert [f.kind for f in report.findings if f.kind == "transaction_overhead"] == []
    control, statements = report.round_trips
    assert statements == 1
    assert control == {"sqlite": 2, "mysql": 2, "postgresql": 3}[db_kind]  # + reset ROLLBACK
    assert report.to_dict()["round_trips"] == {
        "transaction_control": control,
        "statements": 1,
    }
    assert report.transaction_count == 1


def lookups_one_session_each(engine: Engine, n: int) -> None:
    """A request whose helpers each open a Session of their own."""
    for author_id in range(1, n + 1):
        with Session(engine) as session:
            session.get(Author, (author_id - 1) % 5 + 1)


def test_many_transactions_in_one_unit_are_transaction_overhead(db: Engine, db_kind: str) -> None:
    """Twelve transactions in one request on a server: most round trips are BEGIN/COMMIT/
    ROLLBACK: an info finding that says why (per dialect) and to group the work; this unit
    only reads, so the fix may name autocommit too. Nothing on embedded SQLite."""
    with sqlaudit.audit("reads", on_finding="ignore", **UNTIMED) as report:
        lookups_one_session_each(db, 12)
    overhead = [f for f in report.findings if f.kind == "transaction_overhead"]
    if db_kind == "sqlite":
        assert overhead == []
        return
    (finding,) = overhead
    assert finding.severity is Severity.INFO
    assert "12 transactions in one unit of work" in finding.message
    assert ("BEGIN" in finding.message) is (db_kind == "postgresql")
    assert "one `with session.begin():`" in finding.fix
    assert "AUTOCOMMIT" in finding.fix


def test_transaction_overhead_never_advises_autocommit_to_a_unit_that_writes(
    db: Engine, db_kind: str
) -> None:
    """A unit that writes in many small transactions: grouping them is the advice; autocommit
    (which makes writes non-atomic, the problem this library audits) never is."""
    with sqlaudit.audit("writes", on_finding="ignore", **UNTIMED) as report:
        lookups_one_session_each(db, 11)
        with db.begin() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
    overhead = [f for f in report.findings if f.kind == "transaction_overhead"]
    if db_kind == "sqlite":
        assert overhead == []
        return
    (finding,) = overhead
    assert "AUTOCOMMIT" not in finding.fix
    assert "one `with session.begin():`" in finding.fix


def test_summary_counts_commits_and_rollbacks(db: Engine) -> None:
    """The report counts transactions, commits and rollbacks of the unit."""
    with sqlaudit.audit("summary", on_finding="ignore", **UNTIMED) as report:
        with db.begin() as conn:
            conn.execute(insert(Author).values(id=100, name="a"))
        with db.connect() as conn:
            conn.execute(insert(Author).values(id=101, name="b"))
            conn.rollback()
    assert report.transaction_count == 2
    assert report.commit_count == 1
    assert report.rollback_count == 1
    assert "2 transactions: 1 committed, 1 rolled back" in report.render()


# -- stale_identity_map --------------------------------------------------------------------


def _rename_elsewhere(engine: Engine, author_id: int, name: str) -> None:
    """Another process updates the row (its own connection and transaction)."""
    with engine.begin() as conn:
        conn.execute(update(Author).where(Author.id == author_id).values(name=name))


def test_stale_identity_map_under_autocommit(db: Engine) -> None:
    """A Session on an autocommit engine keeps its objects across statements: a re-read
    returns the old value although the database has the new one (the Exposed #306 pattern)."""
    with sqlaudit.audit("stale", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            author = session.get_one(Author, 1)
            assert author.name == "author 1"
            _rename_elsewhere(db, 1, "renamed")
            again = session.scalars(select(Author).where(Author.id == 1)).one()
            assert again.name == "author 1"  # stale: the database says "renamed"
    finding = next(f for f in report.findings if f.kind == "stale_identity_map")
    assert finding.relationship == "Author"
    assert "autocommit" in finding.message
    assert "populate_existing" in finding.fix


def test_stale_identity_map_across_commits(db: Engine) -> None:
    """``expire_on_commit=False`` carries objects into the next transaction unrefreshed."""
    with sqlaudit.audit("carried", on_finding="ignore", **UNTIMED) as report:
        with Session(db, expire_on_commit=False) as session:
            author = session.get_one(Author, 2)
            session.commit()
            _rename_elsewhere(db, 2, "renamed")
            again = session.scalars(select(Author).where(Author.id == 2)).one()
            assert again.name == "author 2"
    assert "stale_identity_map" in kinds(report)
    assert author.name == "author 2"


@pytest.mark.parametrize(
    ("query", "stale"),
    [
        pytest.param(lambda: select(Author).where(Author.id == 1), 1, id="held-row-by-pk"),
        pytest.param(lambda: select(Author).where(Author.id.in_([1, 4])), 1, id="held-in-list"),
        pytest.param(lambda: select(Author), 1, id="whole-table"),
        pytest.param(lambda: select(Author).where(Author.id == 4), 0, id="other-row-by-pk"),
        pytest.param(lambda: select(Author).where(Author.id.in_([3, 4])), 0, id="other-rows"),
        pytest.param(lambda: select(Author).where(Author.name == "author 5"), 0, id="other-name"),
    ],
)
def test_stale_identity_map_only_when_a_held_row_comes_back(
    db: Engine, query: Any, stale: int
) -> None:
    """Under autocommit the session holds Author 1: a SELECT that returns that row again is
    stale; a SELECT of the same class returning only rows the session does not hold is not
    (before, holding any Author made every Author query "stale")."""
    with sqlaudit.audit("reread", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            held = session.get_one(Author, 1)  # held: the identity map keeps it while referenced
            _rename_elsewhere(db, 1, "renamed")
            session.scalars(query()).all()
            assert held.name == "author 1"
    findings = [f for f in report.findings if f.kind == "stale_identity_map"]
    assert len(findings) == stale
    if stale:
        assert "re-read 1 Author row(s)" in findings[0].message


def test_stale_rows_found_by_another_column_are_told_by_rowcount(db: Engine, db_kind: str) -> None:
    """A held row returned by a filter on another column: MariaDB and PostgreSQL report how
    many rows came back (rowcount), so the held one is told apart from rows loaded new; SQLite
    does not (rowcount -1 for SELECT), and then nothing is reported rather than a guess."""
    with sqlaudit.audit("reread", on_finding="ignore", **UNTIMED) as report:
        with Session(autocommit(db)) as session:
            held = session.get_one(Author, 1)
            _rename_elsewhere(db, 1, "renamed")
            rows = session.scalars(select(Author).where(Author.id < 4)).all()
            assert len(rows) == 3
            assert held.name == "author 1"
    stale = [f for f in report.findings if f.kind == "stale_identity_map"]
    assert len(stale) == (0 if db_kind == "sqlite" else 1)
    if stale:
        assert "re-read 1 Author row(s)" in stale[0].message


def test_fresh_session_expiry_and_populate_existing_are_silent(db: Engine) -> None:
    """A new session per unit of work, the default expire_on_commit, and populate_existing
    all see the new value, and none is flagged."""
    with sqlaudit.audit("fresh", on_finding="ignore", **UNTIMED) as report:
        with Session(db) as session:
            session.get_one(Author, 3)
            session.commit()
            _rename_elsewhere(db, 3, "renamed")
            assert session.scalars(select(Author).where(Author.id == 3)).one().name == "renamed"
        with Session(autocommit(db)) as session:
            session.get_one(Author, 4)
            _rename_elsewhere(db, 4, "renamed")
            stmt = select(Author).where(Author.id == 4).execution_options(populate_existing=True)
            assert session.scalars(stmt).one().name == "renamed"
    assert kinds(report) == []


def test_open_transactions_switch(db: Engine) -> None:
    """``open_transactions=False`` (set by the pytest plugin for test bodies) does not report
    a transaction merely for being open at the end; an idle one still is."""
    conn = db.connect()
    try:
        with sqlaudit.audit(
            "body", open_transactions=False, on_finding="ignore", **UNTIMED
        ) as report:
            conn.execute(select(Author.id)).all()
    finally:
        conn.close()
    assert kinds(report) == []
