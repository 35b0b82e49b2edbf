"""Loop view: per-iteration findings of one loop reported once, as "kN+1", with one fix.

A loop body that touches two lazy relationships and runs one helper query issues 3 statements
per iteration: three findings with the same N from lines of one function. They are one
problem ("this loop issues 3N+1 queries") with one fix: the loader options combined on the
parent query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlaudit.model.findings import Finding

__all__ = ["combine_loops"]

_PER_ITERATION = ("n_plus_one", "column_reload", "repeated_query")
_OPTIONS_FIX = re.compile(r"^add \.options\((?P<options>.+)\) to the query at (?P<where>\S+)$")


def combine_loops(findings: Sequence[Finding]) -> list[Finding]:
    """``findings`` with each loop's per-iteration findings merged into one."""
    groups: dict[tuple[str, str, int], list[Finding]] = {}
    for finding in findings:
        if finding.kind in _PER_ITERATION and finding.location is not None:
            key = (finding.location.file, finding.location.function, finding.count)
            groups.setdefault(key, []).append(finding)
    merged: dict[int, Finding] = {}
    dropped: set[int] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        combined = _combine(members)
        merged[id(members[0])] = combined
        dropped.update(id(f) for f in members[1:])
    return [merged.get(id(f), f) for f in findings if id(f) not in dropped]


def _combine(members: list[Finding]) -> Finding:
    members = sorted(members, key=lambda f: f.location.line if f.location else 0)
    k, n = len(members), members[0].count
    subjects = [f.relationship or f.kind for f in members]
    kind = "n_plus_one" if any(f.kind == "n_plus_one" for f in members) else members[0].kind
    message = f"N+1 loop: this loop issues {k}N+1 queries ({k * n + 1} for N={n}): " + "; ".join(
        f.message for f in members
    )
    return Finding(
        kind=kind,
        severity=max(f.severity for f in members),
        message=message,
        count=sum(f.count for f in members),
        location=members[0].location,
        fix=_combined_fix(members),
        fingerprint=members[0].fingerprint,
        sql=members[0].sql,
        db_time=sum(f.db_time for f in members),
        relationship=", ".join(subjects),
        statements=tuple(sorted({i for f in members for i in f.statements})),
    )


def _combined_fix(members: list[Finding]) -> str:
    options: dict[str, list[str]] = {}
    others: list[str] = []
    for finding in members:
        match = _OPTIONS_FIX.match(finding.fix)
        if match:
            options.setdefault(match.group("where"), []).append(match.group("options"))
        elif finding.fix not in others:
            others.append(finding.fix)
    fixes = [
        f"add .options({', '.join(dict.fromkeys(opts))}) to the query at {where}"
        for where, opts in options.items()
    ]
    return "; ".join(fixes + others)
