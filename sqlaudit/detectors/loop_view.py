"""Loop view: per-iteration findings of one loop reported once, as "kN+1", with one fix.

A loop body that touches two lazy relationships and runs one helper query issues 3 statements
per iteration: three findings with the same N from lines of one function. They are one
problem ("this loop issues 3N+1 queries") with one fix: the loader options combined on the
parent query. The "+1" is said only when an N+1 member's parents came from a query before the
loop; a loop that loads each item itself issues "2 queries per iteration (10 for N=5)".

Findings belong to one loop when, besides coming from one function with the same N, their
statements interleave iteration by iteration: every finding's k-th statement comes before any
of their (k+1)-th. Four loops one after the other in a function issue theirs in runs, and stay
four findings (issue 14, row 13: they were reported as one "4N+1" loop).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlaudit.model.findings import Finding
from sqlaudit.model.paths import relative

__all__ = ["LOOP_HEADLINE", "combine_loops"]

#: How a combined loop finding's message starts. Its ``fingerprint`` is its first member's (what
#: baselines key it by) while its ``count`` is every member's statements: the text report does
#: not print them as "{count}x {fingerprint}" (12 statements of two shapes read as 12 of one).
LOOP_HEADLINE = "N+1 loop: "

_PER_ITERATION = ("n_plus_one", "column_reload", "repeated_query")
#: ``n_plus_one``'s fix names the query that loaded the parents (``n_plus_one._where``).
_PARENTS_QUERY = re.compile(r" to the query at (?P<where>\S+)")
_OPTIONS_FIX = re.compile(r"^add \.options\((?P<options>.+)\) to the query at (?P<where>\S+)$")


def combine_loops(findings: Sequence[Finding]) -> list[Finding]:
    """``findings`` with each loop's per-iteration findings merged into one."""
    if len(findings) < 2:
        return list(findings)  # nothing to merge (most units with a finding have one)
    groups: dict[tuple[str, str, int], list[Finding]] = {}
    for finding in findings:
        if finding.kind in _PER_ITERATION and finding.location is not None and finding.statements:
            key = (finding.location.file, finding.location.function, finding.count)
            groups.setdefault(key, []).append(finding)
    merged: dict[int, Finding] = {}
    dropped: set[int] = set()
    for candidates in groups.values():
        for members in _loops(candidates):
            if len(members) < 2:
                continue
            members.sort(key=lambda f: f.location.line if f.location else 0)
            merged[id(members[0])] = _combine(members)
            dropped.update(id(f) for f in members[1:])
    return [merged.get(id(f), f) for f in findings if id(f) not in dropped]


def _loops(candidates: list[Finding]) -> list[list[Finding]]:
    """``candidates`` split into loops: each finding joins the first loop whose every member
    it interleaves with, in order of their first statement."""
    loops: list[list[Finding]] = []
    for finding in sorted(candidates, key=lambda f: f.statements[:1]):
        for loop in loops:
            if all(_interleave(finding, member) for member in loop):
                loop.append(finding)
                break
        else:
            loops.append([finding])
    return loops


def _interleave(a: Finding, b: Finding) -> bool:
    """Whether ``a`` and ``b`` issue their statements iteration by iteration: the k-th of
    each before the (k+1)-th of either (on the statement indexes both findings kept)."""
    first, second = sorted(a.statements), sorted(b.statements)
    n = min(len(first), len(second))
    if n < 2:
        return False
    return all(max(first[k], second[k]) < min(first[k + 1], second[k + 1]) for k in range(n - 1))


def _combine(members: list[Finding]) -> Finding:
    k, n = len(members), members[0].count
    # Only relationships: baselines key findings by it (``Finding.identity``), and a list of
    # finding kinds there would name nothing (issue 14, row 13).
    relationships = ", ".join(dict.fromkeys(f.relationship for f in members if f.relationship))
    kind = "n_plus_one" if any(f.kind == "n_plus_one" for f in members) else members[0].kind
    if _parents_query_before(members):
        issues = f"{k}N+1 queries ({k * n + 1} for N={n})"
    else:
        issues = f"{k} queries per iteration ({k * n} for N={n})"
    message = f"{LOOP_HEADLINE}this loop issues {issues}: " + "; ".join(f.message for f in members)
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
        relationship=relationships or None,
        statements=tuple(sorted({i for f in members for i in f.statements})),
        origin=next((f.origin for f in members if f.origin is not None), None),
    )


def _parents_query_before(members: list[Finding]) -> bool:
    """Whether the loop runs over rows of one query issued before it (the "+1"): an N+1 member
    names the query that loaded its parents, and that query is not one of the loop's own (a loop
    that loads each parent itself, e.g. a ``session.get`` per id, has no "+1"; nor has a loop
    whose only members are repeated queries, over ids or values it was given)."""
    inside = {f"{relative(f.location.file)}:{f.location.line}" for f in members if f.location}
    for finding in members:
        match = _PARENTS_QUERY.search(finding.fix) if finding.kind == "n_plus_one" else None
        if match is not None and match.group("where") not in inside:
            return True
    return False


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
