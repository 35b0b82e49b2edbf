"""``benchmarks/units.py``: the per-unit benchmark runs end to end and reports every figure.

It measures, it asserts nothing about speed; this test only pins that its quick mode runs, that
its own self-checks pass (every tool counted every statement of each unit, sqlaudit reported
the findings each workload must produce) and that the JSON holds every workload and variant.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from timing import TIMING_KINDS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "units.py"
WORKLOADS = {"core_pk", "core_literal", "core_insert", "orm_get", "n_plus_one", "clean"}
PEERS = {"queryspy", "pytest-queryguard", "pytest-querycount"}


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark script from the repository root; it must exit 0."""
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_units_benchmark_quick_mode(tmp_path: Path) -> None:
    """A one-round quick run exits 0 with per-unit and per-statement figures for every cell."""
    out = tmp_path / "units.json"
    done = run(SCRIPT, "--quick", "--rounds", "1", "--scale", "0.1", "--json", str(out))
    result = json.loads(out.read_text(encoding="utf-8"))
    env = result["environment"]
    # Peers are optional: each is either measured or listed as missing, with the reason.
    assert set(env["peers"]) | set(env["peers_missing"]) == PEERS
    rows = {(r["workload"], r["variant"]): r for r in result["rows"]}
    variants = {"plain", "floor", "no_audit", "audit"} | {
        {"pytest-queryguard": "queryguard", "pytest-querycount": "querycount"}.get(p, p)
        for p in env["peers"]
    }
    assert {w for w, _ in rows} == WORKLOADS
    for workload in WORKLOADS:
        for variant in variants:
            row = rows[(workload, variant)]
            per_unit = row["added_us_per_statement"] * row["statements_per_unit"]
            assert per_unit == pytest.approx(row["added_us_per_unit"])
    assert {p["workload"] for p in result["probes"]} == {"core_pk", "clean"}
    kinds = {w: set(rows[(w, "audit")]["sqlaudit_kinds"]) - TIMING_KINDS for w in WORKLOADS}
    assert kinds["clean"] == set()
    assert kinds["core_insert"] == set()
    assert "repeated_query" in kinds["core_pk"]
    assert "n_plus_one" in kinds["n_plus_one"]
    assert rows[("clean", "audit")]["close_us_per_unit"] > 0
    assert all(isinstance(c["pass"], bool) for c in result["targets"])
    assert "Targets (issue 20" in done.stdout


def test_lower_bound_benchmark_runs_every_workload() -> None:
    """``lower_bound.py`` prints one row per workload of ``units.py``, each with a figure per
    recorder variant (it measures; nothing here is about speed)."""
    done = run(ROOT / "benchmarks" / "lower_bound.py", "--rounds", "1", "--scale", "0.05")
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "µs" not in line]
    header, *table = rows
    assert header == "| workload | floor | record | record_site | sqlaudit |"
    assert len(table) == len(WORKLOADS)
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5
        assert all(re.fullmatch(r"-?\+?-?\d+\.\d \([+-]-?\d+\)", c) for c in cells[1:]), row
