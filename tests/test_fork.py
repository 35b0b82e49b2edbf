"""Fork safety (issue 14, row 10): a child forked while another thread holds one of sqlaudit's
locks never hangs. Real forks, on SQLite, MariaDB and PostgreSQL: each child instruments,
audits statements and exits; the parent gives it 30 seconds.

The child disposes of the engine's pool without closing it first (SQLAlchemy's advice for
``os.fork()``: the parent's pooled connections are not the child's to use).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

import sqlaudit
from sqlaudit import _internal
from sqlaudit.report import scope_of
from sqlaudit.web.devpage import DevPage

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only"),
    # Python 3.12+ warns that forking a multi-threaded process may deadlock: the point here.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
    pytest.mark.real_clock,
]


def in_child(work: Callable[[], None]) -> int:
    """Fork; the child runs ``work`` and exits 0 (1 if it raised). The parent waits up to 30
    seconds and returns the exit status, or -1 if the child hung (it is then killed)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        status = 1
        try:
            work()
            status = 0
        except BaseException:
            traceback.print_exc()  # on the test's stderr: what failed in the child
        finally:
            os._exit(status)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


def child_work(engine: Engine) -> Callable[[], None]:
    def work() -> None:
        engine.dispose(close=False)
        sqlaudit.instrument(engine).remove()
        handle = sqlaudit.instrument(engine)
        with sqlaudit.audit("child", on_finding="ignore") as report, engine.connect() as conn:
            for _ in range(3):
                conn.execute(text("SELECT 1")).all()
        assert report.query_count == 3
        handle.remove()

    return work


@pytest.fixture
def looping(engine: Engine) -> Iterator[None]:
    """A thread instrumenting and removing ``engine`` in a loop (the issue's reproduction)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            sqlaudit.instrument(engine).remove()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@pytest.mark.usefixtures("looping")
def test_forks_while_another_thread_instruments_never_hang(engine: Engine) -> None:
    """40 forks while a thread loops ``instrument(engine).remove()``: every child audits its
    statements and exits (36 of 60 children hung before)."""
    outcomes = [in_child(child_work(engine)) for _ in range(40)]
    assert outcomes == [0] * 40


def test_a_child_never_waits_for_a_lock_held_at_fork(engine: Engine) -> None:
    """Every lock sqlaudit registered (modules, memos, the development page, the statement
    log of the audit open when the process forks) is held by another thread at the fork: the
    child instruments, records past ``max_records`` into that open audit, closes it, opens
    its own and updates the page, and exits."""
    handle = sqlaudit.instrument(engine)
    page = DevPage("/_sqlaudit")
    held = threading.Event()
    done = threading.Event()

    with sqlaudit.audit("open at fork", on_finding="ignore", max_records=1) as report:
        locks: list[Any] = [
            getattr(owner, name) for owner, names in _internal._locks.items() for name in names
        ]
        locks += [_internal._lock, scope_of(report).log.lock]

        def hold() -> None:
            for lock in locks:
                lock.acquire()
            held.set()
            done.wait()
            for lock in reversed(locks):
                lock.release()

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait()
        try:

            def work() -> None:
                engine.dispose(close=False)
                with engine.connect() as conn:
                    for _ in range(3):
                        conn.execute(text("SELECT 2")).all()
                child_work(engine)()
                page.add(report, 200, True)

            status = in_child(work)
        finally:
            done.set()
            holder.join()
    handle.remove()
    assert len(locks) >= 8
    assert status == 0
