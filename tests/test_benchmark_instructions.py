"""``benchmarks/instructions.py`` and ``bytecodes.py``: their children run every variant.

The counts themselves need valgrind and minutes; this test runs the child script without it,
for a few units, so that a broken variant shows here and not in the middle of a long count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import instructions  # noqa: E402 - benchmarks/ is not a package

UNITS = 3
STATEMENTS = 10  # core_pk: ten selects per unit
RECORDERS = {"bound_record", "bound_site"}


def test_child_runs_every_variant() -> None:
    """Each variant runs the workload (all at once, one process each); the bound recorders
    keep every statement, the others nothing of their own."""
    variants = [*instructions.VARIANTS, *instructions.BOUNDS]
    children = {
        variant: subprocess.Popen(
            [sys.executable, "-c", instructions.CHILD, "core_pk", variant, str(UNITS), "nogc"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for variant in variants
    }
    for variant, child in children.items():
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, f"{variant}: {err}"
        assert int(out.strip()) == (UNITS * STATEMENTS if variant in RECORDERS else 0), variant


def test_bytecode_child_counts_both_variants() -> None:
    """``benchmarks/bytecodes.py``'s child counts bytecodes with no audit open and with one
    ``audit()`` per unit; the audit runs sqlaudit's recording and closing on top."""
    import bytecodes

    no_audit, audit = bytecodes.count(ROOT, "core_pk", UNITS)
    assert no_audit > 0
    assert audit > no_audit
