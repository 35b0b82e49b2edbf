"""What makes an audited test fail: budgets, findings, baseline; and the failure text.

The pytest plugin parses markers into a :class:`TestPolicy` at collection and, when the audited
part of a test has run, asks :func:`judge` for a :class:`Verdict`. Nothing here imports pytest:
marker arguments arrive as plain ``args`` / ``kwargs`` and problems are ``ConfigError``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlaudit._validate import check_int
from sqlaudit.errors import AuditFailed, ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.findings import KINDS, TIMING_KINDS, Finding, check_kinds
from sqlaudit.model.records import StatementKind
from sqlaudit.pytest_plugin import baseline as _baseline
from sqlaudit.report import AuditReport

__all__ = [
    "DEFAULT_FAIL_KINDS",
    "TIMING_KINDS",
    "Budget",
    "SqlauditFailure",
    "TestPolicy",
    "Verdict",
    "budget_counts",
    "judge",
    "parse_budget",
    "parse_kinds",
    "parse_sqlaudit_marker",
    "project_path",
]

#: Kinds that fail a test by default: all but the timing ones (opt in with
#: ``--sqlaudit-fail-on=all``, or use a ``db_time_ms`` budget).
DEFAULT_FAIL_KINDS: frozenset[str] = KINDS - TIMING_KINDS
_WRITES = StatementKind.WRITES
_ALLOWLISTS = ("allow_relationships", "allow_paths", "allow_sql")


class SqlauditFailure(AuditFailed):
    """A test or block failed its sqlaudit checks (budget, findings, baseline).

    ``report`` is the audited unit; the message is the diagnosis, the report and, for tests,
    the baseline diff.
    """

    __module__ = "sqlaudit.pytest_plugin"  # where users import it from

    def __init__(self, report: AuditReport, message: str) -> None:
        self.report = report
        AssertionError.__init__(self, message)


def parse_kinds(value: Any, *, setting: str) -> frozenset[str]:
    """Finding kinds from ``"a,b"``, ``"all"`` or an iterable; ConfigError names bad ones."""
    if isinstance(value, str):
        items = [v.strip() for v in value.replace(",", " ").split()]
        if items == ["all"]:
            return KINDS
        value = items
    return check_kinds(value, setting=setting)


def budget_counts(report: AuditReport) -> dict[str, int]:
    """Statements per kind that count in budgets and baselines.

    Transaction control (BEGIN, COMMIT, SAVEPOINT, RELEASE...) never counts, nor do statements
    run under ``sqlaudit.ignore("query_budget")``.
    """
    counts = report.counts
    counts.pop(StatementKind.TRANSACTION, None)
    for record in report.statements:
        if "query_budget" in record.suppressed and counts.get(record.kind, 0) > 0:
            counts[record.kind] -= 1
    return {kind: n for kind, n in counts.items() if n}


@dataclass(frozen=True, slots=True)
class Budget:
    """Ceilings for one unit: statements, SELECTs, writes, DB time (transaction control free)."""

    statements: int | None
    select: int | None = None
    writes: int | None = None
    db_time_ms: float | None = None
    reason: str | None = None
    #: How the budget was declared, for messages: ``"@pytest.mark.query_budget({n})"``.
    declared_as: str = "@pytest.mark.query_budget({n})"

    def problems(self, report: AuditReport) -> list[str]:
        """One paragraph per exceeded ceiling: what, by how much, and the fix."""
        counts = budget_counts(report)
        total = sum(counts.values())
        why = f" (reason: {self.reason})" if self.reason else ""
        out = []
        if self.statements is not None and total > self.statements:
            detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            if self.statements == 0:
                declared = self.declared_as.format(n=0)
                fix = f"remove the statements below: {declared} says this code does not query"
            else:
                bigger = self.declared_as.format(n=total)
                fix = f"remove the statements the findings point at, or raise it to {bigger}"
            out.append(
                f"query budget exceeded: {total} statements ({detail}), "
                f"budget {self.statements}{why}; fix: {fix}"
            )
        selects = counts.get(StatementKind.SELECT, 0)
        if self.select is not None and selects > self.select:
            out.append(
                f"SELECT budget exceeded: {selects} SELECT statements, budget {self.select}{why}"
                "; fix: eager-load what is read in loops (selectinload/joinedload)"
            )
        writes = sum(n for kind, n in counts.items() if kind in _WRITES)
        if self.writes is not None and writes > self.writes:
            out.append(
                f"write budget exceeded: {writes} INSERT/UPDATE/DELETE statements, "
                f"budget {self.writes}{why}; fix: batch the writes (one flush, executemany)"
            )
        ms = report.db_time_ms
        if self.db_time_ms is not None and ms > self.db_time_ms:
            out.append(
                f"DB time budget exceeded: {ms:.1f} ms in the database, budget "
                f"{self.db_time_ms:g} ms{why}; fix: index or batch the slowest statements below"
            )
        return out


def parse_budget(args: tuple[Any, ...], kwargs: Mapping[str, Any], *, what: str) -> Budget:
    """``query_budget(n, *, select=None, writes=None, db_time_ms=None, reason=None)``."""
    known = {"select", "writes", "db_time_ms", "reason"}
    unknown = sorted(set(kwargs) - known - {"n"})
    if unknown:
        raise ConfigError(
            f"{what} got unknown argument(s) {', '.join(unknown)}; "
            f"known: n, {', '.join(sorted(known))}"
        )
    if len(args) + ("n" in kwargs) != 1:
        raise ConfigError(f"{what} needs exactly one statement budget n, e.g. {what}(5)")
    n = args[0] if args else kwargs["n"]
    db_time = kwargs.get("db_time_ms")
    if db_time is not None and (
        isinstance(db_time, bool)
        or not isinstance(db_time, (int, float))
        or not math.isfinite(db_time)
        or db_time < 0
    ):
        raise ConfigError(
            f"db_time_ms must be a finite number of milliseconds >= 0 or None, got {db_time!r}"
        )
    reason = kwargs.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ConfigError(f"reason must be a str, got {reason!r}")
    return Budget(
        statements=check_int("n", n, 0),
        select=check_int("select", kwargs.get("select"), 0, optional=True),
        writes=check_int("writes", kwargs.get("writes"), 0, optional=True),
        db_time_ms=None if db_time is None else float(db_time),
        reason=reason,
        declared_as=f"@pytest.mark.{what}({{n}})",
    )


def parse_sqlaudit_marker(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], base: AuditConfig
) -> tuple[frozenset[str], AuditConfig]:
    """``sqlaudit(allow=[kinds], **AuditConfig overrides)`` -> (allowed kinds, config)."""
    if args:
        raise ConfigError(
            f"sqlaudit marker takes keyword arguments only (allow=..., AuditConfig fields), "
            f"got positional {args!r}"
        )
    overrides = dict(kwargs)
    allow = parse_kinds(overrides.pop("allow", ()), setting="allow")
    for key in _ALLOWLISTS:
        # Allowlists add up: a test's marker adds to its module's and to the ini file's.
        value = overrides.get(key)
        if isinstance(value, str):
            value = (value,)
        if isinstance(value, (list, tuple, set, frozenset)):
            overrides[key] = (*sorted(getattr(base, key)), *value)
    if "on_finding" in overrides:
        raise ConfigError(
            "on_finding is decided by the pytest plugin; use allow=[kinds] to let findings "
            "pass, or fail_on='error' to fail only on errors"
        )
    return allow, base.replace(**overrides) if overrides else base


@dataclass(frozen=True, slots=True)
class TestPolicy:
    """How one test is audited and judged (decided at collection)."""

    __test__ = False  # not a test class, whatever pytest's python_classes says

    config: AuditConfig
    budget: Budget | None = None
    check_findings: bool = False
    allow: frozenset[str] = frozenset()
    fail_kinds: frozenset[str] = DEFAULT_FAIL_KINDS

    def fails(self, finding: Finding) -> bool:
        return (
            self.check_findings
            and finding.kind in self.fail_kinds
            and finding.kind not in self.allow
            and finding.severity >= self.config.fail_on
        )

    def allowed_by(self, finding: Finding) -> str | None:
        """The allowlist rule that lets ``finding`` pass: the config's (``Finding.allowed``)
        or the marker's ``allow=[kinds]``; None if none does."""
        if finding.allowed is not None:
            return finding.allowed
        if self.check_findings and finding.kind in self.allow:
            return f"allow=[{finding.kind}]"
        return None


def identity(finding: Finding, root: Path) -> _baseline.Identity:
    """``Finding.identity`` with the file relative to ``root`` in ``/`` form (portable)."""
    kind, subject, file, function = finding.identity
    return (kind, subject, project_path(file, root) if file else file, function)


def project_path(file: str, root: Path) -> str:
    """``file`` relative to ``root`` in ``/`` form when it lies under it, else as it is."""
    try:
        rel = os.path.relpath(file, root)
    except ValueError:  # another drive on Windows
        return file
    return file if rel.startswith("..") else rel.replace(os.sep, "/")


@dataclass(slots=True)
class Verdict:
    """Why a test fails (empty lists: it passes) and how it compares with its baseline."""

    budget: list[str] = field(default_factory=list)
    #: Findings that fail the test (not allowed, not accepted by the baseline).
    failing: list[Finding] = field(default_factory=list)
    diff: _baseline.Diff | None = None

    @property
    def failed(self) -> bool:
        return bool(self.budget or self.failing or (self.diff is not None and self.diff.increases))


def judge(
    report: AuditReport,
    policy: TestPolicy,
    root: Path,
    baseline: _baseline.Entry | None = None,
    use_baseline: bool = False,
    accept_all: bool = False,
) -> Verdict:
    """The verdict on a closed test report. ``accept_all``: updating the baseline with "all"."""
    verdict = Verdict(budget=policy.budget.problems(report) if policy.budget else [])
    failing = [f for f in report.findings if policy.fails(f)]
    if use_baseline:
        ids = [identity(f, root) for f in failing]
        verdict.diff = _baseline.compare(baseline, budget_counts(report), ids)
        accepted = frozenset() if baseline is None else baseline.findings
        failing = [f for f, i in zip(failing, ids, strict=True) if i not in accepted]
    verdict.failing = failing
    if accept_all:
        verdict.failing = []
        verdict.diff = None
    return verdict


def failure_text(report: AuditReport, verdict: Verdict, baseline_note: Iterable[str] = ()) -> str:
    """The failure shown by pytest: one line per reason (diagnosis; fix), then the report
    (findings in detail, statements numbered with repeats collapsed), then the baseline diff.

    A budget failure also lists every finding: they usually explain the extra statements.
    """
    out = list(verdict.budget)
    shown = verdict.failing if not verdict.budget else report.findings
    out += [f"{f.headline}; fix: {f.fix}" for f in shown]
    diff = verdict.diff
    if diff is not None and diff.increases:
        over = ", ".join(f"{kind} {old} -> {new}" for kind, old, new in diff.increases)
        out.append(f"more statements than the baseline allows: {over}; fix: see the baseline below")
    out.append("")
    out.append(report.render())
    note = list(baseline_note)
    if note:
        out.append("")
        out.extend(note)
    return "\n".join(out)
