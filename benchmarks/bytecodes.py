"""Python bytecodes per unit of work: an exact count, the same on every run and every machine.

``instructions.py`` counts machine instructions under valgrind; between two checkouts even plain
SQLAlchemy's count moves by up to 4%, with the garbage collector on or off (hashing by address
and allocation layout change the work dicts and caches do), so differences of a few percent
cannot be read there. This script counts the Python bytecodes that one unit runs instead
(``sys.settrace`` opcode events; ``sys.monitoring`` instruction events on Python 3.12+, so
compare counts made on one Python version), for the workloads of ``units.py``: with no audit
open (the instrumented engine) and with one ``audit()`` per unit (default config, findings
logged to a NullHandler). The count leaves out work done in C (regular expressions, dict operations,
SQLite), so it ranks changes to sqlaudit's Python code, not their whole cost::

    python benchmarks/bytecodes.py                      # this checkout
    python benchmarks/bytecodes.py --against df94b61    # and a git ref, side by side

Each figure is the mean over ``--units`` units after 20 units of warm-up, in a fresh process
per checkout and workload (``PYTHONHASHSEED=0``). A few seconds per figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checkouts import checkouts  # benchmarks/ is not a package: the path above finds it

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("core_pk", "core_literal", "core_insert", "orm_get", "n_plus_one", "clean")

#: The child: bytecodes per unit of one workload, no audit open and one audit() per unit.
CHILD = """
import logging, sys
sys.path.insert(0, "benchmarks")
log = logging.getLogger("sqlaudit")
log.addHandler(logging.NullHandler())
log.propagate = False
import units, sqlaudit
name, n = sys.argv[1], int(sys.argv[2])
w = {x.name: x for x in units.make_workloads(1.0)}[name]
engine = units.make_engine()
sqlaudit.instrument(engine)
count = 0
def tracer(frame, event, arg):
    global count
    frame.f_trace_opcodes = True
    if event == "opcode":
        count += 1
    return tracer
def instruction(code, offset):
    global count
    count += 1
monitoring = getattr(sys, "monitoring", None)  # 3.12+: settrace gives no opcode events there
if monitoring is not None:
    tool = monitoring.PROFILER_ID
    monitoring.use_tool_id(tool, "bytecodes")
    monitoring.register_callback(tool, monitoring.events.INSTRUCTION, instruction)
def start():
    if monitoring is None:
        sys.settrace(tracer)
    else:
        monitoring.set_events(tool, monitoring.events.INSTRUCTION)
def stop():
    if monitoring is None:
        sys.settrace(None)
    else:
        monitoring.set_events(tool, 0)
def run(k, audit):
    for i in range(k):
        if audit:
            with sqlaudit.audit("unit"):
                w.run(engine, i)
        else:
            w.run(engine, i)
for audit in (False, True):
    run(20, audit)
    count = 0
    start()
    run(n, audit)
    stop()
    print(count / n)
"""


def count(checkout: Path, workload: str, units: int) -> tuple[float, float]:
    """Bytecodes per unit (no audit open, audit() per unit), sqlaudit from ``checkout``."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, workload, str(units)],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout), "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"child failed ({workload}):\n{result.stderr[-2000:]}")
    no_audit, audit = (float(line) for line in result.stdout.split())
    return no_audit, audit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", help=f"comma-separated workloads (default {','.join(WORKLOADS)})")
    parser.add_argument("--units", type=int, default=20, help="units counted (default 20)")
    parser.add_argument("--against", metavar="REF", help="also count a git ref (a worktree of it)")
    args = parser.parse_args()
    workloads = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {', '.join(WORKLOADS)}")
    with checkouts(args.against) as found:
        results = {
            label: {w: count(path, w, args.units) for w in workloads}
            for label, path in found.items()
        }
    print(f"Python bytecodes per unit ({args.units} units counted):")
    print("  {:14} {:16} {:>12} {:>14}".format("workload", "checkout", "no audit", "audit() adds"))
    for w in workloads:
        for label in found:
            no_audit, audit = results[label][w]
            print(f"  {w:14} {label[:16]:16} {no_audit:12,.0f} {audit - no_audit:+14,.0f}")


if __name__ == "__main__":
    main()
