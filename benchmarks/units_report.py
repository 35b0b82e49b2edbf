"""The tables of ``units.py``: per-unit and per-statement figures, the fixed-cost probe, targets.

Reads the cells ``units.measure`` filled (``Cell``: a workload, a variant, per-round µs per
unit); kept apart from the measurement so that the two can be read (and changed) separately.
"""

from __future__ import annotations

import math
import statistics
from typing import Any


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summarise(cells: list[Any]) -> list[dict[str, Any]]:
    rows = []
    by = {(c.workload.name, c.variant.key): c for c in cells}
    for c in cells:
        w = c.workload
        base = by[(w.name, "plain")]
        diffs = [x - b for x, b in zip(c.rounds, base.rounds, strict=True)]
        floor = by[(w.name, "floor")]
        over_floor = [x - b for x, b in zip(c.rounds, floor.rounds, strict=True)]
        engine_medians = [_median(runs) for runs in c.per_engine]
        rows.append(
            {
                "workload": w.name,
                "workload_label": w.label,
                "statements_per_unit": w.statements,
                "target": w.target,
                "units_per_batch": w.units,
                "variant": c.variant.key,
                "label": c.variant.label,
                "us_per_unit": _median(c.rounds),
                "added_us_per_unit": _median(diffs),
                "added_min": min(diffs, default=float("nan")),
                "added_max": max(diffs, default=float("nan")),
                "added_us_per_statement": _median(diffs) / w.statements,
                "over_floor_us_per_statement": _median(over_floor) / w.statements,
                "ratio": _median(c.rounds) / _median(base.rounds),
                "wall_added_us_per_unit": _median(
                    [x - b for x, b in zip(c.wall, base.wall, strict=True)]
                ),
                "engine_spread_us_per_unit": max(engine_medians) - min(engine_medians),
                "close_us_per_unit": _median(c.close) if c.close else None,
                "flagged_share": c.flagged / c.units if c.units else None,
                "sqlaudit_kinds": c.kinds,
                "clean_plain_us_per_unit": _median(c.clean_rounds) if c.clean_rounds else None,
                "rounds_us_per_unit": c.rounds,
                "rounds_wall_us_per_unit": c.wall,
                "close_rounds_us": c.close,
            }
        )
    return rows


def probes(cells: list[Any]) -> list[dict[str, Any]]:
    """Fixed cost per unit: one audit per unit minus one audit around the same units."""
    by = {(c.workload.name, c.variant.key): c for c in cells}
    out = []
    for (name, key), c in by.items():
        if key != "round_audit":
            continue
        w = c.workload
        per_unit = by[(name, "audit")].rounds
        # The round audit's cell time covers w.units units: compare per unit.
        diffs = [u - r for u, r in zip(per_unit, c.rounds, strict=True)]
        base = by[(name, "plain")].rounds
        stmt = [(r - b) / w.statements for r, b in zip(c.rounds, base, strict=True)]
        out.append(
            {
                "workload": name,
                "workload_label": w.label,
                "fixed_us_per_unit": _median(diffs),
                "fixed_min": min(diffs),
                "fixed_max": max(diffs),
                "long_audit_added_us_per_statement": _median(stmt),
                "unit_kinds": by[(name, "audit")].kinds,
            }
        )
    return out


def targets(rows: list[dict[str, Any]], found_peers: list[str]) -> list[dict[str, Any]]:
    """Issue 20's targets for sqlaudit, from the same run."""
    by = {(r["workload"], r["variant"]): r for r in rows}
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    checks = []

    def add(target: str, value: float, limit: float, unit: str = "µs") -> None:
        checks.append(
            {"target": target, "value": value, "limit": limit, "unit": unit, "pass": value <= limit}
        )

    for name in workloads:
        audit, no_audit = by[(name, "audit")], by[(name, "no_audit")]
        label = audit["workload_label"]
        kind, limit = audit["target"]
        if kind == "stmt":
            add(
                f"{label}: audit per statement <= +{limit:g}",
                audit["added_us_per_statement"],
                limit,
            )
        elif kind == "unit":
            add(f"{label}: audit per unit <= +{limit:g}", audit["added_us_per_unit"], limit)
        else:
            add(f"{label}: close of the unit <= {limit:g}", audit["close_us_per_unit"], limit)
        add(
            f"{label}: no audit open <= floor + 0.5 per statement",
            no_audit["over_floor_us_per_statement"],
            0.5,
        )
        peer_rows = [by[(name, p)] for p in found_peers]
        if peer_rows:
            cheapest = min(peer_rows, key=lambda r: r["added_us_per_unit"])
            add(
                f"{label}: audit below the cheapest peer ({cheapest['label']}) per unit",
                audit["added_us_per_unit"] - cheapest["added_us_per_unit"],
                0.0,
            )
    return checks


def _fmt(x: float | None, spec: str = "+.1f") -> str:
    return "" if x is None or math.isnan(x) else format(x, spec)


def print_results(
    rows: list[dict[str, Any]],
    probe_rows: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    settings: dict[str, Any],
) -> None:
    timer_name = settings["timer"]
    print()
    print(
        f"Per-unit cost, SQLite in memory, {timer_name} time; each figure is the median over "
        f"{settings['rounds']} interleaved rounds of (variant - plain) in the same round, "
        f"mean of {settings['engines']} engine(s) per round; range = smallest..largest round."
    )
    last = None
    for r in rows:
        if r["workload"] != last:
            last = r["workload"]
            print()
            print(
                f"{r['workload_label']}: {r['statements_per_unit']} statement(s) per unit, "
                f"{r['units_per_batch']} units per batch"
            )
            head = (
                f"  {'variant':<34} {'µs/unit':>8} {'+µs/unit':>9} {'range':>17} {'+µs/stmt':>9}"
                f" {'ratio':>6} {'close':>6} {'flagged':>7} {'spread':>6}"
            )
            print(head)
            print("  " + "-" * (len(head) - 2))
        base = r["variant"] == "plain"
        rng = "" if base else f"{r['added_min']:+.1f}..{r['added_max']:+.1f}"
        flagged = "" if r["flagged_share"] is None else f"{r['flagged_share']:.0%}"
        print(
            f"  {r['label']:<34} {r['us_per_unit']:>8.1f} "
            f"{'baseline' if base else _fmt(r['added_us_per_unit']):>9} {rng:>17} "
            f"{'' if base else _fmt(r['added_us_per_statement'], '+.2f'):>9} {r['ratio']:>6.2f} "
            f"{_fmt(r['close_us_per_unit'], '.1f'):>6} {flagged:>7} "
            f"{r['engine_spread_us_per_unit']:>6.1f}"
        )
        if base and r["clean_plain_us_per_unit"] is not None:
            drift = r["us_per_unit"] - r["clean_plain_us_per_unit"]
            print(
                f"  {'  (plain before any tool ran:':<34} {r['clean_plain_us_per_unit']:>8.1f}"
                f" {drift:>+9.1f} = drift)"
            )
    sqlaudit_kinds = {
        r["workload_label"]: r["sqlaudit_kinds"] for r in rows if r["variant"] == "audit"
    }
    print()
    print(
        "sqlaudit's findings per unit (default config): "
        + "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in sqlaudit_kinds.items())
    )

    print()
    print("Summary, µs added per statement (per unit in brackets):")
    keys = list(
        dict.fromkeys(r["variant"] for r in rows if r["variant"] not in ("plain", "round_audit"))
    )
    labels = {r["variant"]: r["label"] for r in rows}
    by = {(r["workload"], r["variant"]): r for r in rows}
    print("  " + f"{'workload':<24}" + "".join(f" {SHORT.get(k, labels[k]):>20}" for k in keys))
    for name in dict.fromkeys(r["workload"] for r in rows):
        cells = []
        for k in keys:
            r = by[(name, k)]
            cells.append(f"{r['added_us_per_statement']:+.1f} ({r['added_us_per_unit']:+.0f})")
        print(
            "  "
            + f"{by[(name, 'plain')]['workload_label']:<24}"
            + "".join(f" {c:>20}" for c in cells)
        )

    if probe_rows:
        print()
        print("Fixed cost per unit (audit() per unit minus one audit() around the same units):")
        for p in probe_rows:
            print(
                f"  {p['workload_label']:<24} {p['fixed_us_per_unit']:+.1f} µs per unit "
                f"({p['fixed_min']:+.1f}..{p['fixed_max']:+.1f}); in one long audit the "
                f"statements cost {p['long_audit_added_us_per_statement']:+.2f} µs each; "
                f"unit findings: {', '.join(p['unit_kinds']) or 'none'}"
            )
    print()
    print("Targets (issue 20; value = µs added, or µs above the limit's reference):")
    if not any(r["variant"] in SHORT and r["variant"] not in SQLAUDIT_ROWS for r in rows):
        print("  (no peer installed: 'below the cheapest peer' not checked)")
    for c in checks:
        print(f"  {'PASS' if c['pass'] else 'MISS'}  {c['target']:<72} {c['value']:+8.2f}")


SQLAUDIT_ROWS = ("floor", "no_audit", "audit")
SHORT = {
    "floor": "floor",
    "no_audit": "sqlaudit no audit",
    "audit": "sqlaudit audit",
    "queryspy": "queryspy",
    "queryguard": "pytest-queryguard",
    "querycount": "pytest-querycount",
}
