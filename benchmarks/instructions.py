"""Instructions per unit of work, counted by valgrind: figures a busy machine does not change.

``units.py`` times units against plain SQLAlchemy in one process; on a shared 2-core machine
its figures move by tens of percent from one run to the next (read ratios, not digits). This
script counts the instructions instead (``valgrind --tool=callgrind``, which counts, not
times: the same total for the same code, whatever else the machine does), so a change to the
hot path can be judged by one run, before and after::

    python benchmarks/instructions.py                        # this checkout
    python benchmarks/instructions.py --against 207c2bd      # and a git ref, side by side
    python benchmarks/instructions.py --only clean,core_insert --units 100

Each figure is the difference between a run of ``20 + units`` units and a run of 20 (the
import, the schema and the warm-up cancel out), divided by ``units``: instructions per unit
for plain SQLAlchemy, sqlaudit instrumented with no audit open, and one ``audit()`` per unit
(default config, findings logged to a NullHandler), for the workloads of ``units.py``. To
read them as time: plain SQLAlchemy's instructions per unit against its µs per unit from
``units.py`` give this machine's rate (about 5,700 instructions per µs here); sqlaudit's code
runs at a similar, not identical, rate. Needs valgrind (Debian's package); about 10 to 30 s
per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkouts import checkouts  # benchmarks/ is not a package: the path above finds it

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("core_pk", "core_literal", "core_insert", "orm_get", "clean")
VARIANTS = ("plain", "instrumented", "audit")
BOUNDS = ("bound_floor", "bound_record", "bound_site")
_COLLECTED = re.compile(r"Collected : (\d+)")

#: The child: run ``n`` units of one workload in one variant (``units.py``'s workloads). The
#: ``bound_*`` variants are no tool: each is what any recorder of the same events must at least
#: pay (``--bounds``): ``bound_floor`` a no-op ``do_execute`` listener (SQLAlchemy's dispatch of
#: the event), ``bound_record`` a listener that runs the statement itself, times it and appends
#: (text, start, duration, rowcount) to a list, ``bound_site`` the same plus the code and
#: instruction offset of one frame at a fixed depth (the cheapest call site: one
#: ``sys._getframe``, which materialises the frame objects of the SQLAlchemy functions between
#: the listener and that frame; each then copies its locals when it returns).
CHILD = """
import logging, sys
sys.path.insert(0, "benchmarks")
log = logging.getLogger("sqlaudit")
log.addHandler(logging.NullHandler())
log.propagate = False
import units, sqlaudit
from time import perf_counter
from sqlalchemy import event
name, variant, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
w = {x.name: x for x in units.make_workloads(1.0)}[name]
engine = units.make_engine()
kept = []
getframe = sys._getframe
def bound_floor(cursor, statement, parameters, context):
    return None
def bound_record(cursor, statement, parameters, context):
    start = perf_counter()
    context.dialect.do_execute(cursor, statement, parameters, context)
    duration = perf_counter() - start
    try:
        rowcount = cursor.rowcount
    except Exception:
        rowcount = -1
    kept.append((statement, start, duration, rowcount))
    return True
def bound_site(cursor, statement, parameters, context):
    start = perf_counter()
    context.dialect.do_execute(cursor, statement, parameters, context)
    duration = perf_counter() - start
    try:
        rowcount = cursor.rowcount
    except Exception:
        rowcount = -1
    frame = getframe(4)
    kept.append((statement, start, duration, rowcount, frame.f_code, frame.f_lasti))
    return True
if variant.startswith("bound_"):
    event.listen(engine.dialect, "do_execute", globals()[variant], retval=True)
elif variant != "plain":
    sqlaudit.instrument(engine)
if sys.argv[4:] == ["nogc"]:
    import gc
    gc.collect()
    gc.disable()
seen = 0
for i in range(n):
    if variant == "audit":
        with sqlaudit.audit("unit"):
            w.run(engine, i)
    else:
        w.run(engine, i)
    seen += len(kept)
    kept.clear()
print(seen)
"""


def count(checkout: Path, workload: str, variant: str, units: int, gc: bool = True) -> int:
    """Instructions of one child run of ``units`` units, sqlaudit imported from ``checkout``
    (``gc=False``: the garbage collector off after the imports)."""
    result = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            CHILD,
            workload,
            variant,
            str(units),
            *(() if gc else ("nogc",)),
        ],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout), "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({workload}, {variant}):\n{result.stderr[-2000:]}")
    return int(found.group(1))


def per_unit(checkout: Path, workload: str, variant: str, units: int, gc: bool = True) -> float:
    return (
        count(checkout, workload, variant, 20 + units, gc)
        - count(checkout, workload, variant, 20, gc)
    ) / units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", help=f"comma-separated workloads (default {','.join(WORKLOADS)})")
    parser.add_argument(
        "--units", type=int, default=100, help="units per counted run (default 100)"
    )
    parser.add_argument("--against", metavar="REF", help="also count a git ref (a worktree of it)")
    parser.add_argument("--json", metavar="PATH", help="write the counts as JSON to PATH")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="garbage collector off after the imports (its passes, which sqlaudit's allocations"
        " bring on earlier, are then not counted); checkouts still differ by a few percent"
        " (hashing by address): for an exact A/B of sqlaudit's Python code see bytecodes.py",
    )
    parser.add_argument(
        "--bounds",
        action="store_true",
        help="also count what any recorder must pay: a no-op listener, a minimal record per"
        " statement, a minimal record with one call-site frame (CHILD's bound_* variants)",
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian: apt-get install valgrind)")
    workloads = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    variants = VARIANTS + (BOUNDS if args.bounds else ())
    with checkouts(args.against) as found:
        results = {
            label: {
                w: {v: per_unit(path, w, v, args.units, not args.no_gc) for v in variants}
                for w in workloads
            }
            for label, path in found.items()
        }
    collector = ", garbage collector off" if args.no_gc else ""
    print(
        f"Instructions per unit (valgrind callgrind; {args.units} units counted{collector}),"
        " added over plain:"
    )
    header = ("workload", "checkout", "plain", "no audit", "audit()", "ratio")
    print("  {:14} {:16} {:>12} {:>12} {:>12} {:>6}".format(*header))
    for w in workloads:
        for label in found:
            r = results[label][w]
            plain = r["plain"]
            print(
                f"  {w:14} {label[:16]:16} {plain:12,.0f} {r['instrumented'] - plain:+12,.0f}"
                f" {r['audit'] - plain:+12,.0f} {r['audit'] / plain:6.2f}"
            )
    if args.bounds:
        print("What any recorder of the same events pays at least, added per unit over plain:")
        print("  {:14} {:16} {:>12} {:>12} {:>12}".format("workload", "checkout", *BOUNDS))
        for w in workloads:
            for label in found:
                r = results[label][w]
                added = [f"{r[b] - r['plain']:+12,.0f}" for b in BOUNDS]
                print(f"  {w:14} {label[:16]:16} {' '.join(added)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
