"""Session-wide side of the pytest plugin: per-test summaries, terminal summary, JSON file.

Each audited test's outcome travels as a JSON-safe summary dict (on the pytest report, so it
crosses from pytest-xdist workers to the controller); the controller collects them here and
writes the JSON file and the baseline. :class:`Controller` and :class:`XdistController` are
hook objects the plugin registers on the controller (or the only process); pluggy finds their
hooks by name, so this module imports no pytest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlaudit import __version__
from sqlaudit.model.findings import Finding
from sqlaudit.pytest_plugin import baseline as _baseline
from sqlaudit.pytest_plugin import ci as _ci
from sqlaudit.pytest_plugin.policy import (
    TestPolicy,
    Verdict,
    budget_counts,
    identity,
    project_path,
)
from sqlaudit.pytest_plugin.settings import Settings, narrowed
from sqlaudit.report import AuditReport

if TYPE_CHECKING:
    import pytest

__all__ = [
    "Controller",
    "SessionData",
    "XdistController",
    "allowed_lines",
    "baseline_note",
    "summarize",
]

#: Tests listed per table in the terminal summary.
TOP = 10


def summarize(
    nodeid: str,
    report: AuditReport,
    verdict: Verdict,
    policy: TestPolicy,
    settings: Settings,
    *,
    complete: bool,
    location: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON-safe summary of one audited test; ``location``: the test's (file relative
    to the root, line), where CI output points for findings without a place of their own."""
    root = settings.root
    counts = budget_counts(report)
    diff = verdict.diff
    failing = {id(f) for f in verdict.failing}
    findings = []
    for f in (*report.findings, *report.allowed):
        allowed = policy.allowed_by(f)
        fails = f.allowed is None and policy.fails(f)
        if id(f) in failing:
            outcome = "failing"
        elif allowed is not None:
            outcome = "allowed"
        elif fails and complete:
            outcome = "accepted"  # by the baseline, or by an update run
        else:
            outcome = "reported"  # the test does not fail on it (kind, severity, policy)
        findings.append(
            {
                "kind": f.kind,
                "severity": str(f.severity),
                "message": f.headline,
                "identity": list(identity(f, root)),
                "fix": f.fix,
                "count": f.count,
                **_place(f, root),
                "fails": fails,
                "allowed": allowed,
                "outcome": outcome,
            }
        )
    summary: dict[str, Any] = {
        "nodeid": nodeid,
        "statements": sum(counts.values()),
        "counts": counts,
        "db_time_ms": round(report.db_time_ms, 3),
        "findings": findings,
        "failed": verdict.failed,
        "failing": len(verdict.failing),
        "over_budget": bool(verdict.budget),
        "over_baseline": bool(diff is not None and diff.increases),
        "complete": complete,
        "tightenable": bool(diff is not None and diff.known and diff.tightenable),
        "location": list(location) if location else None,
    }
    if settings.json_path is not None:
        summary["report"] = report.to_dict()
    return summary


@dataclass(slots=True)
class SessionData:
    """What the controller (or the only process) learns about the session."""

    settings: Settings
    baseline: dict[str, _baseline.Entry] | None = None
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    collected: set[str] = field(default_factory=set)
    narrowed: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def stale(self) -> list[str]:
        if not self.baseline:
            return []
        return _baseline.stale(
            self.baseline,
            collected=self.collected,
            files={c.split("::", 1)[0] for c in self.collected},
            narrowed=self.narrowed,
            root=self.settings.root,
        )

    def results(self) -> dict[str, _baseline.Entry]:
        """This run's baseline entry of every test whose audited part completed."""
        out = {}
        for test_id, s in self.tests.items():
            if s["complete"]:
                ids = frozenset(_identity(f["identity"]) for f in s["findings"] if f["fails"])
                out[test_id] = _baseline.Entry(dict(s["counts"]), ids)
        return out

    def finish(self) -> None:
        """Write the JSON file and the baseline, as asked; notes go to the terminal summary."""
        settings = self.settings
        if not (settings.audit_all or settings.baseline_path):
            return  # markers and the fixture only: nothing to write
        if self.tests and not any(s["statements"] for s in self.tests.values()):
            self.notes.append(
                "sqlaudit: no statement was captured: call sqlaudit.instrument(engine) in a "
                "conftest.py fixture for every engine the tests use"
            )
        if settings.json_path is not None:
            _write_json(settings.json_path, self.tests)
            self.notes.append(f"sqlaudit: wrote {settings.json_arg} ({len(self.tests)} tests)")
        if settings.sarif_path is not None:
            log = _ci.sarif_log(
                self.tests, root=settings.root, version=__version__, baseline=settings.baseline_arg
            )
            _ci.write_sarif(settings.sarif_path, log)
            results = len(log["runs"][0]["results"])
            self.notes.append(
                f"sqlaudit: wrote {settings.sarif_arg} (SARIF, {_plural(results, 'result')})"
            )
        path = settings.baseline_path
        if path is None:
            return
        stale = self.stale()
        old = self.baseline or {}
        if settings.update is not None:
            new = _baseline.merge(old, self.results(), settings.update, stale)
            _baseline.write(path, new)
            changed = sum(1 for k, v in new.items() if old.get(k) != v)
            removed = len(set(old) - set(new))
            self.notes.append(
                f"sqlaudit: wrote baseline {settings.baseline_arg} ({len(new)} tests; "
                f"{changed} added or changed, {removed} removed; mode {settings.update})"
            )
            return
        if self.baseline is None:
            self.notes.append(
                f"sqlaudit: baseline {settings.baseline_arg} does not exist, so no finding is "
                f"accepted yet; create it with: {settings.command('all')}"
            )
        tight = sorted(k for k, s in self.tests.items() if s["tightenable"])
        if tight:
            self.notes.append(
                f"sqlaudit: {len(tight)} baseline entries can be tightened "
                f"(fewer statements or fixed findings): {_some(tight)}"
            )
            self.notes.append(f"  tighten with: {settings.command('tighten')}")
        if stale:
            self.notes.append(
                f"sqlaudit: {len(stale)} stale baseline entries (their tests no longer "
                f"exist): {_some(stale)}"
            )
            self.notes.append(f"  remove them with: {settings.command('tighten')}")

    def summary_lines(self) -> list[str]:
        """The ``--sqlaudit-report`` terminal summary."""
        tests = list(self.tests.values())
        statements = sum(s["statements"] for s in tests)
        db_time = sum(s["db_time_ms"] for s in tests)
        findings = [f for s in tests for f in s["findings"]]
        with_findings = sum(1 for s in tests if s["findings"])
        # The same words as pytest's "1 failed": tests failed by sqlaudit, and why; then what
        # became of each finding (failing a test, accepted, allowed, only reported).
        failed = sum(1 for s in tests if s["failed"])
        why = [
            _plural(n, what)
            for what, n in (
                ("over its budget", sum(1 for s in tests if s.get("over_budget"))),
                ("on findings", sum(1 for s in tests if s["failing"])),
                ("over the baseline", sum(1 for s in tests if s.get("over_baseline"))),
            )
            if n
        ]
        outcomes = {o: sum(1 for f in findings if f.get("outcome") == o) for o in _OUTCOMES}
        lines = [
            f"{_plural(len(tests), 'test')} audited, {failed} failed by sqlaudit"
            + (f" ({', '.join(why)})" if why else "")
            + f": {statements} statements, {db_time:.1f} ms in the database",
            f"{_plural(len(findings), 'finding')} in {_plural(with_findings, 'test')}: "
            + ", ".join(
                f"{outcomes[o]} {_OUTCOMES[o]}" for o in _OUTCOMES if outcomes[o] or o == "failing"
            ),
        ]
        worst = sorted(tests, key=lambda s: (-s["statements"], s["nodeid"]))[:TOP]
        if worst and statements:
            lines.append("most statements:")
            for s in worst:
                detail = ", ".join(f"{n} {k}" for k, n in sorted(s["counts"].items()))
                detail = f"  ({detail})" if detail else ""
                lines.append(f"  {s['statements']:>6}  {s['nodeid']}{detail}")
            lines.append("most time in the database:")
            for s in sorted(tests, key=lambda s: (-s["db_time_ms"], s["nodeid"]))[:TOP]:
                lines.append(f"  {s['db_time_ms']:>8.1f} ms  {s['nodeid']}")
        if findings:
            lines.append("findings by kind:")
            kinds: dict[str, list[str]] = {}
            for s in tests:
                for f in s["findings"]:
                    kinds.setdefault(f["kind"], []).append(s["nodeid"])
            for kind, ids in sorted(kinds.items(), key=lambda kv: (-len(kv[1]), kv[0])):
                lines.append(f"  {kind:<22} {len(ids):>4} in {len(set(ids))} tests")
        return lines


class Controller:
    """The controller's (or the only process's) hooks: collect summaries, write, print."""

    def __init__(self, data: SessionData) -> None:
        self.data = data

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        summary = getattr(report, "sqlaudit", None)
        if isinstance(summary, dict):
            self.data.tests[summary["nodeid"]] = summary

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        if config.option.collectonly:
            return
        data = self.data
        data.narrowed = narrowed(config.args, config.invocation_params.dir, config.rootpath)
        try:
            data.finish()
        except OSError as exc:
            data.notes.append(f"sqlaudit: ERROR: could not write a file: {exc}")
            session.exitstatus = 3  # pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        data = self.data
        lines = (data.summary_lines() if data.settings.report else []) + data.notes
        lines += allowed_lines(data.tests)
        if lines:
            terminalreporter.write_sep("=", "sqlaudit")
            for line in lines:
                terminalreporter.write_line(line)
        if data.settings.annotations:
            workspace = os.environ.get("GITHUB_WORKSPACE")
            commands = _ci.workflow_commands(
                data.tests,
                root=data.settings.root,
                workspace=Path(workspace) if workspace else None,
            )
            # Workflow commands are read from the step's standard output, one per line.
            for line in commands:
                terminalreporter.write_line(line)


class XdistController:
    """pytest-xdist's hook, registered only when xdist is installed."""

    def __init__(self, data: SessionData) -> None:
        self.data = data

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A worker finished: add the test ids it collected (for stale baseline entries)."""
        collected = getattr(node, "workeroutput", {}).get("sqlaudit_collected", ())
        self.data.collected.update(collected)


def baseline_note(settings: Settings, nodeid: str, verdict: Verdict) -> list[str]:
    """The baseline part of a failure: what went up and the command that accepts it."""
    diff = verdict.diff
    if diff is None or not diff.regressed:
        return []
    where = "entry for this test" if diff.known else "no entry for this test yet"
    lines = [f"baseline {settings.baseline_arg}, {where}:"]
    lines += [f"  {line}" for line in _baseline.describe(diff)]
    lines.append(f"accept these numbers (after review) with: {settings.command('all', nodeid)}")
    return lines


#: What became of a finding (``summary["findings"][i]["outcome"]``), as the summary says it.
_OUTCOMES = {
    "failing": "failing",
    "accepted": "accepted by the baseline",
    "allowed": "allowed",
    "reported": "reported only",
}


def _plural(n: int, what: str) -> str:
    """``"1 test"``, ``"2 tests"``; a phrase (``"over its budget"``) is counted as is."""
    if " " in what:
        return f"{n} {what}"
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def allowed_lines(tests: Mapping[str, dict[str, Any]]) -> list[str]:
    """The findings allowlists let pass, by rule: always printed when there are any, so that
    an allowlist never hides a finding silently."""
    rules: dict[str, list[str]] = {}
    for test_id, s in tests.items():
        for f in s["findings"]:
            if f.get("allowed"):
                rules.setdefault(f["allowed"], []).append(test_id)
    if not rules:
        return []
    total = sum(len(ids) for ids in rules.values())
    lines = [f"sqlaudit: {_plural(total, 'finding')} allowed (not failing, not logged):"]
    width = max(len(rule) for rule in rules)
    for rule, ids in sorted(rules.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"  {rule:<{width}}  {len(ids)} in {_plural(len(set(ids)), 'test')}")
    return lines


def _some(test_ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(test_ids[:limit])
    more = len(test_ids) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def _place(finding: Finding, root: Path) -> dict[str, Any]:
    """The finding's file (relative to ``root`` in ``/`` form when under it), line and
    function; empty when it has no location."""
    site = finding.location
    if site is None:
        return {}
    return {"file": project_path(site.file, root), "line": site.line, "function": site.function}


def _identity(value: list[str]) -> _baseline.Identity:
    kind, subject, file, function = value
    return (kind, subject, file, function)


def _write_json(path: Path, tests: Mapping[str, dict[str, Any]]) -> None:
    data = {"sqlaudit_tests": 1, "tests": [tests[k] for k in sorted(tests)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
