"""What one unit of work (a request, a test) pays: sqlaudit against plain SQLAlchemy and its peers.

Run from the repository root (benchmarks/README.md, "Units", explains every figure)::

    python benchmarks/units.py                   # full run, 4 to 7 minutes
    python benchmarks/units.py --quick           # smoke test, under 15 s
    python benchmarks/units.py --json out.json   # also write every figure and round as JSON
    python benchmarks/units.py --profile         # then cProfile sqlaudit per unit

``overhead.py`` measures statements inside one long audit; services and tests open one unit
per request or test, of 1 to 30 statements, and pay the unit's fixed cost (open, close,
detectors, findings) each time (issue 20). Here every workload is a unit that opens its own
connection or session, as a request handler does, and the figures are per unit and per
statement, added over plain SQLAlchemy:

* workloads: Core select by primary key (10 statements), Core statements with inlined
  literals (every SQL text new, 10), Core INSERT + commit (1), ORM ``Session.get`` (10),
  ORM N+1 (1 + 200 lazy loads), and a clean unit (10 statements, no finding);
* variants, each on engines of its own: ``plain`` (never instrumented); ``floor`` (a no-op
  ``DialectEvents.do_execute`` listener: SQLAlchemy's dispatch of the event sqlaudit uses);
  sqlaudit instrumented with no audit open; one ``sqlaudit.audit()`` per unit with the
  default config; one audit around the whole round (the per-unit fixed-cost probe); and each
  installed peer (``peers.py``) with one recording window per unit.

All in one process, SQLite in memory. Rounds are interleaved: each round runs every (workload,
variant) cell once, in a freshly shuffled order; a cell sets up its process-wide state
(``instrument()``, a peer's class-level listeners), runs one untimed unit per engine, then
times a batch of units on each of its engines, and takes its state off again, so no variant
runs with another's listeners attached (checked before every cell). Figures are process CPU
time; each is the median over rounds of the per-round difference to ``plain`` in the same
round. The script measures; it never exits non-zero on a missed target. The tables are built
by ``units_report.py``; the peers are driven by ``peers.py``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers as _peers
from overhead import CHILD, PARENT, Parent, floor_engine, git_state, make_engine, pk
from units_report import print_results, probes, summarise, targets

import sqlaudit
from sqlaudit.capture import claims as _claims

# -- workloads: one call is one unit of work -------------------------------------------------


def core_pk(engine: Engine, i: int) -> None:
    with engine.connect() as conn:
        for k in range(10):
            conn.execute(select(PARENT).where(PARENT.c.id == pk(i * 10 + k))).all()


#: Process-wide, so that no SQL text of this workload is ever seen twice (fingerprint caches
#: of every tool miss, as with legacy code that inlines its values).
_literal = itertools.count()


def core_literal(engine: Engine, i: int) -> None:
    with engine.connect() as conn:
        for _ in range(10):
            n = next(_literal)
            sql = f"SELECT id, name FROM parent WHERE id = {pk(n)} AND name <> 'x{n}'"
            conn.execute(text(sql)).all()


def core_insert(engine: Engine, i: int) -> None:
    with engine.connect() as conn:
        conn.execute(insert(CHILD).values(parent_id=pk(i), name=f"new {i}"))
        conn.commit()


def orm_get(engine: Engine, i: int) -> None:
    with Session(engine) as session:
        for k in range(10):
            session.get(Parent, pk(i * 10 + k))


N_PLUS_ONE = 200
_PARENTS = select(Parent).order_by(Parent.id).limit(N_PLUS_ONE)


def orm_n_plus_one(engine: Engine, i: int) -> None:
    with Session(engine) as session:
        for parent in session.scalars(_PARENTS).all():
            len(parent.children)


def clean(engine: Engine, i: int) -> None:
    """Ten statements of ten shapes, each from its own line: no tool should flag it."""
    p, c = PARENT.c, CHILD.c
    with engine.connect() as conn:
        conn.execute(select(PARENT).where(p.id == pk(i))).all()
        conn.execute(select(CHILD).where(c.parent_id == pk(i))).all()
        conn.execute(select(func.count()).select_from(CHILD).where(c.parent_id == pk(i))).one()
        conn.execute(select(p.name).where(p.name == f"parent {pk(i)}")).all()
        conn.execute(select(p.id).where(p.id > pk(i)).order_by(p.id).limit(5)).all()
        conn.execute(select(c.name).where(c.parent_id == pk(i)).order_by(c.name)).all()
        conn.execute(select(func.max(p.id))).one()
        conn.execute(select(c.id, c.name).where(c.id == pk(i) * 2)).all()
        conn.execute(select(p.id, c.id).join(CHILD, c.parent_id == p.id).where(p.id == pk(i))).all()
        conn.execute(select(func.count()).select_from(PARENT)).one()


@dataclass(frozen=True, eq=False)
class Workload:
    name: str
    label: str
    run: Callable[[Engine, int], None]
    #: Statements one unit issues (what each tool should count).
    statements: int
    #: Units per timed batch (each engine of a cell runs one batch per round).
    units: int
    #: Finding kinds sqlaudit must report for this unit (None: no check; empty: none at all).
    expect: frozenset[str] | None
    #: The issue-20 target for sqlaudit's audit: ("stmt" | "unit", µs added).
    target: tuple[str, float]
    #: Also run the one-audit-per-round variant (the fixed-cost probe).
    probe: bool = False


def make_workloads(scale: float) -> list[Workload]:
    def n(units: int) -> int:
        return max(int(units * scale), 1)

    return [
        Workload(
            "core_pk",
            "Core select by pk",
            core_pk,
            10,
            n(40),
            frozenset({"repeated_query"}),
            ("stmt", 4.0),
            True,
        ),
        Workload(
            "core_literal", "Core inlined literals", core_literal, 10, n(30), None, ("stmt", 8.0)
        ),
        Workload(
            "core_insert",
            "Core INSERT + commit",
            core_insert,
            1,
            n(200),
            frozenset(),
            ("unit", 30.0),
        ),
        Workload("orm_get", "ORM Session.get", orm_get, 10, n(30), None, ("stmt", 8.0)),
        Workload(
            "n_plus_one",
            f"ORM N+1 (1+{N_PLUS_ONE})",
            orm_n_plus_one,
            N_PLUS_ONE + 1,
            n(4),
            frozenset({"n_plus_one"}),
            ("stmt", 8.0),
        ),
        Workload("clean", "clean unit", clean, 10, n(40), frozenset(), ("close", 20.0), True),
    ]


# -- variants ---------------------------------------------------------------------------------

UNIT_NAME = "GET /bench"
#: Finding kinds that depend on the machine's speed (slow statements, long transactions).
TIMING_KINDS = frozenset({"slow_query", "long_transaction"})


@dataclass
class Outcome:
    """What a batch leaves for the self-check and the report."""

    flagged: int = 0
    counted: int = 0
    close_s: float = 0.0
    report: Any = None


@dataclass(eq=False)
class Variant:
    key: str
    label: str
    batch: Callable[[Workload, Engine, int, int], Outcome]
    setup: Callable[[list[Engine]], Any] = lambda engines: None
    teardown: Callable[[Any], None] = lambda state: None
    engine: Callable[[], Engine] = make_engine
    probe_only: bool = False
    peer: _peers.Peer | None = None


def _plain_batch(w: Workload, engine: Engine, start: int, n: int) -> Outcome:
    run = w.run
    for i in range(start, start + n):
        run(engine, i)
    return Outcome(counted=-1)


def _audit_batch(w: Workload, engine: Engine, start: int, n: int) -> Outcome:
    run = w.run
    out = Outcome()
    for i in range(start, start + n):
        # ``with sqlaudit.audit(...)`` written out, to time the close (``__exit__``) alone.
        block = sqlaudit.audit(UNIT_NAME)
        report = block.__enter__()
        run(engine, i)
        t0 = perf_counter()
        block.__exit__(None, None, None)
        out.close_s += perf_counter() - t0
        if report.findings:
            out.flagged += 1
        out.report = report
    out.counted = out.report.query_count
    return out


def _round_audit_batch(w: Workload, engine: Engine, start: int, n: int) -> Outcome:
    run = w.run
    with sqlaudit.audit(UNIT_NAME) as report:
        for i in range(start, start + n):
            run(engine, i)
    return Outcome(flagged=int(bool(report.findings)), counted=report.query_count, report=report)


def _instrument(engines: list[Engine]) -> list[sqlaudit.Instrumentation]:
    return [sqlaudit.instrument(e) for e in engines]


def _remove(handles: list[sqlaudit.Instrumentation]) -> None:
    for h in handles:
        h.remove()


def _peer_variant(peer: _peers.Peer) -> Variant:
    def batch(w: Workload, engine: Engine, start: int, n: int) -> Outcome:
        flagged, counted = peer.batch(w.run, engine, start, n)
        return Outcome(flagged=flagged, counted=counted)

    return Variant(
        peer.key,
        peer.label,
        batch,
        setup=lambda engines: peer.setup(),
        teardown=lambda state: peer.teardown(),
        peer=peer,
    )


def make_variants(peer_list: list[_peers.Peer]) -> list[Variant]:
    return [
        Variant("plain", "plain (never instrumented)", _plain_batch),
        Variant("floor", "dialect floor (no-op listener)", _plain_batch, engine=floor_engine),
        Variant("no_audit", "sqlaudit, no audit open", _plain_batch, _instrument, _remove),
        Variant("audit", "sqlaudit, audit() per unit", _audit_batch, _instrument, _remove),
        Variant(
            "round_audit",
            "sqlaudit, one audit() per round",
            _round_audit_batch,
            _instrument,
            _remove,
            probe_only=True,
        ),
        *(_peer_variant(p) for p in peer_list),
    ]


# -- measurement -----------------------------------------------------------------------------

timer: Callable[[], float] = time.process_time


@dataclass(eq=False)
class Cell:
    workload: Workload
    variant: Variant
    engines: list[Engine]
    #: Per round: µs per unit, mean over the engines (chosen timer), and by the wall clock.
    rounds: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    #: Per engine: µs per unit of each round.
    per_engine: list[list[float]] = field(default_factory=list)
    #: Per round: µs per unit spent in ``audit.__exit__`` (audit variant only, wall clock).
    close: list[float] = field(default_factory=list)
    #: Rounds of ``plain`` run before anything was ever instrumented (drift check).
    clean_rounds: list[float] = field(default_factory=list)
    flagged: int = 0
    units: int = 0
    next_unit: int = 0
    kinds: list[str] = field(default_factory=list)

    def run(self, problems: Callable[[], list[str]], record: str | None) -> None:
        """One round of this cell: set up, one untimed unit per engine, a timed batch each."""
        found = problems()
        if found:
            raise SystemExit(f"state left behind before {self.label}: {'; '.join(found)}")
        w, v = self.workload, self.variant
        state = v.setup(self.engines)
        try:
            for engine in self.engines:
                v.batch(w, engine, self.next_unit, 1)
                self.next_unit += 1
            cpu, walls, close = [], [], 0.0
            for engine in self.engines:
                gc.collect()
                w0, t0 = perf_counter(), timer()
                out = v.batch(w, engine, self.next_unit, w.units)
                cpu.append((timer() - t0) / w.units * 1e6)
                walls.append((perf_counter() - w0) / w.units * 1e6)
                self.next_unit += w.units
                close += out.close_s
                self.check(out)
                if record == "round":
                    self.flagged += out.flagged
                    self.units += w.units if v.key != "round_audit" else 1
        finally:
            v.teardown(state)
        if record == "round":
            self.rounds.append(statistics.fmean(cpu))
            self.wall.append(statistics.fmean(walls))
            if not self.per_engine:
                self.per_engine = [[] for _ in self.engines]
            for runs, us in zip(self.per_engine, cpu, strict=True):
                runs.append(us)
            if v.key == "audit":
                self.close.append(close / (w.units * len(self.engines)) * 1e6)
        elif record == "clean":
            self.clean_rounds.append(statistics.fmean(cpu))

    @property
    def label(self) -> str:
        return f"{self.workload.label} / {self.variant.label}"

    def check(self, out: Outcome) -> None:
        """Every tool must have seen every statement; sqlaudit's findings must be the expected."""
        w, v = self.workload, self.variant
        if out.counted < 0:
            return
        expected = w.statements * (w.units if v.key == "round_audit" else 1)
        problems = []
        if out.counted != expected:
            problems.append(f"counted {out.counted} statements, expected {expected}")
        report = out.report
        if report is not None:
            kinds = sorted({f.kind for f in report.findings})
            self.kinds = kinds
            if report.overflow or report.internal_errors:
                problems.append(f"overflow {report.overflow}, errors {report.internal_errors}")
            # Timing findings depend on how busy the machine is: never part of the check.
            untimed = set(kinds) - TIMING_KINDS
            if v.key == "audit" and w.expect is not None:
                if not w.expect and untimed:
                    problems.append(f"expected no finding, got {kinds}")
                elif not w.expect <= untimed:
                    problems.append(f"expected {sorted(w.expect)}, got {kinds}")
        if problems:
            raise SystemExit(f"self-check failed for {self.label}: {'; '.join(problems)}")


def clean_state(peer_list: list[_peers.Peer]) -> Callable[[], list[str]]:
    def problems() -> list[str]:
        found = _peers.leftovers(peer_list)
        if _claims.listening():
            found.append("sqlaudit's class-level Session listeners are attached")
        return found

    return problems


def measure(
    workloads: list[Workload],
    variants: list[Variant],
    rounds: int,
    engines: int,
    seed: int,
    log: Callable[[str], None],
) -> list[Cell]:
    problems = clean_state([v.peer for v in variants if v.peer is not None])
    cells = [
        Cell(w, v, [v.engine() for _ in range(engines)])
        for w in workloads
        for v in variants
        if w.probe or not v.probe_only
    ]
    rng = random.Random(seed)
    plain = [c for c in cells if c.variant.key == "plain"]
    log(f"  plain alone, before any tool is attached: {len(plain)} cells x 2 rounds")
    for _ in range(2):
        for c in plain:
            c.run(problems, "clean")
    log("  warm-up round (every cell once, discarded)")
    for c in cells:
        c.run(problems, None)
    for r in range(rounds):
        order = list(cells)
        rng.shuffle(order)
        started = perf_counter()
        for c in order:
            c.run(problems, "round")
        log(f"  round {r + 1}/{rounds}: {perf_counter() - started:.1f} s")
    return cells


def profile(workloads: list[Workload], top: int) -> None:
    """cProfile sqlaudit's audit() per unit of each workload: its costliest functions."""
    import cProfile
    import pstats

    for w in workloads:
        engine = make_engine()
        handle = sqlaudit.instrument(engine)
        try:
            _audit_batch(w, engine, 0, 2)  # warm
            units = max(w.units * 2, 4)
            profiler = cProfile.Profile()
            profiler.enable()
            _audit_batch(w, engine, 2, units)
            profiler.disable()
        finally:
            handle.remove()
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        entries = sorted(
            (
                (tt, ct, nc, f"{Path(f).name}:{line} {name}")
                for (f, line, name), (_, nc, tt, ct, _) in stats.items()
                if f"{os.sep}sqlaudit{os.sep}" in f
            ),
            reverse=True,
        )
        exits = [
            ct
            for (f, _, name), (_, _, _, ct, _) in stats.items()
            if name == "__exit__" and f.endswith("_audit.py")
        ]
        print()
        print(
            f"cProfile, audit() per unit, {w.label} ({units} units of {w.statements} statement(s);"
            f" the profiler inflates every figure, rank by it): audit.__exit__ "
            f"{sum(exits) / units * 1e6:.1f} µs per unit cumulative"
        )
        print(
            f"  {'own µs/unit':>11} {'cum µs/unit':>11} {'own µs/stmt':>11} {'calls/unit':>10}"
            "  function"
        )
        for tt, ct, nc, name in entries[:top]:
            print(
                f"  {tt / units * 1e6:>11.2f} {ct / units * 1e6:>11.2f} "
                f"{tt / units / w.statements * 1e6:>11.2f} {nc / units:>10.1f}  {name}"
            )


def main(argv: list[str] | None = None) -> int:
    global timer
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 9, quick 2)")
    parser.add_argument("--engines", type=int, help="engines per cell (default 3, quick 1)")
    parser.add_argument("--scale", type=float, help="units per batch, x (default 1, quick 0.2)")
    parser.add_argument(
        "--peers",
        default=",".join(_peers.PEERS),
        help=f"comma-separated peers to measure if installed (default all: "
        f"{','.join(_peers.PEERS)}; 'none' for none)",
    )
    parser.add_argument("--only", help="comma-separated workloads (default all)")
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--seed", type=int, default=2020, help="shuffle seed for round order")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--profile", action="store_true", help="then cProfile sqlaudit per unit")
    args = parser.parse_args(argv)
    timer = time.process_time if args.timer == "cpu" else perf_counter
    quick = args.quick
    rounds = args.rounds or (2 if quick else 9)
    engines = args.engines or (1 if quick else 3)
    scale = args.scale or (0.2 if quick else 1.0)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # The default config logs findings on logger "sqlaudit": keep the logging calls (a service
    # has a handler) but not the terminal I/O, which is not sqlaudit's cost.
    sqlaudit_log = logging.getLogger("sqlaudit")
    sqlaudit_log.addHandler(logging.NullHandler())
    sqlaudit_log.propagate = False

    keys = [] if args.peers == "none" else [k.strip() for k in args.peers.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(_peers.PEERS))
    if unknown:
        parser.error(f"unknown peer(s) {unknown}; known: {', '.join(_peers.PEERS)}")
    peer_list, missing = _peers.load(keys)
    workloads = make_workloads(scale)
    if args.only:
        wanted = {x.strip() for x in args.only.split(",")}
        workloads = [w for w in workloads if w.name in wanted]
        if not workloads:
            parser.error("--only matches no workload")
    variants = make_variants(peer_list)

    env = {
        "python": platform.python_version(),
        "sqlalchemy": sqlalchemy.__version__,
        "sqlaudit": sqlaudit.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "peers": {p.distribution: p.version for p in peer_list},
        "peers_missing": missing,
        **git_state(),
    }
    git = (env["commit"] or "?") + (" + uncommitted sqlaudit/" if env["sqlaudit_modified"] else "")
    print(
        f"sqlaudit {env['sqlaudit']} (git {git}) | SQLAlchemy {env['sqlalchemy']} | "
        f"Python {env['python']} | {env['platform']} | {env['cpus']} CPUs"
    )
    for p in peer_list:
        print(f"peer {p.label}: {p.how}")
    for name, reason in missing.items():
        print(f"peer {name}: {reason}")
    settings = {
        "quick": quick,
        "rounds": rounds,
        "engines": engines,
        "scale": scale,
        "timer": args.timer,
        "seed": args.seed,
        "workloads": {w.name: {"statements": w.statements, "units": w.units} for w in workloads},
    }
    started = time.time()
    log(f"measuring: {len(workloads)} workloads, {len(variants)} variants, {rounds} rounds")
    cells = measure(workloads, variants, rounds, engines, args.seed, log)
    rows = summarise(cells)
    probe_rows = probes(cells)
    checks = targets(rows, [p.key for p in peer_list])
    print_results(rows, probe_rows, checks, settings)
    if args.profile:
        profile(workloads, top=14)
    elapsed = time.time() - started
    print()
    load = env["load_average"]
    if load is not None:
        end = os.getloadavg()
        print(
            f"load average at start {load[0]:.2f}, at end {end[0]:.2f} ({env['cpus']} CPUs; "
            "the machine is shared: read ratios, not digits)"
        )
    print(f"total run time {elapsed:.0f} s")
    if args.json:
        result = {
            "environment": env,
            "settings": settings,
            "rows": rows,
            "probes": probe_rows,
            "targets": checks,
            "seconds": elapsed,
        }
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
