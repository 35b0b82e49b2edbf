"""Call stacks through every statement path (``capture.callsite._collect``'s shortcut).

When the unit was opened in the caller of the statement's frame (a ``with audit()`` block around
a call of a helper that executes), ``_collect`` takes that caller without its loop: the stack
must be exactly the loop's, through SQLAlchemy Core, ``text()``, the driver path, executemany,
the ORM and async code; and the loop's own shapes (the unit opened further up, an opener that
is not application code, ``MAX_APP``) must not be taken by the shortcut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from lines import marked_line
from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert, literal, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

import sqlaudit
from sqlaudit.capture import callsite as _callsite

HERE = __file__
METADATA = MetaData()
ITEMS = Table(
    "callsite_items", METADATA, Column("id", Integer, primary_key=True), Column("x", Integer)
)


def line_of(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    return marked_line(HERE, marker)


# -- the statement paths: each helper issues one statement from its marked line ---------------


def run_core(conn: Any, session: Session) -> None:
    conn.execute(select(literal(1))).all()  # path-core


def run_text(conn: Any, session: Session) -> None:
    conn.execute(text("SELECT 2")).all()  # path-text


def run_driver(conn: Any, session: Session) -> None:
    conn.exec_driver_sql("SELECT 3").all()  # path-driver


def run_many(conn: Any, session: Session) -> None:
    conn.execute(insert(ITEMS), [{"x": 1}, {"x": 2}])  # path-many


def run_orm(conn: Any, session: Session) -> None:
    session.execute(select(literal(4))).all()  # path-orm


PATHS: list[Any] = [
    pytest.param(run_core, "path-core", id="core"),
    pytest.param(run_text, "path-text", id="text"),
    pytest.param(run_driver, "path-driver", id="driver"),
    pytest.param(run_many, "path-many", id="executemany"),
    pytest.param(run_orm, "path-orm", id="orm"),
]

Runner = Callable[[Any, Session], None]


@pytest.fixture
def audited(sqlite_engine: Engine) -> Iterator[Engine]:
    METADATA.create_all(sqlite_engine)
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        yield sqlite_engine
    finally:
        handle.remove()


def stacks(report: sqlaudit.AuditReport, marker: str) -> list[list[tuple[int, str]]]:
    """The stacks (line, function) of the statements issued from ``marker``'s line."""
    line = line_of(marker)
    return [
        [(site.line, site.function) for site in record.stack]
        for record in report.statements
        if record.stack and record.stack[0].line == line
    ]


# -- the shortcut: the unit opened in the caller of the statement's frame -----------------


@pytest.mark.parametrize(("runner", "marker"), PATHS)
def test_unit_opened_in_the_callers_frame(audited: Engine, runner: Runner, marker: str) -> None:
    """The helper's line, then the line of the ``with`` block that called it: the stack ends
    at the opener, included (application code)."""
    with audited.connect() as conn, Session(audited) as session:
        with sqlaudit.audit("caller", on_finding="ignore") as report:
            runner(conn, session)  # opener-calls
            runner(conn, session)  # opener-calls-again
    assert stacks(report, marker) == [
        [(line_of(marker), runner.__name__), (line_of("opener-calls"), opened_here)],
        [(line_of(marker), runner.__name__), (line_of("opener-calls-again"), opened_here)],
    ]


opened_here = "test_unit_opened_in_the_callers_frame"


def through(runner: Runner, conn: Any, session: Session) -> None:
    runner(conn, session)  # through-line


def opens_above(runner: Runner, conn: Any, session: Session) -> sqlaudit.AuditReport:
    with sqlaudit.audit("above", on_finding="ignore") as report:
        through(runner, conn, session)  # opens-above
    return report


@pytest.mark.parametrize(("runner", "marker"), PATHS)
def test_unit_opened_further_up(audited: Engine, runner: Runner, marker: str) -> None:
    """Opened two frames above the statement's: the loop walks to the opener, included."""
    with audited.connect() as conn, Session(audited) as session:
        report = opens_above(runner, conn, session)
    assert stacks(report, marker) == [
        [
            (line_of(marker), runner.__name__),
            (line_of("through-line"), "through"),
            (line_of("opens-above"), "opens_above"),
        ]
    ]


#: A function that opens a unit and calls ``runner`` in it, compiled under a pseudo-file name
#: (not application code): its frame, the opener, is not part of any stack.
LIBRARY_OPENER = compile(
    "def library_opens(sqlaudit, runner, conn, session):\n"
    "    with sqlaudit.audit('library', on_finding='ignore') as report:\n"
    "        runner(conn, session)\n"
    "    return report\n",
    "<library>",
    "exec",
)


@pytest.mark.parametrize(("runner", "marker"), PATHS)
def test_opener_that_is_not_application_code(audited: Engine, runner: Runner, marker: str) -> None:
    """Opened by library code that calls the helper: the helper's frame alone."""
    namespace: dict[str, Any] = {}
    exec(LIBRARY_OPENER, namespace)
    with audited.connect() as conn, Session(audited) as session:
        report = namespace["library_opens"](sqlaudit, runner, conn, session)
    assert stacks(report, marker) == [[(line_of(marker), runner.__name__)]]


def test_max_app_one_holds_with_the_opener_in_the_caller(
    audited: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MAX_APP = 1`` keeps the statement's frame only, also when the opener is its caller."""
    monkeypatch.setattr(_callsite, "MAX_APP", 1)
    with audited.connect() as conn, Session(audited) as session:
        with sqlaudit.audit("one", on_finding="ignore") as report:
            run_core(conn, session)
    assert stacks(report, "path-core") == [[(line_of("path-core"), "run_core")]]


def test_statement_in_the_openers_own_frame(audited: Engine) -> None:
    """Executed in the ``with`` block itself: that line alone."""
    with audited.connect() as conn, sqlaudit.audit("own", on_finding="ignore") as report:
        conn.execute(text("SELECT 5"))  # own-frame
    assert stacks(report, "own-frame") == [
        [(line_of("own-frame"), "test_statement_in_the_openers_own_frame")]
    ]


# -- async: the statement runs in SQLAlchemy's greenlet, the application in its parent -------


async def async_run(session: AsyncSession) -> None:
    await session.execute(text("SELECT 6"))  # async-path


async def async_through(session: AsyncSession) -> None:
    await async_run(session)  # async-through


def test_async_stacks(async_engine: AsyncEngine) -> None:
    """Through ``AsyncSession``: the awaiting coroutines' lines, up to the ``async with``
    block, whether it awaits the executing coroutine itself or one more level."""

    async def scenario() -> sqlaudit.AuditReport:
        handle = sqlaudit.instrument(async_engine)
        try:
            async with AsyncSession(async_engine) as session:
                async with sqlaudit.audit("async", on_finding="ignore") as report:
                    await async_run(session)  # async-opener-awaits
                    await async_through(session)  # async-opener-awaits-through
        finally:
            handle.remove()
        return report

    report = asyncio.run(scenario())
    opener = "scenario"
    assert stacks(report, "async-path") == [
        [(line_of("async-path"), "async_run"), (line_of("async-opener-awaits"), opener)],
        [
            (line_of("async-path"), "async_run"),
            (line_of("async-through"), "async_through"),
            (line_of("async-opener-awaits-through"), opener),
        ],
    ]


# -- stop_at: the walk ends at a registered function's frame, not at its file's others ------

#: Two library functions in one pseudo-file: one registered with ``stop_at``, one not.
STOPS = compile(
    "def stop_here(fn):\n    return fn()\n\n\ndef not_a_stop(fn):\n    return fn()\n",
    "<stops>",
    "exec",
)


def test_walk_ends_at_the_stop_function_not_at_its_neighbours() -> None:
    """A frame of a ``stop_at`` function ends the walk; a frame of another function of the
    same file is passed like any library frame, and the application frames above it kept."""
    namespace: dict[str, Any] = {}
    exec(STOPS, namespace)
    _callsite.stop_at(namespace["stop_here"])

    def inner() -> tuple[Any, ...]:
        return _callsite.capture(1)  # stop-inner

    def middle() -> tuple[Any, ...]:
        return namespace["not_a_stop"](inner)  # stop-middle

    def outer() -> tuple[Any, ...]:
        return namespace["stop_here"](middle)  # stop-outer

    stack = outer()  # stop-test
    assert [(s.line, s.function) for s in stack] == [
        (line_of("stop-inner"), "inner"),
        (line_of("stop-middle"), "middle"),
    ]
    unstopped = namespace["not_a_stop"](middle)  # not-stopped
    assert [(s.line, s.function) for s in unstopped[:3]] == [
        (line_of("stop-inner"), "inner"),
        (line_of("stop-middle"), "middle"),
        (line_of("not-stopped"), "test_walk_ends_at_the_stop_function_not_at_its_neighbours"),
    ]
