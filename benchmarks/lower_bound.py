"""The least any statement recorder costs per unit of work in pure Python (issue 20's floor).

Issue 20 asks for <= +4 µs per Core select statement (10 per unit, open and close included).
This script measures, interleaved in one process against plain SQLAlchemy and with the
workloads of ``units.py``, recorders that do far less than sqlaudit, to show where that target
sits against the least work a recorder with a call site can do:

* ``floor``: a no-op ``DialectEvents.do_execute`` listener (SQLAlchemy's dispatch alone);
* ``record``: per unit a ``ContextVar`` set and reset; per statement the listener runs the
  statement itself, times it, reads the rowcount and appends one tuple (no call site, no
  transactions, no ORM, no detectors, no error containment);
* ``record_site``: ``record`` plus the call site (code object and line of the first frame
  outside SQLAlchemy, with a per-code-object memo) and, at close, the repeated statements
  counted by (call site, SQL text): the least a ``repeated_query`` detector needs;
* ``sqlaudit``: one ``sqlaudit.audit()`` per unit, default config (findings logged to a
  NullHandler).

Run from the repository root; it measures and never fails::

    python benchmarks/lower_bound.py                # about a minute
    python benchmarks/lower_bound.py --rounds 3 --only core_pk,clean
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import Engine, event

sys.path.insert(0, str(Path(__file__).resolve().parent))

import units  # benchmarks/ is not a package: the path above finds it

import sqlaudit

VARIANTS = ("plain", "floor", "record", "record_site", "sqlaudit")
_UNIT: ContextVar[list[tuple[Any, ...]] | None] = ContextVar("lower_bound_unit", default=None)
#: Code object -> whether its module is SQLAlchemy's (the walk's one test per frame).
_LIBRARY: dict[Any, bool] = {}
_getframe = sys._getframe
#: What ``record_site``'s close found (kept, so that the work is not dead code); cleared per cell.
REPEATED: list[tuple[Any, str]] = []


def _site() -> tuple[Any, int] | None:
    frame = _getframe(2)  # past this function and the listener
    while frame is not None:
        code = frame.f_code
        inside = _LIBRARY.get(code)
        if inside is None:
            name = frame.f_globals.get("__name__", "")
            inside = _LIBRARY[code] = name == "sqlalchemy" or name.startswith("sqlalchemy.")
        if not inside:
            return code, frame.f_lineno
        frame = frame.f_back
    return None


def _recorder(site: bool) -> Callable[..., bool]:
    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        unit = _UNIT.get()
        if unit is None:
            return False
        start = perf_counter()
        cursor.execute(statement, parameters)
        duration = perf_counter() - start
        where = _site() if site else None
        unit.append((statement, start, duration, cursor.rowcount, where))
        return True

    return do_execute


def _no_op(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    return False


def _engine(variant: str) -> Engine:
    engine = units.make_engine()
    if variant == "floor":
        event.listen(engine, "do_execute", _no_op)
    elif variant in ("record", "record_site"):
        event.listen(engine, "do_execute", _recorder(variant == "record_site"))
    elif variant == "sqlaudit":
        sqlaudit.instrument(engine)
    return engine


def _unit(variant: str, workload: units.Workload) -> Callable[[Engine, int], None]:
    run = workload.run
    if variant == "sqlaudit":

        def audited(engine: Engine, i: int) -> None:
            with sqlaudit.audit("unit"):
                run(engine, i)

        return audited
    if variant in ("record", "record_site"):
        count = variant == "record_site"

        def recorded(engine: Engine, i: int) -> None:
            token = _UNIT.set([])
            try:
                run(engine, i)
            finally:
                unit = _UNIT.get()
                _UNIT.reset(token)
            if count and unit:
                seen: dict[tuple[Any, str], int] = {}
                for statement, *_, where in unit:
                    key = (where, statement)
                    seen[key] = seen.get(key, 0) + 1
                REPEATED.extend(key for key, n in seen.items() if n > 1)

        return recorded
    return run


def measure(workload: units.Workload, rounds: int, scale: float) -> dict[str, float]:
    """Median µs added per unit over ``plain``, per variant (interleaved, shuffled rounds)."""
    engines = {v: _engine(v) for v in VARIANTS}
    calls = {v: _unit(v, workload) for v in VARIANTS}
    batch = max(int(workload.units * scale), 1)
    rng = random.Random(20)
    added: dict[str, list[float]] = {v: [] for v in VARIANTS}
    unit = 0
    for _ in range(rounds):
        order = list(VARIANTS)
        rng.shuffle(order)
        per_unit: dict[str, float] = {}
        for v in order:
            calls[v](engines[v], unit)  # untimed warm-up of this round's first unit
            unit += 1
            start = time.process_time()
            for _ in range(batch):
                calls[v](engines[v], unit)
                unit += 1
            per_unit[v] = (time.process_time() - start) / batch * 1e6
        for v in VARIANTS:
            added[v].append(per_unit[v] - per_unit["plain"])
        REPEATED.clear()
    return {v: statistics.median(added[v]) for v in VARIANTS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--scale", type=float, default=2.0, help="units per batch, x units.py's")
    parser.add_argument("--only", help="comma-separated workloads (default: all of units.py's)")
    args = parser.parse_args()
    log = logging.getLogger("sqlaudit")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    workloads = units.make_workloads(1.0)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {w.name for w in workloads}
        if unknown:
            raise SystemExit(f"unknown workload(s): {sorted(unknown)}")
        workloads = [w for w in workloads if w.name in wanted]
    print(f"µs added per statement over plain (per unit in brackets), median of {args.rounds}")
    print(f"| workload | {' | '.join(VARIANTS[1:])} |")
    print(f"|---|{'---|' * (len(VARIANTS) - 1)}")
    for w in workloads:
        figures = measure(w, args.rounds, args.scale)
        cells = [
            f"+{figures[v] / w.statements:.1f} (+{figures[v]:.0f})".replace("+-", "-")
            for v in VARIANTS[1:]
        ]
        print(f"| {w.label}, {w.statements} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
