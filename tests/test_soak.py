"""Concurrency soak: threads and asyncio tasks on four engines, nested audits, and a fifth
engine instrumented and removed over and over under traffic. Every unit's count is exact.

One run mixes:

* sync units in worker threads on a SQLite file, MariaDB (PyMySQL) and PostgreSQL (psycopg),
  Core statements and ORM ``Session.get``, each unit with a nested audit and, every third
  unit, a nested audit inside that;
* async units as asyncio tasks on an aiosqlite engine (Core and ``AsyncSession.get``) in a
  thread of their own, yielding between statements, each with a nested audit, some fanning
  out to two subtasks (one of them in its own nested audit) and some to two
  ``asyncio.to_thread`` calls on the sync SQLite engine (which carry the unit's context);
* a churn thread that instruments a fifth engine, checks an audit counts its statements,
  removes the instrumentation, checks an audit no longer does, and instruments the busy
  engines again (which must return their existing handles), as fast as it can.

Each unit issues a distinct known number of statements; every report, nested ones included
(a child's statements count in it and in its parents), must hold exactly that many. Afterwards
no scope is left: ``CURRENT`` is unset in every worker thread, task and here, ``FALLBACK`` is
empty, and the churned engine carries no sqlaudit listener.

Measured on the 2-core development machine (SQLAlchemy 2.1.9, Python 3.11, local MariaDB and
PostgreSQL; the ``print`` at the end shows each run's figures with ``-s``): 3,500 units (2,000
sync, 1,500 async) with 4,667 nested audits, 34,990 statements, ~16,700 instrument/remove
cycles of the churned engine, 23.5 s. Fault injection checked that it fails when a nested
audit does not roll up, when a scope is not reset (sync, async and churn threads) and when
``remove()`` leaves its listeners.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from models import Author, Base, seed
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import AsyncAdaptedQueuePool, StaticPool

import sqlaudit
from sqlaudit import AuditReport
from sqlaudit.capture import instrumentation as _capture
from sqlaudit.capture.scope import CURRENT, FALLBACK

SYNC_THREADS = 4
UNITS_PER_THREAD = 500
ASYNC_UNITS = 1500
ASYNC_CONCURRENCY = 12
TIMEOUT_S = 120
#: Threads switch every 5 ms by default; far more often here, so that statements of
#: different threads interleave inside sqlaudit's own bookkeeping too.
SWITCH_INTERVAL_S = 1e-5


def statements_for(unit: int) -> int:
    """4 to 16 statements, varying from one unit to the next."""
    return 4 + (unit * 7) % 13


@dataclass
class Checked:
    """One unit's reports with the counts they must have (outer first, then nested ones)."""

    unit: int
    reports: list[tuple[AuditReport, int]] = field(default_factory=list)


@dataclass
class Soak:
    """What every thread and task reports back (appends are atomic under the GIL)."""

    checked: list[Checked] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    churn_cycles: int = 0


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'soak.db'}", pool_size=SYNC_THREADS + 4)
    yield engine
    engine.dispose()


def prepare(engine: Engine) -> None:
    """Fresh seeded tables, and one connection made outside any audit."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session, authors=3)


def core(engine: Engine, n: int) -> None:
    with engine.connect() as conn:
        for i in range(n):
            conn.execute(text("SELECT :i"), {"i": i}).all()


def orm_get(engine: Engine) -> None:
    with Session(engine) as session:
        assert session.get(Author, 1) is not None


def sync_unit(unit: int, engines: list[Engine], soak: Soak) -> None:
    """``statements_for(unit)`` statements spread over the engines, a nested audit (with a
    nested audit of its own every third unit) in the middle."""
    total = statements_for(unit)
    engine = engines[unit % len(engines)]
    other = engines[(unit + 1) % len(engines)]
    inner = total // 2
    innermost = 1 if unit % 3 == 0 else 0
    checked = Checked(unit)
    with sqlaudit.audit(f"sync {unit}", on_finding="ignore") as outer:
        orm_get(engine)
        with sqlaudit.audit(f"sync {unit} inner", on_finding="ignore") as child:
            core(other, inner - innermost)
            if innermost:
                with sqlaudit.audit(f"sync {unit} innermost", on_finding="ignore") as grand:
                    orm_get(engine)
                checked.reports.append((grand, innermost))
        core(engine, total - 1 - inner)
    checked.reports[:0] = [(outer, total), (child, inner)]
    soak.checked.append(checked)
    if CURRENT.get() is not None:
        soak.leaks.append(f"scope open after sync unit {unit}")


def sync_worker(first: int, engines: list[Engine], soak: Soak, start: threading.Barrier) -> None:
    try:
        start.wait(timeout=TIMEOUT_S)
        for unit in range(first, first + UNITS_PER_THREAD):
            sync_unit(unit, engines, soak)
    except BaseException as exc:
        soak.errors.append(exc)


async def async_core(engine: AsyncEngine, n: int) -> None:
    async with engine.connect() as conn:
        for i in range(n):
            await conn.execute(text("SELECT :i"), {"i": i})
            await asyncio.sleep(0)


async def async_unit(unit: int, engine: AsyncEngine, sync_engine: Engine, soak: Soak) -> None:
    """An async unit: a nested audit, and either two subtasks (one in a nested audit of its
    own), two ``asyncio.to_thread`` calls on the sync engine, or plain awaits."""
    total = statements_for(unit)
    checked = Checked(unit)
    inner = total // 2
    rest = total - 1 - inner
    async with sqlaudit.audit(f"async {unit}", on_finding="ignore") as outer:
        async with AsyncSession(engine) as session:
            assert await session.get(Author, 1) is not None
        async with sqlaudit.audit(f"async {unit} inner", on_finding="ignore") as child:
            await async_core(engine, inner)
        if unit % 3 == 0:  # subtasks inherit the unit's context (asyncio copies it)

            async def nested(n: int) -> AuditReport:
                async with sqlaudit.audit(f"async {unit} subtask", on_finding="ignore") as sub:
                    await async_core(engine, n)
                return sub

            sub, _ = await asyncio.gather(nested(rest // 2), async_core(engine, rest - rest // 2))
            checked.reports.append((sub, rest // 2))
        elif unit % 3 == 1:  # to_thread copies the context too: the statements are the unit's
            await asyncio.gather(
                asyncio.to_thread(core, sync_engine, rest // 2),
                asyncio.to_thread(core, sync_engine, rest - rest // 2),
            )
        else:
            await async_core(engine, rest)
    checked.reports[:0] = [(outer, total), (child, inner)]
    soak.checked.append(checked)
    if CURRENT.get() is not None:
        soak.leaks.append(f"scope open after async unit {unit}")


def async_worker(
    url: str, first: int, sync_engine: Engine, soak: Soak, start: threading.Barrier
) -> None:
    async def main() -> None:
        # The pool class explicitly: SQLAlchemy 2.0 defaults file-based aiosqlite to NullPool.
        engine = create_async_engine(
            url, poolclass=AsyncAdaptedQueuePool, pool_size=ASYNC_CONCURRENCY
        )
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine) as session:
            await session.run_sync(lambda s: seed(s, authors=3))
        handle = sqlaudit.instrument(engine)
        limit = asyncio.Semaphore(ASYNC_CONCURRENCY)

        async def one(unit: int) -> None:
            async with limit:
                await async_unit(unit, engine, sync_engine, soak)
                if sqlaudit.instrument(engine) is not handle:
                    soak.leaks.append("a second handle for the busy async engine")

        start.wait(timeout=TIMEOUT_S)
        try:
            await asyncio.gather(*(one(unit) for unit in range(first, first + ASYNC_UNITS)))
        finally:
            handle.remove()
            await engine.dispose()
        if CURRENT.get() is not None:
            soak.leaks.append("scope open in the async worker's main task")

    try:
        asyncio.run(main())
    except BaseException as exc:
        soak.errors.append(exc)
        start.abort()  # release the sync workers at once instead of after the timeout


def churn(busy: dict[Engine, _capture.Instrumentation], stop: threading.Event, soak: Soak) -> None:
    """Instrument and remove a fifth engine while the others are busy; re-instrument those."""
    other = create_engine("sqlite://", poolclass=StaticPool)
    try:
        while not stop.is_set():
            handle = sqlaudit.instrument(other)
            with sqlaudit.audit("churn on", on_finding="ignore") as on:
                core(other, 2)
            handle.remove()
            with sqlaudit.audit("churn off", on_finding="ignore") as off:
                core(other, 3)
            if (on.query_count, off.query_count) != (2, 0):
                soak.leaks.append(f"churn counted {on.query_count}, {off.query_count}")
            if CURRENT.get() is not None or on.parent is not None or off.parent is not None:
                soak.leaks.append("scope open in the churn thread")
            for engine, expected in busy.items():
                if sqlaudit.instrument(engine) is not expected:
                    soak.leaks.append(f"a second handle for the busy {engine.url}")
            soak.churn_cycles += 1
        listening = any(event.contains(other, name, fn) for name, fn in _capture._LISTENERS)
        if listening or _capture._registry.get(other) is not None:
            soak.leaks.append("the churned engine still carries sqlaudit listeners")
    except BaseException as exc:
        soak.errors.append(exc)
    finally:
        other.dispose()


@pytest.mark.heavy
def test_soak_threads_tasks_nesting_and_instrument_churn(
    tmp_path: Path, sqlite_file: Engine, mysql_engine: Engine, postgres_engine: Engine
) -> None:
    """Sync units in threads on SQLite, MariaDB and PostgreSQL, async units on aiosqlite,
    nested audits, and instrument()/remove() churn on another engine, all at once: every
    report is exact and no scope outlives its unit."""
    engines = [sqlite_file, mysql_engine, postgres_engine]
    for engine in engines:
        prepare(engine)
    handles = {engine: sqlaudit.instrument(engine) for engine in engines}
    soak = Soak()
    stop = threading.Event()
    start = threading.Barrier(SYNC_THREADS + 1)
    workers = [
        threading.Thread(
            target=sync_worker, args=(n * UNITS_PER_THREAD, engines, soak, start), daemon=True
        )
        for n in range(SYNC_THREADS)
    ]
    async_url = f"sqlite+aiosqlite:///{tmp_path / 'soak_async.db'}"
    asyncs = threading.Thread(
        target=async_worker,
        args=(async_url, SYNC_THREADS * UNITS_PER_THREAD, sqlite_file, soak, start),
        daemon=True,
    )
    churner = threading.Thread(target=churn, args=(handles, stop, soak), daemon=True)
    started = time.perf_counter()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        churner.start()
        for thread in [*workers, asyncs]:
            thread.start()
        for thread in [*workers, asyncs]:
            thread.join(timeout=TIMEOUT_S)
        stop.set()
        churner.join(timeout=TIMEOUT_S)
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        for handle in handles.values():
            handle.remove()
        for engine in engines:
            Base.metadata.drop_all(engine)
    elapsed = time.perf_counter() - started
    assert not any(t.is_alive() for t in [*workers, asyncs, churner])
    assert soak.errors == []
    assert soak.leaks == []
    units = SYNC_THREADS * UNITS_PER_THREAD + ASYNC_UNITS
    assert sorted(c.unit for c in soak.checked) == list(range(units))
    wrong = [
        (c.unit, r.name, r.query_count, expected)
        for c in soak.checked
        for r, expected in c.reports
        if r.query_count != expected or r.ended is None
    ]
    assert wrong == []
    outer = [c.reports[0][0] for c in soak.checked]
    assert all(r.parent is None for r in outer)
    assert len({id(r) for r in outer}) == units
    nested = sum(len(c.reports) - 1 for c in soak.checked)
    expected_total = sum(statements_for(u) for u in range(units))
    assert sum(r.query_count for r in outer) == expected_total
    assert soak.churn_cycles > 10
    assert CURRENT.get() is None
    assert FALLBACK == []
    print(
        f"\nsoak: {units} units ({nested} nested audits), {expected_total} statements, "
        f"{soak.churn_cycles} instrument/remove cycles, {elapsed:.1f} s"
    )
