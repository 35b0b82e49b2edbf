"""Capture: what ``instrument()`` records, what it leaves alone, and how it fails safe."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from models import Author, Base, prepared, seed
from sqlalchemy import Engine, create_engine, event, exc, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Mapper, Session

import sqlaudit
from sqlaudit.capture import claims as _claims
from sqlaudit.capture import orm as _orm
from sqlaudit.capture import statements as _statements


@contextmanager
def prepared_plain(engine: Engine) -> Iterator[Engine]:
    """The test tables, seeded, without instrumenting the engine."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session)
    try:
        yield engine
    finally:
        Base.metadata.drop_all(engine)


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def test_instrument_is_idempotent_and_remove_is_exact(sqlite_engine: Engine) -> None:
    """Instrumenting twice returns one handle; remove() takes off only sqlaudit's listeners."""

    def user_listener(cursor: object, statement: str, parameters: object, context: object) -> None:
        return None

    event.listen(sqlite_engine, "do_execute", user_listener)
    users = _claims._users["session"]  # other tests' engines may still be instrumented
    first = sqlaudit.instrument(sqlite_engine)
    assert sqlaudit.instrument(sqlite_engine) is first
    assert event.contains(sqlite_engine, "do_execute", _statements._do_execute)
    assert _claims.listening()
    first.remove()
    first.remove()
    assert not event.contains(sqlite_engine, "do_execute", _statements._do_execute)
    assert event.contains(sqlite_engine, "do_execute", user_listener)
    assert not first.active
    again = sqlaudit.instrument(sqlite_engine)
    assert again is not first and again.active
    assert _claims._users["session"] == users + 1
    again.remove()
    assert _claims._users["session"] == users  # this engine's claim on the ORM listeners is gone


def test_engine_collected_while_the_listener_lock_is_held_does_not_hang() -> None:
    """The garbage collector runs a dropped engine's finalizer wherever it collects, also in a
    thread that holds the ORM listener lock (``instrument()`` of another engine allocates
    inside it): the finalizer releases the engine's claim there and then, and ``remove()``
    afterwards releases nothing twice. (With a plain Lock that thread waited for itself
    forever: a CI run hung in ``test_flask_sqlalchemy.py``.)"""
    gc.collect()
    users = _claims._users["session"]
    engine = create_engine("sqlite://")
    handle = sqlaudit.instrument(engine)
    finalizer = handle._finalizer
    assert finalizer is not None and _claims._users["session"] == users + 1
    done = threading.Event()

    def collected_under_the_lock() -> None:
        with _claims._lock:
            finalizer()  # what the collector calls when it collects the engine here
        done.set()

    thread = threading.Thread(target=collected_under_the_lock, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert done.is_set(), "the finalizer waited for a lock its own thread held"
    assert _claims._users["session"] == users
    handle.remove()
    assert _claims._users["session"] == users
    engine.dispose()


#: A fresh process (no other instrumentation holds the listeners): a dropped engine's finalizer
#: runs, as the garbage collector may run it, inside SQLAlchemy's dispatch of the Session's
#: ``after_begin`` to the class-level listeners it was the last to claim.
_COLLECTED_IN_DISPATCH = """
import gc
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session
import sqlaudit
from sqlaudit.capture import claims, orm

gc.disable()
dropped = create_engine("sqlite://")
finalizer = sqlaudit.instrument(dropped)._finalizer

def collected_here(session, transaction, connection):
    finalizer()  # what the collector calls when it collects the dropped engine here

event.listen(Session, "after_begin", collected_here)
with Session(create_engine("sqlite://")) as session:
    assert session.execute(text("SELECT 7")).scalar() == 7
assert claims._users == {"session": 0, "detail": 0}
assert claims.listening("session") and claims.listening("detail")  # detached later
other = sqlaudit.instrument(create_engine("sqlite://"))  # claims them again, as they are
assert event.contains(Session, "after_begin", orm._on_after_begin)
other.remove()  # the safe point: detached now
assert not claims.listening("session") and not claims.listening("detail")
assert not event.contains(Session, "after_begin", orm._on_after_begin)
print("ok")
"""


def test_engine_collected_inside_a_session_dispatch_breaks_nothing() -> None:
    """The finalizer of a dropped engine gives up its claim but leaves the listeners to the next
    ``instrument()``/``remove()``: detaching them inside SQLAlchemy's iteration over them
    raised ``RuntimeError: deque mutated during iteration`` into the application's Session
    (seen in this suite, once in a while, as the collector ran)."""
    done = subprocess.run(
        [sys.executable, "-c", _COLLECTED_IN_DISPATCH],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_transaction_ends_are_watched_on_the_dialect_and_restored(sqlite_engine: Engine) -> None:
    """Commits and rollbacks are seen through the dialect's ``do_commit``/``do_rollback``,
    wrapped once per dialect (an engine from ``execution_options()`` shares its parent's) and
    restored by the last ``remove()``: no per-Connection ``event.listen`` per request."""
    dialect = sqlite_engine.dialect
    option_engine = sqlite_engine.execution_options(isolation_level="SERIALIZABLE")
    assert option_engine.dialect is dialect
    parent = sqlaudit.instrument(sqlite_engine)
    child = sqlaudit.instrument(option_engine)
    try:
        assert child is not parent
        assert {"do_commit", "do_rollback"} <= set(vars(dialect))
        with sqlaudit.audit("unit", on_finding="ignore") as report, option_engine.connect() as c:
            c.execute(text("CREATE TABLE IF NOT EXISTS watched (id INTEGER)"))
            c.execute(text("INSERT INTO watched VALUES (1)"))
            c.commit()
            c.execute(text("INSERT INTO watched VALUES (2)"))
            c.rollback()
        assert [t.end for t in report.transaction_records] == ["commit", "rollback"]
        child.remove()
        assert {"do_commit", "do_rollback"} <= set(vars(dialect))  # the parent still watches
    finally:
        child.remove()
        parent.remove()
    assert not {"do_commit", "do_rollback"} & set(vars(dialect))
    with sqlite_engine.connect() as conn:  # the class's own methods again
        conn.execute(text("DROP TABLE watched"))
        conn.commit()


def test_async_engine_is_unwrapped() -> None:
    """An AsyncEngine is instrumented through its ``sync_engine``."""
    async_engine = create_async_engine("sqlite+aiosqlite://")
    handle = sqlaudit.instrument(async_engine)
    try:
        assert handle.engine is async_engine.sync_engine
        assert sqlaudit.instrument(async_engine.sync_engine) is handle
    finally:
        handle.remove()


def test_engine_is_held_weakly() -> None:
    """An instrumented engine that the application drops is garbage-collected, and the shared
    ORM listeners are released with it."""
    gc.collect()  # engines that earlier tests dropped are released now, not below
    users = _claims._users["session"]
    engine = create_engine("sqlite://")
    handle = sqlaudit.instrument(engine)
    ref = weakref.ref(engine)
    engine.dispose()
    del engine
    gc.collect()
    assert ref() is None
    assert not handle.active
    assert _claims._users["session"] == users  # this engine's claim on the ORM listeners is gone


def test_nothing_recorded_outside_a_scope(db: Engine) -> None:
    """Statements outside ``audit()`` are not recorded anywhere; inside they are."""
    with db.connect() as conn:
        conn.execute(select(Author.id)).all()
        with sqlaudit.audit("inner", on_finding="ignore") as report:
            conn.execute(select(Author.name)).all()
        conn.execute(select(Author.id)).all()
    assert report.query_count == 1
    (record,) = report.statements
    assert record.kind == "select"
    assert "sqlaudit_t_author" in record.sql
    assert record.callsite is not None
    assert record.callsite.file == __file__
    assert record.dialect == db.dialect.name


def test_read_only_transactions_end_at_the_next_root_transaction(db: Engine) -> None:
    """A read-only transaction's commit or rollback is not followed (nothing to undo): it is
    "ended" when its Connection runs a statement in a new root transaction; a savepoint is
    the same root transaction; a streaming statement makes its transaction a streaming one.
    On every backend: the identity of the root transaction is SQLAlchemy's, not the driver's."""
    with sqlaudit.audit("reads", on_finding="ignore") as report, db.connect() as conn:
        conn.execute(select(Author.id)).all()
        conn.execute(select(Author.name)).all()
        conn.commit()
        conn.execute(select(Author.id)).all()
        with conn.begin_nested():
            conn.execute(select(Author.name)).all()
        conn.rollback()
        conn.execution_options(stream_results=True).execute(select(Author.id)).all()
        conn.execute(select(Author.id)).all()
        transactions = report.transaction_records
    assert [(t.end, t.statements, t.streaming) for t in transactions] == [
        ("ended", 2, False),
        ("ended", 2, False),  # SAVEPOINT and RELEASE are not counted as statements
        ("open", 2, True),
    ]


def test_records_kind_rowcount_batch_and_errors(db: Engine) -> None:
    """Each record carries its kind, rowcount, executemany size, and the failing statement's
    error name, while the application sees exactly the exception SQLAlchemy raises."""
    with sqlaudit.audit("mixed", on_finding="ignore") as report:
        with db.begin() as conn:
            conn.execute(insert(Author), [{"id": 50, "name": "x"}, {"id": 51, "name": "y"}])
            conn.execute(text("UPDATE sqlaudit_t_author SET name = 'z' WHERE id >= 50"))
        with pytest.raises(exc.DBAPIError), db.connect() as conn:
            conn.execute(text("SELECT no_such_column FROM sqlaudit_t_author"))
    by_kind = {r.kind: r for r in report.statements}
    assert by_kind["update"].rowcount == 2
    assert sum(r.batch for r in report.statements if r.kind == "insert") == 2
    failed = [r for r in report.statements if r.error]
    assert len(failed) == 1
    assert failed[0].kind == "select"
    assert report.query_count == len([r for r in report.statements if r.kind != "transaction"])


def test_handle_error_still_fires(db: Engine) -> None:
    """A user's ``handle_error`` listener sees the same error with sqlaudit in the path."""
    seen: list[str] = []
    event.listen(db, "handle_error", lambda ctx: seen.append(type(ctx.original_exception).__name__))
    with sqlaudit.audit("err", on_finding="ignore"), db.connect() as conn:
        with pytest.raises(exc.DBAPIError):
            conn.execute(text("SELECT * FROM sqlaudit_t_missing_table"))
    assert len(seen) == 1


def test_nested_scopes_roll_up(db: Engine) -> None:
    """A nested audit's statements are counted in it and in its parent."""
    with sqlaudit.audit("outer", on_finding="ignore") as outer, db.connect() as conn:
        conn.execute(select(Author.id)).all()
        with sqlaudit.audit("inner", on_finding="ignore") as inner:
            conn.execute(select(Author.name)).all()
            conn.execute(select(Author.name).where(Author.id == 1)).all()
        conn.execute(select(Author.id).where(Author.id == 2)).all()
    assert inner.query_count == 2
    assert outer.query_count == 4
    assert [r.start for r in outer.statements] == sorted(r.start for r in outer.statements)


def test_memory_bounded_by_max_records(sqlite_engine: Engine) -> None:
    """Past ``max_records`` statements are counted, not stored."""
    handle = sqlaudit.instrument(sqlite_engine)
    with sqlaudit.audit("many", max_records=10, on_finding="ignore") as report:
        with sqlite_engine.connect() as conn:
            for i in range(50):
                conn.execute(text("SELECT :i"), {"i": i}).all()
    handle.remove()
    assert report.query_count == 50
    assert len(report.statements) == 10
    assert report.overflow == 40


def test_orm_context_correlated_with_cursor_execute(db: Engine) -> None:
    """ORM statements carry their load type, read from each cursor execute's own context; an
    autoflush before the SELECT keeps its own identity: a write of that flush. No
    ``do_orm_execute`` listener exists (it would make SQLAlchemy prepare every ORM statement of
    the process twice)."""
    with sqlaudit.audit("orm", on_finding="ignore") as report, Session(db) as session:
        assert not session.dispatch.do_orm_execute
        session.add(Author(id=99, name="new"))
        author = session.scalars(select(Author).where(Author.id == 1)).one()
        assert author.books
    loads = [(r.kind, r.orm.load if r.orm else None) for r in report.statements]
    assert ("insert", "flush") in loads
    assert ("select", "query") in loads
    assert ("select", "lazy") in loads


def test_internal_error_is_swallowed_logged_once_and_counted(
    db: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure inside sqlaudit never reaches the application's query: the statement's
    result is unchanged, the error is counted on the report and logged once."""
    monkeypatch.setenv("SQLAUDIT_STRICT", "0")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    import sqlaudit.capture.statements

    monkeypatch.setattr(sqlaudit.capture.statements, "capture", broken)
    caplog.set_level(logging.ERROR, logger="sqlaudit")
    with sqlaudit.audit("faulty", on_finding="ignore") as report, db.connect() as conn:
        rows = [conn.execute(select(Author.id).where(Author.id == i)).all() for i in (1, 2)]
    assert rows == [[(1,)], [(2,)]]
    assert report.internal_errors == 2
    logged = [r for r in caplog.records if "internal error in capture" in r.getMessage()]
    assert len(logged) <= 1  # once per process and kind (may have been logged earlier)


def test_connection_setup_statements_not_counted(db_kind: str) -> None:
    """SQLAlchemy's first-connect dialect initialisation (server version, schema, settings)
    runs inside the first audit to connect, but is not the application's: not counted."""
    from conftest import make_engine

    fresh = make_engine(db_kind)  # type: ignore[arg-type]
    handle = sqlaudit.instrument(fresh)
    try:
        with sqlaudit.audit("first", on_finding="ignore") as report, fresh.connect() as conn:
            conn.execute(text("SELECT 1")).all()
    finally:
        handle.remove()
        fresh.dispose()
    assert report.query_count == 1
    assert [r.sql for r in report.statements] == ["SELECT 1"]


def test_orm_false_leaves_the_orm_detail_listeners_off(engine: Engine) -> None:
    """``instrument(engine, orm=False)``: no ``InstanceEvents.load`` listener and no ORM
    context read, so loaded objects pay nothing outside an audit; statements and transactions
    are still audited, lazy loads are no longer told apart."""
    with prepared_plain(engine):
        handle = sqlaudit.instrument(engine, orm=False)
        try:
            assert _claims.listening("session")
            assert not _claims.listening("detail")
            assert not event.contains(Mapper, "load", _orm.on_load)
            assert not _orm.detail
            with sqlaudit.audit("lean", on_finding="ignore") as report, Session(engine) as s:
                for author in s.scalars(select(Author)):
                    assert author.books
            assert report.query_count == 6
            assert report.transaction_count == 1
            assert all(r.orm is None for r in report.statements)
            with pytest.raises(sqlaudit.ConfigError, match="orm=False"):
                sqlaudit.instrument(engine)
        finally:
            handle.remove()
    assert not _claims.listening("session")
