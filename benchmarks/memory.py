"""Memory sqlaudit keeps after its audits closed: per closed audit, per distinct statement.

Run from the repository root::

    python benchmarks/memory.py            # full run (about a minute)
    python benchmarks/memory.py --quick    # smaller workloads (smoke test)
    python benchmarks/memory.py --json results.json

Issue 14 measured module-level caches that kept every statement text after every audit had
closed: 100 distinct 1 MB statements retained 95 MiB, IN lists of 1 to 1,500 values 96 MiB.
Each workload below runs twice on its own engine, SQLite in memory: once inside audits on an
instrumented engine, once on an engine never instrumented (the control: what SQLAlchemy and
the driver keep by themselves; the sqlite3 module's statement cache is off). After the last
audit closed, ``gc.collect()``; the figure is the memory still allocated (``tracemalloc``),
audited minus control, in bytes:

* ``distinct 1 MB statements``: N distinct statements of about 1 MB each (a literal inlined),
  one audit each (``exec_driver_sql``, so SQLAlchemy's compiled cache keeps none of them);
* ``IN lists``: ``WHERE id IN (...)`` with 1, 2, ... N values (each list size is a new text),
  20 lists per audit;
* ``closed audits``: N audits of 20 statements each with inlined literals (every text new),
  the per-request pattern of a service building SQL by hand.

While audits are open the memos are bounded (``sqlaudit.sql.cache``: 4,096 entries and
4 Mi characters each); when the last audit ends, those holding more than ``RESIDUAL``
(64 Ki characters) are emptied. The script also prints the largest the memos held during the
runs. It measures; it never exits non-zero.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, select
from sqlalchemy.pool import StaticPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlaudit

try:  # absent before issue 14: then the run measures the old caches
    from sqlaudit.sql.cache import memos
except ImportError:  # pragma: no cover - measuring an older checkout
    memos = None

_metadata = MetaData()
_table = Table("t", _metadata, Column("id", Integer, primary_key=True))
_peak_chars = 0


def _engine() -> Engine:
    # cached_statements=0: the sqlite3 module keeps its last 128 statements (their text
    # included) by itself, which would hide what sqlaudit keeps.
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"cached_statements": 0})
    _metadata.create_all(engine)
    return engine


def _note_memos() -> None:
    global _peak_chars
    if memos is not None:
        _peak_chars = max(_peak_chars, sum(memo.chars for memo in memos()))


def big_statements(engine: Engine, audited: bool, n: int) -> None:
    for i in range(n):
        sql = f"SELECT {i} WHERE '{'x' * 1_000_000}' = ''"
        with _maybe_audit(audited), engine.connect() as conn:
            conn.exec_driver_sql(sql).all()
            _note_memos()


def in_lists(engine: Engine, audited: bool, n: int) -> None:
    for start in range(1, n + 1, 20):
        with _maybe_audit(audited), engine.connect() as conn:
            for size in range(start, min(start + 20, n + 1)):
                conn.execute(select(_table.c.id).where(_table.c.id.in_(range(size)))).all()
            _note_memos()


def closed_audits(engine: Engine, audited: bool, n: int) -> None:
    for i in range(n):
        with _maybe_audit(audited), engine.connect() as conn:
            for j in range(20):
                conn.exec_driver_sql(f"SELECT id FROM t WHERE id = {i * 20 + j}").all()
            _note_memos()


def _maybe_audit(audited: bool) -> Any:
    import contextlib

    if audited:
        return sqlaudit.audit("memory", on_finding="ignore")
    return contextlib.nullcontext()


def retained(workload: Callable[[Engine, bool, int], None], n: int, audited: bool) -> int:
    """Bytes still allocated after ``workload`` ran (and ``gc.collect()``)."""
    engine = _engine()
    handle = sqlaudit.instrument(engine) if audited else None
    with engine.connect() as conn:  # warm up: the first connection and compiled statements
        conn.exec_driver_sql("SELECT 1").all()
    workload(engine, audited, 1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    workload(engine, audited, n)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    if handle is not None:
        handle.remove()
    engine.dispose()
    return after - before


WORKLOADS: list[tuple[str, Callable[[Engine, bool, int], None], int, int, str]] = [
    ("distinct 1 MB statements", big_statements, 100, 10, "statement"),
    ("IN lists of 1..N values", in_lists, 1500, 150, "list"),
    ("closed audits (20 new texts each)", closed_audits, 5000, 500, "audit"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    print(
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"sqlaudit from {Path(sqlaudit.__file__).resolve().parent.parent}"
    )
    results: dict[str, Any] = {}
    print(f"{'workload':<36} {'N':>6} {'retained':>14} {'per item':>12}")
    for name, workload, n, quick_n, unit in WORKLOADS:
        count = quick_n if args.quick else n
        control = retained(workload, count, audited=False)
        audited = retained(workload, count, audited=True)
        extra = audited - control
        results[name] = {"n": count, "audited": audited, "control": control, "retained": extra}
        print(f"{name:<36} {count:>6} {extra:>12,} B {extra / count:>10,.0f} B/{unit}")
    if memos is not None:
        print(f"largest the memos held while audits were open: {_peak_chars:,} characters")
        results["peak_memo_chars"] = _peak_chars
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
