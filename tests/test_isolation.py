"""Isolation: concurrent units of work never see each other's statements."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

import sqlaudit
from sqlaudit.capture.scope import CURRENT
from sqlaudit.report import scope_of


def test_200_concurrent_asyncio_tasks_each_exact() -> None:
    """200 tasks, each issuing a different known number of statements in its own audit,
    interleaved on one event loop: every report counts exactly its own statements."""
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    handle = sqlaudit.instrument(engine)

    async def unit(n: int) -> tuple[int, int]:
        async with sqlaudit.audit(f"task {n}", on_finding="ignore") as report:
            async with engine.connect() as conn:
                for i in range(n):
                    await conn.execute(text("SELECT :i"), {"i": i})
                    await asyncio.sleep(0)
        return n, report.query_count

    async def main() -> list[tuple[int, int]]:
        try:
            return await asyncio.gather(*(unit(n % 13 + 1) for n in range(200)))
        finally:
            await engine.dispose()

    try:
        results = asyncio.run(main())
    finally:
        handle.remove()
    assert len(results) == 200
    assert all(expected == got for expected, got in results), results
    assert CURRENT.get() is None


def test_16_threads_each_exact(tmp_path: Path) -> None:
    """16 threads on one engine, each with its own audit and statement count: exact."""
    engine = create_engine(f"sqlite:///{tmp_path / 'iso.db'}", pool_size=16)
    handle = sqlaudit.instrument(engine)
    results: dict[int, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def unit(n: int) -> None:
        try:
            barrier.wait()
            with sqlaudit.audit(f"thread {n}", on_finding="ignore") as report:
                with engine.connect() as conn:
                    for i in range(n * 5):
                        conn.execute(text("SELECT :i"), {"i": i}).all()
            results[n] = report.query_count
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=unit, args=(n,)) for n in range(1, 17)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handle.remove()
    engine.dispose()
    assert errors == []
    assert results == {n: n * 5 for n in range(1, 17)}


def test_all_threads_audit_takes_statements_from_other_threads(tmp_path: Path) -> None:
    """An ``all_threads`` audit receives statements of threads without their own audit, and
    audits opened in those threads roll up into it; without the flag other threads' statements
    are not attributed."""
    engine = create_engine(f"sqlite:///{tmp_path / 'threads.db'}")
    handle = sqlaudit.instrument(engine)

    def plain_worker() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).all()

    def audited_worker() -> None:
        with sqlaudit.audit("request", on_finding="ignore"), engine.connect() as conn:
            conn.execute(text("SELECT 2")).all()
            conn.execute(text("SELECT 3")).all()

    def run(target: object) -> None:
        thread = threading.Thread(target=target)  # type: ignore[arg-type]
        thread.start()
        thread.join()

    try:
        with sqlaudit.audit("test", on_finding="ignore", all_threads=True) as report:
            run(plain_worker)
            run(audited_worker)
        with sqlaudit.audit("narrow", on_finding="ignore") as narrow:
            run(plain_worker)
    finally:
        handle.remove()
        engine.dispose()
    assert report.query_count == 3
    assert narrow.query_count == 0


def test_threads_sharing_one_audit_count_exactly() -> None:
    """Threads recording into one audit at once (``contextvars.copy_context().run``, as
    ``asyncio.to_thread`` does) lose no statement, with thread switches forced very often;
    ``max_records`` holds exactly."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    handle = sqlaudit.instrument(engine)
    threads, per_thread, cap = 8, 400, 1000
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with sqlaudit.audit("shared", on_finding="ignore", max_records=cap) as report:
            start = threading.Barrier(threads)

            def work() -> None:
                start.wait()
                with engine.connect() as conn:
                    for _ in range(per_thread):
                        conn.execute(text("SELECT 1"))

            workers = [
                threading.Thread(target=contextvars.copy_context().run, args=(work,))
                for _ in range(threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
    finally:
        sys.setswitchinterval(interval)
        handle.remove()
        engine.dispose()
    assert report.query_count == threads * per_thread
    assert report.recorded_count == cap
    assert report.overflow == threads * per_thread - cap


def test_a_race_for_the_last_record_slot_ends_as_overflow(monkeypatch: Any) -> None:
    """Records are appended without a lock: two threads can both find one free slot. The
    interleaving is forced here (the second statement runs while the first one's call site
    is being captured), and the report still holds ``max_records`` exactly, counting the
    other statement as overflow, with every count and the db time exact."""
    from sqlaudit.capture import statements as _statements

    engine = create_engine("sqlite://", poolclass=StaticPool)
    handle = sqlaudit.instrument(engine)
    real_capture = _statements.capture
    conn = engine.connect()
    reentered: list[bool] = []

    def capture_with_a_race(depth: int = 2, opener: Any = None, recent: Any = None) -> Any:
        if not reentered:
            reentered.append(True)
            conn.execute(text("SELECT 2"))  # the "other thread", inside the free slot
        return real_capture(depth, opener, recent)

    try:
        with sqlaudit.audit("race", on_finding="ignore", max_records=1) as report:
            monkeypatch.setattr(_statements, "capture", capture_with_a_race)
            conn.execute(text("SELECT 1"))
            monkeypatch.setattr(_statements, "capture", real_capture)
            assert len(scope_of(report).records) == 2  # both passed the check: the race happened
            assert report.recorded_count == 1
            assert report.overflow == 1
            assert report.query_count == 2
            assert len(report.statements) == 1
            conn.execute(text("SELECT 3"))
        durations = [r.duration for r in report.statements]
    finally:
        conn.close()
        handle.remove()
        engine.dispose()
    assert reentered == [True]
    assert report.query_count == 3
    assert report.recorded_count == 1
    assert report.overflow == 2
    assert report.counts == {"select": 3}
    assert len(report.statements) == 1
    assert report.db_time >= sum(durations) > 0


def test_counts_read_after_every_statement_stay_exact() -> None:
    """``query_count``, ``counts`` and ``db_time`` are derived from the records when read,
    counting only what is new since the last read: reading them after every statement (and
    across a nested audit merging into the parent) gives exact figures each time."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    handle = sqlaudit.instrument(engine)
    seen: list[tuple[int, int, float]] = []
    try:
        with sqlaudit.audit("outer", on_finding="ignore", max_records=5) as report:
            with engine.connect() as conn:
                for i in range(4):
                    conn.execute(text("SELECT :i"), {"i": i})
                    seen.append((report.query_count, report.overflow, report.db_time))
                with sqlaudit.audit("inner", on_finding="ignore") as inner:
                    for i in range(3):
                        conn.execute(text("SELECT :i"), {"i": i})
                assert inner.query_count == 3
                seen.append((report.query_count, report.overflow, report.db_time))
                conn.execute(text("CREATE TABLE t (x INTEGER)"))
                seen.append((report.query_count, report.overflow, report.db_time))
    finally:
        handle.remove()
        engine.dispose()
    assert [(q, o) for q, o, _ in seen] == [(1, 0), (2, 0), (3, 0), (4, 0), (7, 2), (8, 3)]
    times = [t for _, _, t in seen]
    assert times == sorted(times) and times[0] > 0
    assert report.counts == {"ddl": 1, "select": 7}
    assert report.recorded_count == 5
    starts = [r.start for r in report.statements]
    assert starts == sorted(starts)


class _Base(DeclarativeBase):
    pass


class _Thing(_Base):
    __tablename__ = "sqlaudit_t_thing"
    id: Mapped[int] = mapped_column(primary_key=True)


class _EmptiedAfterCheck(list):  # type: ignore[type-arg]  # a stand-in for FALLBACK
    """A FALLBACK list that another thread emptied between a reader's ``if FALLBACK`` and its
    ``FALLBACK[-1]``: it says it is not empty, and holds nothing."""

    def __bool__(self) -> bool:
        return True


def test_the_last_all_threads_audit_closing_during_a_statement_is_harmless(
    monkeypatch: Any,
) -> None:
    """The race of an ``all_threads`` audit closing in one thread while another thread's
    statement (or ORM load) reads ``FALLBACK`` is forced: the statement and the ORM load run
    unaudited, nothing reaches the application."""
    from sqlaudit.capture import origins, scope, statements

    engine = create_engine("sqlite://", poolclass=StaticPool)
    _Base.metadata.create_all(engine)
    handle = sqlaudit.instrument(engine)
    try:
        raced = _EmptiedAfterCheck()
        for module in (scope, statements, origins):
            monkeypatch.setattr(module, "FALLBACK", raced)
        assert scope.current() is None
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO sqlaudit_t_thing (id) VALUES (1)"))
            assert conn.execute(text("SELECT count(*) FROM sqlaudit_t_thing")).scalar() == 1
            conn.exec_driver_sql("SELECT 1")
            conn.execute(text("DELETE FROM sqlaudit_t_thing WHERE id = :i"), [{"i": 5}, {"i": 6}])
        with Session(engine) as session:
            assert [t.id for t in session.query(_Thing)] == [1]
    finally:
        handle.remove()
        engine.dispose()


def test_which_threads_an_audit_counts() -> None:
    """As documented (README "Use", issue 14): work handed to ``asyncio.to_thread`` counts (it
    copies the context); a plain ``ThreadPoolExecutor`` or ``loop.run_in_executor`` does not,
    unless the audit takes ``all_threads=True`` or the work runs in a copied context."""
    from concurrent.futures import ThreadPoolExecutor

    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    handle = sqlaudit.instrument(engine)

    def query() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).all()

    async def main(all_threads: bool) -> int:
        async with sqlaudit.audit("job", on_finding="ignore", all_threads=all_threads) as report:
            query()  # counted: the audit's own context
            await asyncio.to_thread(query)  # counted: to_thread copies the context
            await asyncio.get_running_loop().run_in_executor(None, query)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(query).result()
                pool.submit(contextvars.copy_context().run, query).result()  # counted
        return report.query_count

    try:
        assert asyncio.run(main(all_threads=False)) == 3
        assert asyncio.run(main(all_threads=True)) == 5
    finally:
        handle.remove()
        engine.dispose()
