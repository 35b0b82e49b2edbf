"""The suite's one timing helper (``timing.py``) covers every clock read and every threshold, so
no verdict a test asserts depends on how fast the machine runs."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import timing
from models import Author, prepared
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session
from timing import UNTIMED, Clock, kinds

import sqlaudit
from sqlaudit import AuditConfig

PACKAGE = Path(sqlaudit.__file__).resolve().parent


def _time_reads(path: Path) -> list[str]:
    """``time.<clock>`` attribute reads and ``from time import <clock>`` other than
    ``perf_counter`` in one module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "time"
            and node.attr in ("perf_counter", "monotonic", "monotonic_ns")
        ):
            found.append(f"{path.name}:{node.lineno} time.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found.extend(
                f"{path.name}:{node.lineno} from time import {alias.name}"
                for alias in node.names
                if alias.name != "perf_counter" or alias.asname is not None
            )
    return found


def test_sqlaudit_times_statements_only_through_a_perf_counter_global() -> None:
    """Every duration and gap sqlaudit judges comes from a module-level ``perf_counter``, the
    name ``timing.installed`` replaces: no module reads another clock for them."""
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in _time_reads(path)]
    assert offenders == []


def test_untimed_switches_off_every_timing_threshold() -> None:
    """``UNTIMED`` names every millisecond threshold of ``AuditConfig`` (a new one must be added
    there) and turns each off."""
    thresholds = {f.name for f in dataclasses.fields(AuditConfig) if f.name.endswith("_ms")}
    assert set(UNTIMED) == thresholds
    config = timing.untimed(AuditConfig.for_production())
    assert all(getattr(config, name) in (None, 0.0) for name in thresholds)
    assert config.n_plus_one_min == 5  # the rest of the config is kept


def test_installed_clock_reaches_every_reader_and_is_restored(sqlite_engine: Engine) -> None:
    """A clock that moves ten seconds per read makes every statement slow and the transaction
    long (so it reaches capture, scope and transactions); untimed, the same unit has no timing
    finding; leaving the block restores the clock that was there before."""
    before = [m.perf_counter for m in timing._clock_readers()]
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        with prepared(sqlite_engine) as db:
            slow = Clock(step=10.0)
            with timing.installed(slow):
                with sqlaudit.audit("slow", on_finding="ignore") as report:
                    with Session(db) as session, session.begin():
                        session.execute(insert(Author).values(id=99, name="x"))
                        session.scalars(select(Author)).all()
                with sqlaudit.audit("untimed", on_finding="ignore", **UNTIMED) as untimed:
                    with Session(db) as session, session.begin():
                        session.scalars(select(Author)).all()
    finally:
        handle.remove()
    assert set(kinds(report, timing=True)) == {"long_transaction", "slow_query"}
    assert report.db_time_ms >= 20_000
    assert kinds(untimed, timing=True) == []
    assert before
    assert [m.perf_counter for m in timing._clock_readers()] == before


def test_controlled_clock_gives_exact_durations(sqlite_engine: Engine, clock: Clock) -> None:
    """With the ``clock`` fixture no time passes unless the test says so: durations and idle
    gaps are exactly what it chose."""
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        with sqlaudit.audit("exact", on_finding="ignore") as report:
            with sqlite_engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
                clock.advance(0.25)
                clock.step = 0.001
                conn.exec_driver_sql("SELECT 2")
    finally:
        handle.remove()
    first, second = report.statements
    assert first.duration == 0.0
    assert round(second.duration, 9) == 0.001
    assert round(second.start - first.start, 9) == 0.251
