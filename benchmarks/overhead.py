"""sqlaudit overhead benchmark: per-statement cost, detector time at close, memory bound.

Run from the repository root (benchmarks/README.md explains every figure)::

    python benchmarks/overhead.py                    # full run, about 5 minutes
    python benchmarks/overhead.py --quick            # short run (smoke test), about 20 s
    python benchmarks/overhead.py --json out.json    # also write the results as JSON

Everything runs in ONE process on SQLite in memory:

1. Per-statement time of three workloads (Core select by primary key, ORM ``Session.get``
   with the identity map cleared, an N+1 loop of 1 + 50 lazy loads) under three variants:
   ``plain`` (engine never instrumented), ``no scope`` (instrumented, no audit open) and
   ``full audit`` (inside ``sqlaudit.audit(..., on_finding="ignore")``, one fresh audit per
   round, detectors included). Every (workload, variant) pair has its own engine, created up
   front: an engine keeps some event-dispatch state for life (DESIGN "Measured facts").

   The run alternates two phases, several times ("epochs"):

   * phase A: nothing in the process is instrumented (``sqlaudit.capture.orm.listening()`` is
     False: no class-level Session listener exists); only the ``plain`` engines run. This
     is the ORM baseline, a process that never instrumented anything.
   * phase B: the ``no scope`` and ``full audit`` engines are instrumented; all variants
     run. sqlaudit's class-level Session listeners now apply to every Session in the
     process, the ``plain`` engines' sessions included. At the end of the phase every
     handle is removed, which takes the Session listeners off again.

   Within a phase, rounds are round-robin over the variants (order shuffled per round) and
   repeated; each figure is the median over rounds of (round time / statements in round).
   Round time is process CPU time by default (``--timer wall`` for the wall clock; both are
   always recorded), so time spent descheduled on a busy machine does not count.

2. Detector time at scope close (``audit.__exit__``) for 10,000 recorded statements of a
   realistic mix (repeated shapes from several call sites, ORM gets, lazy loads, writes).
3. Memory of one scope running 1,000,000 Core statements with the default ``max_records``,
   by tracemalloc (over windows, see ``measure_memory``) and allocated-block counts.
4. The out-of-scope cost of sqlaudit's class-level listeners (``Session`` transaction events,
   the ``Mapper``-wide ``InstanceEvents.load``): ORM statements on a never-instrumented engine
   in phase A vs phase B.

The script measures; it never exits non-zero on a missed target.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import sqlalchemy
from sqlalchemy import (
    Engine,
    ForeignKey,
    String,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

import sqlaudit
from sqlaudit.capture import orm as _orm
from sqlaudit.detectors import DEFAULT_DETECTORS, run_detectors

# -- model -------------------------------------------------------------------------------

PARENTS = 1000
CHILDREN_PER_PARENT = 2
N_PLUS_ONE_PARENTS = 50


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    children: Mapped[list[Child]] = relationship(back_populates="parent", lazy="select")


class Child(Base):
    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    parent: Mapped[Parent] = relationship(back_populates="children")


PARENT = Parent.__table__
CHILD = Child.__table__


def make_engine() -> Engine:
    """A fresh SQLite in-memory database (one shared connection) with the tables filled."""
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(PARENT), [{"id": i, "name": f"parent {i}"} for i in range(1, PARENTS + 1)]
        )
        conn.execute(
            insert(CHILD),
            [
                {"parent_id": p, "name": f"child {p}.{c}"}
                for p in range(1, PARENTS + 1)
                for c in range(CHILDREN_PER_PARENT)
            ],
        )
    return engine


def pk(i: int) -> int:
    return i % PARENTS + 1


# -- workloads ---------------------------------------------------------------------------


@dataclass(eq=False)
class Workload:
    """``units`` repetitions of ``run`` issue ``statements`` statements per round."""

    name: str
    label: str
    units: int
    statements_per_unit: int
    orm: bool
    run: Callable[[Any, int], None]
    target_audit_us: float

    @property
    def statements(self) -> int:
        return self.units * self.statements_per_unit

    def open(self, engine: Engine) -> Any:
        return Session(engine) if self.orm else engine.connect()


def run_core(conn: Any, units: int) -> None:
    t = PARENT
    for i in range(units):
        conn.execute(select(t).where(t.c.id == pk(i))).all()


def run_orm_get(session: Any, units: int) -> None:
    for i in range(units):
        session.expunge_all()
        session.get(Parent, pk(i))


def run_n_plus_one(session: Any, units: int) -> None:
    query = select(Parent).order_by(Parent.id).limit(N_PLUS_ONE_PARENTS)
    for _ in range(units):
        session.expunge_all()
        for parent in session.scalars(query).all():
            len(parent.children)


def make_workloads(quick: bool) -> list[Workload]:
    scale = 4 if quick else 1
    return [
        Workload("core", "Core select by pk", 1000 // scale, 1, False, run_core, 8.0),
        Workload("orm_get", "ORM Session.get", 500 // scale, 1, True, run_orm_get, 10.0),
        Workload(
            "n_plus_one",
            "ORM N+1 (1+50)",
            max(10 // scale, 1),
            N_PLUS_ONE_PARENTS + 1,
            True,
            run_n_plus_one,
            10.0,
        ),
    ]


PLAIN = "plain"
NO_SCOPE = "no scope"
#: A never-instrumented engine with a no-op ``DialectEvents.do_execute`` (and executemany,
#: no-params) listener: what SQLAlchemy's dispatch of the event sqlaudit captures through
#: costs by itself, the floor under ``no scope``. Not a target; a reference row.
FLOOR = "dialect floor"
FULL = "full audit"
VARIANTS = (PLAIN, FLOOR, NO_SCOPE, FULL)


def _no_op(*args: Any) -> bool:
    return False


def floor_engine() -> Engine:
    """A plain engine with no-op dialect listeners on the three events sqlaudit uses."""
    engine = make_engine()
    for name in ("do_execute", "do_executemany", "do_execute_no_params"):
        event.listen(engine.dialect, name, _no_op)
    return engine


#: The clock behind the reported figures: process CPU time by default (robust on a shared
#: machine: time spent descheduled is not counted; SQLite in memory never waits for I/O), or
#: wall-clock time with ``--timer wall``. Rounds always record both.
TIMERS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": perf_counter}
timer = time.process_time


#: Engines per (workload, variant): each round runs the workload once on each and records the
#: mean. One engine alone can sit 1 to 1.5 µs per statement above or below another identical
#: one for the whole process (allocation layout; measured with two never-instrumented engines),
#: which is as large as the no-scope budget; several engines per variant average that out, and
#: the spread between them is printed as the noise floor of each figure.
ENGINES = 3


@dataclass
class Cell:
    """One (workload, variant) pair: its own engines and its samples per phase."""

    workload: Workload
    variant: str
    engines: list[Engine]
    #: Per phase: µs per statement of each round (mean over the engines), by the chosen timer
    #: and by the wall clock.
    samples: dict[str, list[float]] = field(default_factory=lambda: {"A": [], "B": []})
    wall: dict[str, list[float]] = field(default_factory=lambda: {"A": [], "B": []})
    #: Per phase and engine: µs per statement of each round on that engine alone.
    per_engine: dict[str, list[list[float]]] = field(default_factory=dict)
    epoch1_a: list[float] = field(default_factory=list)

    def run_round(self, phase: str, record: bool = True, epoch: int = 0) -> None:
        cpu: list[float] = []
        walls: list[float] = []
        for engine in self.engines:
            elapsed, wall = self._run_once(engine)
            cpu.append(elapsed)
            walls.append(wall)
        if record:
            w = self.workload
            runs = self.per_engine.setdefault(phase, [[] for _ in self.engines])
            for i, elapsed in enumerate(cpu):
                runs[i].append(elapsed / w.statements * 1e6)
            us = statistics.fmean(cpu) / w.statements * 1e6
            self.samples[phase].append(us)
            self.wall[phase].append(statistics.fmean(walls) / w.statements * 1e6)
            if phase == "A" and epoch == 0:
                self.epoch1_a.append(us)

    def spread(self, phase: str) -> float:
        """Largest minus smallest per-engine median (µs per statement) in ``phase``."""
        medians = [median(runs) for runs in self.per_engine.get(phase, []) if runs]
        return max(medians) - min(medians) if medians else float("nan")

    def _run_once(self, engine: Engine) -> tuple[float, float]:
        w = self.workload
        ctx = w.open(engine)
        try:
            gc.collect()
            if self.variant == FULL:
                w0, t0 = perf_counter(), timer()
                with sqlaudit.audit(
                    f"bench {w.name}", on_finding="ignore", max_records=w.statements + 64
                ) as report:
                    w.run(ctx, w.units)
                elapsed, wall = timer() - t0, perf_counter() - w0
                check_report(w, report)
            else:
                w0, t0 = perf_counter(), timer()
                w.run(ctx, w.units)
                elapsed, wall = timer() - t0, perf_counter() - w0
        finally:
            ctx.close()
        return elapsed, wall


def check_report(w: Workload, report: Any) -> None:
    """The full-audit rounds must really have recorded every statement, and found the N+1."""
    problems = []
    if report.query_count != w.statements:
        problems.append(f"query_count {report.query_count} != {w.statements}")
    if report.overflow:
        problems.append(f"overflow {report.overflow}")
    if report.internal_errors:
        problems.append(f"internal_errors {report.internal_errors}")
    kinds = {f.kind for f in report.findings}
    if w.name == "n_plus_one" and "n_plus_one" not in kinds:
        problems.append(f"no n_plus_one finding (found {sorted(kinds)})")
    if problems:
        raise SystemExit(f"benchmark self-check failed for {w.name}: {'; '.join(problems)}")


def listening() -> bool:
    fn = getattr(_orm, "listening", None)
    return bool(fn()) if fn is not None else False


def measure_overhead(
    workloads: list[Workload], epochs: int, rounds: int, seed: int, log: Callable[[str], None]
) -> list[Cell]:
    if listening():
        raise SystemExit("something is already instrumented: the baseline would be wrong")
    cells = [
        Cell(w, v, [floor_engine() if v == FLOOR else make_engine() for _ in range(ENGINES)])
        for w in workloads
        for v in VARIANTS
    ]
    plain = [c for c in cells if c.variant == PLAIN]
    rng = random.Random(seed)

    def do_rounds(phase: str, group: list[Cell], epoch: int) -> None:
        order = list(group)
        for c in order:  # warm-up round, discarded
            c.run_round(phase, record=False)
        for _ in range(rounds):
            rng.shuffle(order)
            for c in order:
                c.run_round(phase, epoch=epoch)

    for epoch in range(epochs):
        if listening():
            raise SystemExit("Session listeners still attached at the start of phase A")
        log(f"  epoch {epoch + 1}/{epochs}: phase A (nothing instrumented)")
        do_rounds("A", plain, epoch)
        handles = [
            sqlaudit.instrument(e)
            for c in cells
            if c.variant in (NO_SCOPE, FULL)
            for e in c.engines
        ]
        if not listening():
            raise SystemExit("instrument() did not attach the Session listeners")
        log(f"  epoch {epoch + 1}/{epochs}: phase B (no scope + full audit engines instrumented)")
        do_rounds("B", cells, epoch)
        for h in handles:
            h.remove()
    return cells


# -- detectors at close ------------------------------------------------------------------


def _mix_core_lookup(conn: Any, i: int) -> None:
    conn.execute(select(PARENT).where(PARENT.c.id == pk(i))).all()


def _mix_core_by_name(conn: Any, i: int) -> None:
    conn.execute(select(PARENT.c.id).where(PARENT.c.name == f"parent {pk(i)}")).all()


def _mix_core_children(conn: Any, i: int) -> None:
    conn.execute(select(CHILD).where(CHILD.c.parent_id == pk(i))).all()


def _mix_orm_get(session: Session, i: int) -> None:
    session.get(Parent, pk(i), populate_existing=True)


def _mix_orm_query(session: Session, i: int) -> None:
    session.scalars(select(Parent).where(Parent.name == f"parent {pk(i)}")).all()


def _mix_n_plus_one(session: Session, offset: int) -> None:
    session.expunge_all()
    query = select(Parent).order_by(Parent.id).offset(offset % 900).limit(20)
    for parent in session.scalars(query).all():
        len(parent.children)


def _mix_update(conn: Any, i: int) -> None:
    conn.execute(update(PARENT).where(PARENT.c.id == pk(i)).values(name=f"renamed {i}"))


def _mix_insert(conn: Any, i: int) -> None:
    conn.execute(insert(CHILD).values(parent_id=pk(i), name=f"new {i}"))


def _mix_literal(conn: Any, i: int) -> None:
    # Legacy code with inlined literals: every text is new (fingerprint cache misses).
    conn.execute(text(f"SELECT name FROM parent WHERE id = {pk(i)} AND name <> 'x{i}'")).all()


def fill_mix(engine: Engine, report: Any, target: int, salt: int) -> None:
    """Issue a realistic mix of statements until ``report`` has ``target`` records."""
    with Session(engine) as session, engine.connect() as conn, engine.connect() as wconn:
        wconn.begin()
        i = salt
        while report.recorded_count < target:
            for _ in range(60):
                _mix_core_lookup(conn, i)
                i += 1
            for _ in range(25):
                _mix_core_by_name(conn, i)
                _mix_core_children(conn, i)
                _mix_orm_get(session, i)
                i += 1
            for _ in range(10):
                _mix_orm_query(session, i)
                _mix_update(wconn, i)
                i += 1
            for _ in range(3):
                _mix_n_plus_one(session, i)
                i += 7
            for _ in range(5):
                _mix_insert(wconn, i)
                _mix_literal(conn, i)
                i += 1
        wconn.rollback()


def clear_fingerprint_caches() -> None:
    from sqlaudit.sql.cache import clear_all

    clear_all()


def measure_detectors(reps: int, log: Callable[[str], None]) -> dict[str, Any]:
    n = 10_000
    engine = make_engine()
    handle = sqlaudit.instrument(engine)
    exit_ms: list[float] = []
    cold_ms: list[float] = []
    report = None
    try:
        for rep in range(reps):
            block = sqlaudit.audit("detectors", on_finding="ignore", max_records=n)
            report = block.__enter__()
            try:
                fill_mix(engine, report, n, salt=rep * 100_003)
            finally:
                gc.collect()
                t0 = timer()
                block.__exit__(None, None, None)
                exit_ms.append((timer() - t0) * 1e3)
            log(f"  rep {rep + 1}/{reps}: audit.__exit__ {exit_ms[-1]:.2f} ms")
        assert report is not None
        assert report.unit is not None
        unit = report.unit
        for _ in range(reps):
            clear_fingerprint_caches()
            gc.collect()
            t0 = timer()
            run_detectors(unit)
            cold_ms.append((timer() - t0) * 1e3)
        warm_ms = []
        for _ in range(max(reps, 5)):
            gc.collect()
            t0 = timer()
            run_detectors(unit)
            warm_ms.append((timer() - t0) * 1e3)
        records = report.statements
        per_detector: dict[str, float] = {}
        for detector in DEFAULT_DETECTORS:
            times = []
            try:
                for _ in range(5):
                    t0 = timer()
                    list(detector.detect(unit, records))
                    times.append((timer() - t0) * 1e3)
            except Exception as exc:  # a detector under construction must not stop the run
                log(f"  detector {detector.kind} failed on its own: {exc!r}")
                continue
            per_detector[detector.kind] = statistics.median(times)
        loads: dict[str, int] = {}
        for r in records:
            key = r.orm.load if r.orm is not None else "core"
            loads[key] = loads.get(key, 0) + 1
        kinds: dict[str, int] = {}
        for f in report.findings:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
        return {
            "statements_recorded": report.recorded_count,
            "statements_issued": report.query_count,
            "distinct_sql": len({r.sql for r in records}),
            "distinct_call_sites": len({r.callsite for r in records}),
            "records_by_origin": loads,
            "counts_by_kind": report.counts,
            "findings_by_kind": kinds,
            "exit_ms": exit_ms,
            "exit_ms_median": statistics.median(exit_ms),
            "run_detectors_cold_ms_median": statistics.median(cold_ms),
            "run_detectors_warm_ms_median": statistics.median(warm_ms),
            "per_detector_warm_ms": per_detector,
            "target_ms": 20.0,
        }
    finally:
        handle.remove()


# -- memory ------------------------------------------------------------------------------


def rss_bytes() -> int | None:
    """Resident set size from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def measure_memory(total: int, log: Callable[[str], None]) -> dict[str, Any]:
    """One scope, ``total`` Core statements, default ``max_records``.

    tracemalloc slows every allocation (SQLAlchemy allocates a lot per statement: 5 to 10x
    slower under tracing), so it runs over three windows: A = statements 0..20,000 (the
    records fill up to ``max_records``, then 10,000 overflow), B = the next ``window``
    statements, traced continuously from A (so B's peak compares with A's peak directly), and
    C = the last ``window`` statements, traced afresh (growth is counted from C's start).
    Between B and C tracing is off; ``sys.getallocatedblocks()`` and RSS are sampled instead.
    """
    warm = 20_000
    window = max(min(100_000, (total - warm) // 8), 1)
    untraced = total - warm - 2 * window
    if untraced < 0:
        raise SystemExit(f"--memory-statements must be at least {warm + 2 * window}")
    engine = make_engine()
    handle = sqlaudit.instrument(engine)
    t = PARENT
    # A Core select by primary key, built once: the statement's construction is SQLAlchemy's
    # cost, not sqlaudit's, and building it 1,000,000 times under tracemalloc takes minutes.
    stmt = select(t).where(t.c.id == bindparam("id"))
    samples: list[dict[str, Any]] = []
    t_start = perf_counter()
    with engine.connect() as conn:

        def run(start: int, stop: int) -> None:
            execute = conn.execute
            for i in range(start, stop):
                execute(stmt, {"id": pk(i)}).all()

        def sample(done: int, traced: bool) -> None:
            entry: dict[str, Any] = {
                "statements": done,
                "allocated_blocks": sys.getallocatedblocks(),
                "rss_bytes": rss_bytes(),
            }
            if traced:
                entry["traced_bytes"], entry["traced_peak_bytes"] = tracemalloc.get_traced_memory()
            samples.append(entry)

        run(0, 100)  # warm SQLAlchemy's caches outside the scope
        gc.collect()
        tracemalloc.start()
        block = sqlaudit.audit("memory", on_finding="ignore")  # default max_records
        report = block.__enter__()
        try:
            max_records = report.config.max_records
            sample(0, True)
            run(0, max_records)
            sample(max_records, True)
            run(max_records, warm)
            gc.collect()  # "current" figures exclude cyclic garbage not yet collected
            sample(warm, True)
            a_current, a_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            run(warm, warm + window)
            gc.collect()
            b_current, b_peak = tracemalloc.get_traced_memory()
            sample(warm + window, True)
            tracemalloc.stop()
            log(f"  traced windows A/B done ({perf_counter() - t_start:.0f} s)")
            gc.collect()
            sample(warm + window, False)
            done = warm + window
            step = max(untraced // 8, 1)
            while done < total - window:
                stop = min(done + step, total - window)
                run(done, stop)
                done = stop
                sample(done, False)
            log(f"  untraced part done ({perf_counter() - t_start:.0f} s)")
            gc.collect()
            sample(done, False)
            tracemalloc.start()
            run(done, total)
            gc.collect()
            c_current, c_peak = tracemalloc.get_traced_memory()
            sample(total, True)
            tracemalloc.stop()
            recorded, overflow, issued = report.recorded_count, report.overflow, report.query_count
        finally:
            tracemalloc.stop()
            block.__exit__(None, None, None)
            handle.remove()
    untraced_samples = [s for s in samples if "traced_bytes" not in s]
    blocks_growth = (
        untraced_samples[-1]["allocated_blocks"] - untraced_samples[0]["allocated_blocks"]
    )
    rss = [s["rss_bytes"] for s in untraced_samples]
    rss_growth = rss[-1] - rss[0] if None not in rss else None
    return {
        "statements": total,
        "statement": "conn.execute(select(t).where(t.c.id == bindparam('id')), {'id': x}).all()",
        "max_records": max_records,
        "recorded": recorded,
        "overflow": overflow,
        "query_count": issued,
        "window": window,
        "a_current_bytes": a_current,
        "a_peak_bytes": a_peak,
        "b_current_bytes": b_current,
        "b_peak_bytes": b_peak,
        "peak_growth_bytes": b_peak - a_peak,
        "bytes_per_statement_past_cap": (b_current - a_current) / window,
        "c_current_bytes": c_current,
        "c_peak_bytes": c_peak,
        "c_bytes_per_statement": c_current / window,
        "untraced_statements": untraced,
        "untraced_blocks_growth": blocks_growth,
        "untraced_rss_growth_bytes": rss_growth,
        "samples": samples,
        "seconds": perf_counter() - t_start,
    }


# -- report ------------------------------------------------------------------------------

A_LABEL = "plain (A: nothing instrumented)"
B_LABEL = "plain (B: others instrumented)"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarise(cells: list[Cell]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    by = {(c.workload.name, c.variant): c for c in cells}
    for w in dict.fromkeys(c.workload for c in cells):
        plain = by[(w.name, PLAIN)]
        # Core statements never reach Session listeners: the plain engine in phase B,
        # interleaved with the other variants, is the fairest baseline. ORM statements do:
        # their baseline is phase A (no Session listener anywhere in the process).
        base_phase = "A" if w.orm else "B"
        base = median(plain.samples[base_phase])
        base_wall = median(plain.wall[base_phase])
        entries = [
            (A_LABEL, plain, "A", PLAIN),
            (B_LABEL, plain, "B", PLAIN),
            ("dialect floor (no-op listener)", by[(w.name, FLOOR)], "B", FLOOR),
            ("no scope", by[(w.name, NO_SCOPE)], "B", NO_SCOPE),
            ("full audit", by[(w.name, FULL)], "B", FULL),
        ]
        for label, cell, phase, variant in entries:
            samples, wall = cell.samples[phase], cell.wall[phase]
            m, mw = median(samples), median(wall)
            row = {
                "workload": w.name,
                "workload_label": w.label,
                "variant": variant,
                "label": label,
                "phase": phase,
                "is_baseline": variant == PLAIN and phase == base_phase,
                "rounds": len(samples),
                "statements_per_round": w.statements,
                "median_us": m,
                "min_us": min(samples, default=float("nan")),
                "max_us": max(samples, default=float("nan")),
                "engines": len(cell.engines),
                "engine_spread_us": cell.spread(phase),
                "baseline_us": base,
                "added_us": m - base,
                "ratio": m / base,
                "wall_median_us": mw,
                "wall_added_us": mw - base_wall,
                "samples_us": samples,
                "wall_samples_us": wall,
            }
            if label == A_LABEL:
                row["epoch1_median_us"] = median(cell.epoch1_a)
            rows.append(row)
    return rows


def targets(rows: list[dict[str, Any]], workloads: list[Workload]) -> list[dict[str, Any]]:
    out = []
    for w in workloads:
        for row in rows:
            if row["workload"] != w.name or row["variant"] in (PLAIN, FLOOR):
                continue
            limit = 1.0 if row["variant"] == NO_SCOPE else w.target_audit_us
            out.append(
                {
                    "target": f"{w.label}: {row['variant']} <= +{limit:g} µs/statement",
                    "value": row["added_us"],
                    "limit": limit,
                    "unit": "µs",
                    "pass": row["added_us"] <= limit,
                }
            )
    return out


def print_table(rows: list[dict[str, Any]], timer_name: str) -> None:
    head = (
        f"{'workload':<18} {'variant':<32} {'µs/stmt':>8} {'+µs/stmt':>9} {'ratio':>6}"
        f"   {'wall µs':>8} {'+wall':>7} {'spread':>7}"
    )
    print(
        f"({timer_name} time per statement, mean over {ENGINES} engines per round; 'wall' columns:"
        " the same rounds by the wall clock;\n 'spread': largest minus smallest per-engine median,"
        " the engine-to-engine noise floor of that row)"
    )
    print(head)
    print("-" * len(head))
    last = None
    for r in rows:
        name = r["workload_label"] if r["workload"] != last else ""
        last = r["workload"]
        base = r["is_baseline"]
        added = "baseline" if base else f"{r['added_us']:+.2f}"
        wadded = "" if base else f"{r['wall_added_us']:+.2f}"
        print(
            f"{name:<18} {r['label']:<32} {r['median_us']:>8.2f} {added:>9} {r['ratio']:>6.2f}"
            f"   {r['wall_median_us']:>8.2f} {wadded:>7} {r['engine_spread_us']:>7.2f}"
        )


def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sqlaudit"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "sqlaudit_modified": None}
    return {"commit": head, "sqlaudit_modified": bool(dirty)}


def print_results(
    rows: list[dict[str, Any]],
    workloads: list[Workload],
    detectors: dict[str, Any],
    memory: dict[str, Any] | None,
    checks: list[dict[str, Any]],
    settings: dict[str, Any],
) -> None:
    print()
    print(
        f"Per-statement time, SQLite in memory, median of {settings['rounds_total']} rounds "
        "per variant, round-robin in shuffled order; statements per round: "
        + ", ".join(f"{w.label} {w.statements}" for w in workloads)
    )
    print()
    print_table(rows, settings["timer"])
    print()
    print(
        "dialect floor: a never-instrumented engine with a no-op DialectEvents.do_execute\n"
        "  listener (and executemany / no-params): SQLAlchemy's dispatch of the event sqlaudit\n"
        "  captures through, alone. 'no scope' minus this row is sqlaudit's own work out of scope."
    )
    print()
    print("Baselines (the '+µs/stmt' and 'ratio' columns are relative to them):")
    print(
        "  Core: plain (B) = the never-instrumented engine measured in the same rounds as the\n"
        "        variants; Session listeners never run for Core statements. plain (A) is the\n"
        "        same engine in phase A, shown as a drift check."
    )
    print(
        "  ORM:  plain (A) = the never-instrumented engine measured while NOTHING in the process\n"
        "        was instrumented (no class-level Session listener), in phase-A rounds that\n"
        f"        alternate with the phase-B rounds ({settings['epochs']} epoch(s): instrument() "
        "before each\n"
        "        phase B, remove() after it). plain (B) = the same engine while sqlaudit's\n"
        "        class-level Session listeners are attached because other engines are instrumented."
    )
    for r in rows:
        if "epoch1_median_us" in r and r["workload"] != "core":
            print(
                f"        {r['workload_label']}: plain (A) in epoch 1 only (before the process "
                f"ever instrumented anything) {r['epoch1_median_us']:.2f} µs, all epochs "
                f"{r['median_us']:.2f} µs"
            )

    by = {(r["workload"], r["label"]): r for r in rows}
    print()
    print("Out-of-scope cost on ORM statements, split (µs per statement, no audit open):")
    for w in workloads:
        if not w.orm:
            continue
        a = by[(w.name, A_LABEL)]["median_us"]
        b = by[(w.name, B_LABEL)]["median_us"]
        ns = by[(w.name, "no scope")]["median_us"]
        print(
            f"  {w.label:<16} class-level Session/Mapper listeners {b - a:+6.2f}"
            f" | engine's dialect listeners {ns - b:+6.2f} | total {ns - a:+6.2f}"
        )

    d = detectors
    print()
    print(
        f"Detectors at scope close, {d['statements_recorded']:,} recorded statements "
        f"({d['distinct_sql']} distinct SQL texts, {d['distinct_call_sites']} call sites, "
        f"origin {d['records_by_origin']})"
    )
    print(f"  findings: {d['findings_by_kind']}")
    print(
        f"  audit.__exit__ median {d['exit_ms_median']:.2f} ms "
        f"(runs: {', '.join(f'{x:.1f}' for x in d['exit_ms'])}); "
        f"run_detectors with cold fingerprint caches {d['run_detectors_cold_ms_median']:.2f} ms, "
        f"warm {d['run_detectors_warm_ms_median']:.2f} ms"
    )
    print(
        "  per detector (warm): "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in d["per_detector_warm_ms"].items())
    )

    if memory is not None:
        m = memory
        mib = 2**20
        w = m["window"]
        rss = m["untraced_rss_growth_bytes"]
        print()
        print(
            f"Memory, {m['statements']:,} Core statements in one scope, default max_records "
            f"{m['max_records']:,} (recorded {m['recorded']:,}, overflow {m['overflow']:,}, "
            f"query_count {m['query_count']:,}; {m['seconds']:.0f} s):"
        )
        print(
            f"  A  statements 0..20,000, traced from scope open: peak {m['a_peak_bytes'] / mib:.2f}"
            f" MiB, at 20,000 {m['a_current_bytes'] / mib:.2f} MiB"
        )
        print(
            f"  B  statements 20,000..{20_000 + w:,}, same trace: peak "
            f"{m['b_peak_bytes'] / mib:.2f} MiB ({m['peak_growth_bytes']:+,} B over A's peak), "
            f"growth {m['bytes_per_statement_past_cap']:+.4f} B/statement"
        )
        print(
            f"     next {m['untraced_statements']:,} statements, untraced: allocated blocks "
            f"{m['untraced_blocks_growth']:+,} ({m['untraced_blocks_per_statement']:+.5f} per "
            "statement), RSS " + (f"{rss / mib:+.2f} MiB" if rss is not None else "n/a")
        )
        print(
            f"  C  last {w:,} statements, traced afresh: peak {m['c_peak_bytes'] / mib:.2f} MiB "
            f"above C's start, growth {m['c_bytes_per_statement']:+.4f} B/statement"
        )

    print()
    print("Targets (DESIGN.md 'Performance budget'):")
    for c in checks:
        unit = c["unit"]
        value = f"{c['value']:+.2f} {unit}" if unit == "µs" else f"{c['value']:.2f} {unit}"
        print(f"  {'PASS' if c['pass'] else 'MISS'}  {c['target']:<62} {value}")
        if c.get("detail"):
            print(f"        {c['detail']}")


def profile_full_audit(workloads: list[Workload], top: int) -> None:
    """cProfile the full-audit variant of each workload: sqlaudit's functions by own time."""
    import cProfile
    import pstats

    engine = make_engine()
    handle = sqlaudit.instrument(engine)
    try:
        for w in workloads:
            profiler = cProfile.Profile()
            rounds = 3
            for _ in range(rounds):
                ctx = w.open(engine)
                profiler.enable()
                with sqlaudit.audit("profile", on_finding="ignore", max_records=w.statements + 64):
                    w.run(ctx, w.units)
                profiler.disable()
                ctx.close()
            n = rounds * w.statements
            stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
            entries = sorted(
                (
                    (tt, ct, nc, f"{Path(f).name}:{line} {name}")
                    for (f, line, name), (_, nc, tt, ct, _) in stats.items()
                    if f"{os.sep}sqlaudit{os.sep}" in f
                ),
                reverse=True,
            )
            print()
            print(f"cProfile, full audit, {w.label} ({n} statements; profiler inflates times):")
            print(f"  {'own µs/stmt':>11} {'cum µs/stmt':>11} {'calls/stmt':>10}  function")
            for tt, ct, nc, name in entries[:top]:
                print(f"  {tt / n * 1e6:>11.2f} {ct / n * 1e6:>11.2f} {nc / n:>10.2f}  {name}")
    finally:
        handle.remove()


def main(argv: list[str] | None = None) -> int:
    global timer
    parser = argparse.ArgumentParser(
        description="sqlaudit overhead benchmark (see benchmarks/README.md)."
    )
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--epochs", type=int, help="phase A/B alternations (default 4, quick 1)")
    parser.add_argument("--rounds", type=int, help="rounds per phase (default 5, quick 3)")
    parser.add_argument(
        "--memory-statements",
        type=int,
        help="statements in the memory scope (default 1,000,000, quick 100,000)",
    )
    parser.add_argument(
        "--timer",
        choices=sorted(TIMERS),
        default="cpu",
        help="clock for the reported figures (default cpu: process CPU time)",
    )
    parser.add_argument("--seed", type=int, default=1234, help="shuffle seed for round order")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory test")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile the full-audit variants and list sqlaudit's costliest functions",
    )
    args = parser.parse_args(argv)

    quick = args.quick
    timer = TIMERS[args.timer]
    epochs = args.epochs or (1 if quick else 4)
    rounds = args.rounds or (3 if quick else 5)
    memory_statements = args.memory_statements or (100_000 if quick else 1_000_000)
    detector_reps = 2 if quick else 7

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.time()
    env = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlaudit": sqlaudit.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        **git_state(),
    }
    git = env["commit"] or "?"
    if env["sqlaudit_modified"]:
        git += " + uncommitted changes in sqlaudit/"
    print(
        f"sqlaudit {env['sqlaudit']} (git {git}) | SQLAlchemy {env['sqlalchemy']} | "
        f"{env['implementation']} {env['python']} | {env['platform']} | {env['cpus']} CPUs"
    )
    workloads = make_workloads(quick)
    settings = {
        "quick": quick,
        "timer": args.timer,
        "epochs": epochs,
        "rounds_per_phase": rounds,
        "rounds_total": epochs * rounds,
        "seed": args.seed,
        "statements_per_round": {w.name: w.statements for w in workloads},
        "memory_statements": memory_statements,
    }

    log(f"[1/3] per-statement overhead: {epochs} epoch(s) x {rounds} round(s) per phase")
    cells = measure_overhead(workloads, epochs, rounds, args.seed, log)
    rows = summarise(cells)
    checks = targets(rows, workloads)

    log("[2/3] detectors at scope close (10,000 recorded statements)")
    detectors = measure_detectors(detector_reps, log)
    checks.append(
        {
            "target": "detectors at close, 10,000 statements (audit.__exit__) <= 20 ms",
            "value": detectors["exit_ms_median"],
            "limit": 20.0,
            "unit": "ms",
            "pass": detectors["exit_ms_median"] <= 20.0,
        }
    )

    memory = None
    if not args.skip_memory:
        log(f"[3/3] memory: {memory_statements:,} statements in one scope")
        memory = measure_memory(memory_statements, log)
        m = memory
        blocks_per_stmt = m["untraced_blocks_growth"] / max(m["untraced_statements"], 1)
        m["untraced_blocks_per_statement"] = blocks_per_stmt
        # A real leak of >= 1 B per statement shows as >= 100 KB growth over a 100,000-statement
        # window; smaller movements (<= 64 KiB) are SQLAlchemy/sqlite3 free-list noise.
        noise = 64 * 1024
        b_growth = m["bytes_per_statement_past_cap"] * m["window"]
        c_growth = m["c_bytes_per_statement"] * m["window"]
        flat = (
            m["peak_growth_bytes"] <= 2**20
            and (b_growth <= noise or m["bytes_per_statement_past_cap"] < 1.0)
            and (c_growth <= noise or m["c_bytes_per_statement"] < 1.0)
            and blocks_per_stmt < 0.01
        )
        checks.append(
            {
                "target": "memory flat past max_records (< 1 B/statement or < 64 KiB/window)",
                "value": max(m["bytes_per_statement_past_cap"], m["c_bytes_per_statement"]),
                "limit": 1.0,
                "unit": "B/statement",
                "pass": flat,
                "detail": (
                    f"B grew {b_growth / 1024:+.1f} KiB, C {c_growth / 1024:+.1f} KiB per "
                    f"{m['window']:,} statements; blocks {blocks_per_stmt:+.5f}/statement"
                ),
            }
        )

    print_results(rows, workloads, detectors, memory, checks, settings)
    if args.profile:
        profile_full_audit(workloads, top=12)
    elapsed = time.time() - started
    print()
    load = env["load_average"]
    if load is not None:
        end_load = os.getloadavg()
        busy = max(load[0], end_load[0]) > (env["cpus"] or 1)
        verdict = (
            "above the CPU count: other processes competed for the CPU"
            if busy
            else "below the CPU count"
        )
        print(
            f"load average at start {load[0]:.2f}, at end {end_load[0]:.2f} "
            f"({env['cpus']} CPUs): {verdict}"
        )
    print(f"total run time {elapsed:.0f} s")

    if args.json:
        result = {
            "environment": env,
            "settings": settings,
            "overhead": rows,
            "detectors": detectors,
            "memory": memory,
            "targets": checks,
            "seconds": elapsed,
        }
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
