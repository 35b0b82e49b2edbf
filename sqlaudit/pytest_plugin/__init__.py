"""pytest plugin ``sqlaudit``: query budgets, N+1 and transaction findings as test failures.

Registered through the ``pytest11`` entry point and inert until asked for: a test is audited
only under ``--sqlaudit`` (or another ``--sqlaudit-*`` option / ini key that audits every
test), a ``query_budget`` / ``no_queries`` / ``sqlaudit`` marker, or the ``sqlaudit`` fixture.
It never instruments an engine: call ``sqlaudit.instrument(engine)`` in a conftest fixture.

=============================  ===============================================================
hook                           what it does for an audited test
=============================  ===============================================================
make_collect_report            parses markers into a policy; a bad marker is a collection
                               error naming the test
runtest_setup/call/teardown    ``sqlaudit.audit(nodeid, all_threads=True)`` around the test
                               function (``sqlaudit_scope``: ``call``, ``setup+call``, ``all``);
                               judges it when it ends: a failure only if the test's own code
                               raised nothing
runtest_makereport             failure text instead of a traceback; the test's summary rides
                               on the report (so it crosses from xdist workers)
sessionfinish / terminal       the controller writes JSON and the baseline, prints the summary
=============================  ===============================================================

This is the only sqlaudit module that imports pytest; the rest lives in ``_pytest_settings``
(options), ``_pytest_policy`` (markers, verdicts, failure text), ``_pytest_fixture``,
``_pytest_session`` (summaries, JSON, terminal report) and ``_baseline`` (the file).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _pytest.python
import pytest

from sqlaudit._audit import audit
from sqlaudit.capture.callsite import stop_at
from sqlaudit.errors import AuditFailed, ConfigError
from sqlaudit.model.records import QueryRecord
from sqlaudit.pytest_plugin import baseline as _baseline
from sqlaudit.pytest_plugin import requests as client_hooks
from sqlaudit.pytest_plugin.ci import junit_properties
from sqlaudit.pytest_plugin.fixture import SqlauditFixture
from sqlaudit.pytest_plugin.policy import (
    Budget,
    SqlauditFailure,
    TestPolicy,
    Verdict,
    failure_text,
    judge,
    parse_budget,
    parse_sqlaudit_marker,
)
from sqlaudit.pytest_plugin.session import (
    Controller,
    SessionData,
    XdistController,
    baseline_note,
    summarize,
)
from sqlaudit.pytest_plugin.settings import INI, OPTIONS, Settings, resolve
from sqlaudit.pytest_plugin.unittest_fixtures import setup_outside_the_audit
from sqlaudit.report import AuditReport

__all__ = ["SqlauditFailure", "SqlauditFixture"]

_MARKERS = (
    "query_budget(n, *, select=None, writes=None, db_time_ms=None, reason=None): fail the "
    "test when its body issues more than n statements (transaction control not counted)",
    "no_queries: fail the test when its body issues any statement",
    "sqlaudit(allow=[kinds], **AuditConfig overrides): audit the test and fail it on "
    "findings, except the allowed kinds",
)
_SETTINGS = pytest.StashKey[Settings]()
_SESSION = pytest.StashKey[SessionData]()
_POLICY = pytest.StashKey[TestPolicy]()
_RUN = pytest.StashKey["_Run"]()


class _TestFailed(SqlauditFailure):
    """The audited part of a test failed its checks (shown without a traceback)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sqlaudit", "sqlaudit: SQL query budgets, N+1, transaction misuse")
    for flag, kwargs, text in OPTIONS:
        ini = flag.lstrip("-").replace("-", "_")
        group.addoption(flag, default=None, help=f"{text} (ini: {ini})", **kwargs)
    group.addoption(
        "--sqlaudit-update-baseline",
        nargs="?",
        const="all",
        choices=("tighten", "all"),
        default=None,
        help="rewrite the baseline: 'all' (the default) accepts this run's numbers, 'tighten' "
        "only lowers ceilings; put it after the test paths or write it with '='",
    )
    for name, kind, text in INI:
        if kind == "bool":
            parser.addini(name, text, type="bool", default=False)
        elif kind == "linelist":
            parser.addini(name, text, type="linelist", default=[])
        else:
            parser.addini(name, text, type="string", default="")


def _path(config: pytest.Config, option: str) -> tuple[Path | None, str]:
    """An option's path (relative to the invocation dir) or its ini key's (to the ini file)."""
    start = config.invocation_params.dir
    value = config.getoption(option)
    if value:
        return (start / value).resolve(), str(value)
    value = config.getini(option)
    if not value:
        return None, ""
    base = config.inipath.parent if config.inipath else config.rootpath
    path = (base / value).resolve()
    return path, os.path.relpath(path, start)


def _settings(config: pytest.Config) -> Settings:
    def get(name: str) -> Any:
        value = config.getoption(name, None)  # None for the ini-only keys
        if value not in (None, ""):
            return value
        try:
            return config.getini(name)
        except pytest.UsageError as exc:
            # Config.getini: "If the value read from the configuration file does not match the
            # registered type, a UsageError is raised" (only the "bool" keys can mismatch);
            # its text, "invalid truth value 'x'", names neither the key nor what is allowed.
            text, prefix = str(exc), "invalid truth value "
            got = f"got {text[len(prefix) :]}" if text.startswith(prefix) else text
            raise ConfigError(f"{name} must be true or false, {got}") from None

    update = config.getoption("sqlaudit_update_baseline")
    return resolve(get, lambda name: _path(config, name), update, config.rootpath)


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    # Call stacks end where pytest (or unittest, run by pytest) calls the test: the frames
    # above are the runner's, the same for every statement.
    stop_at(_pytest.python.pytest_pyfunc_call, *_unittest_callers())
    try:
        settings = _settings(config)
        baseline = _baseline.load(settings.baseline_path) if settings.baseline_path else None
    except (ConfigError, _baseline.BaselineError) as exc:
        raise pytest.UsageError(f"sqlaudit: {exc}") from None
    config.stash[_SETTINGS] = settings
    data = SessionData(settings, baseline)
    config.stash[_SESSION] = data
    if not hasattr(config, "workerinput"):
        # The controller under xdist, or the only process: collects, writes and prints (only
        # what was asked for: with markers alone, just the findings an allowlist let pass).
        # The xdist hooks are registered only when xdist is (pluggy rejects unknown hooks).
        config.pluginmanager.register(Controller(data), "sqlaudit-controller")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(XdistController(data), "sqlaudit-xdist")


def _policy(item: pytest.Item, settings: Settings) -> TestPolicy | None:
    budget = None
    for mark in item.iter_markers():  # closest first: a test's marker beats its module's
        if budget is None and mark.name == "query_budget":
            budget = parse_budget(mark.args, mark.kwargs, what="query_budget")
        elif budget is None and mark.name == "no_queries":
            if mark.args or mark.kwargs:
                raise ConfigError("no_queries takes no arguments; use query_budget(n) for n > 0")
            budget = Budget(0, declared_as="@pytest.mark.no_queries")
    config, allow = settings.base_config, frozenset[str]()
    marks = list(item.iter_markers("sqlaudit"))
    for mark in reversed(marks):
        allowed, config = parse_sqlaudit_marker(mark.args, mark.kwargs, config)
        allow |= allowed
    fixture = "sqlaudit" in getattr(item, "fixturenames", ())
    if not (settings.audit_all or budget or marks or fixture):
        return None
    return TestPolicy(config, budget, settings.fail_all or bool(marks), allow, settings.fail_kinds)


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:  # deselected tests still exist: their baseline entries are not stale
        items[0].config.stash[_SESSION].collected.update(item.nodeid for item in items)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Parse the markers of the items just collected; a bad one is a collection error (as an
    unknown marker is under ``--strict-markers``), also on xdist's workers."""
    report = yield
    settings = collector.config.stash[_SETTINGS]
    errors = []
    for node in report.result if report.passed else ():
        if isinstance(node, pytest.Item):
            try:
                policy = _policy(node, settings)
            except ConfigError as exc:
                errors.append(f"{node.nodeid}: {exc}")
                continue
            if policy is not None:
                node.stash[_POLICY] = policy
    if errors:
        report.outcome = "failed"
        report.longrepr = "sqlaudit: invalid marker\n  " + "\n  ".join(errors)
        report.result = []
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_SESSION].collected.update(item.nodeid for item in items)


@dataclass
class _Run:
    """One audited test: its open audit and, once judged, its summary for the report."""

    policy: TestPolicy
    auditor: audit | None = None
    report: AuditReport | None = None
    summary: dict[str, Any] | None = None

    def open(self, item: pytest.Item) -> None:
        self.auditor = audit(item.nodeid, self.policy.config, reporters=(), all_threads=True)
        # Each request through a test client is a unit of its own (``requests``).
        client_hooks.install()
        # Opened from a hook wrapper that is not on the stack while the test runs: the test's
        # call stacks end at the runner's call of the test function (``callsite.stop_at``).
        self.report = self.auditor._open(None)

    def close(self, item: pytest.Item, when: str, exc: BaseException | None) -> None:
        """End the audit; judge the test unless its own code raised ``exc``."""
        __tracebackhide__ = True
        auditor, report = self.auditor, self.report
        if auditor is None or report is None:
            return
        self.auditor = None
        settings = item.config.stash[_SETTINGS]
        auditor.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
        if exc is not None:
            verdict = Verdict()
            if not isinstance(exc, AuditFailed):  # those carry their own report
                item.add_report_section(when, "sqlaudit", report.render())
        else:
            data = item.config.stash.get(_SESSION, None)
            entries = data.baseline if data is not None else None
            verdict = judge(
                report,
                self.policy,
                settings.root,
                (entries or {}).get(item.nodeid),
                use_baseline=settings.baseline_path is not None,
                accept_all=settings.update == "all",
            )
        file, line, _ = item.location
        self.summary = summarize(
            item.nodeid,
            report,
            verdict,
            self.policy,
            settings,
            complete=exc is None,
            location=(file, (line or 0) + 1),
        )
        # Shown by --junitxml as the test case's <properties> (the record_property mechanism:
        # the teardown report copies the item's user_properties, and junitxml reads them there).
        item.user_properties.extend(junit_properties(self.summary))
        if verdict.failed:
            note = baseline_note(settings, item.nodeid, verdict)
            raise _TestFailed(report, failure_text(report, verdict, note))


def _wrap(item: pytest.Item, when: str, opens: bool, closes: bool) -> Generator[None, Any, Any]:
    """Shared body of the setup/call/teardown wrappers."""
    __tracebackhide__ = True
    run = item.stash.get(_RUN, None)
    if run is None:
        return (yield)
    if opens and run.auditor is None and run.summary is None:
        run.open(item)
    try:
        result = yield
    except BaseException as exc:
        run.close(item, when, exc)
        raise
    if closes:
        run.close(item, when, None)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    policy = item.stash.get(_POLICY, None)
    if policy is not None:
        item.stash[_RUN] = _Run(policy)
    scope = item.config.stash[_SETTINGS].scope
    return (yield from _wrap(item, "setup", opens=scope != "call", closes=False))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    scope = item.config.stash[_SETTINGS].scope
    if item.stash.get(_RUN, None) is None:
        return (yield)
    with setup_outside_the_audit(item, scope):
        return (yield from _wrap(item, "call", opens=True, closes=scope != "all"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _wrap(item, "teardown", opens=False, closes=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    run = item.stash.get(_RUN, None)
    if run is not None:
        if call.excinfo is not None and isinstance(call.excinfo.value, _TestFailed):
            report.longrepr = str(call.excinfo.value)
        if run.summary is not None:
            report.sqlaudit = run.summary  # type: ignore[attr-defined]  # reports take extras
            run.summary = None
        if call.when == "teardown":
            del item.stash[_RUN]  # a big suite must not keep every test's statements
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: tell the controller what it collected
        workeroutput["sqlaudit_collected"] = sorted(session.config.stash[_SESSION].collected)


def pytest_assertrepr_compare(op: str, left: object, right: object) -> list[str] | None:
    """``assert record == other``: pytest's own explanation drills into each differing field
    of a named tuple and prints its value, the SQL text with its inlined literals among them
    (issue 14, row 8). This one names the differing fields and prints no SQL text. Any other
    comparison is left to pytest."""
    if op != "==" or not isinstance(left, QueryRecord) or not isinstance(right, QueryRecord):
        return None
    differing = [
        name for name, a, b in zip(QueryRecord._fields, left, right, strict=True) if a != b
    ]
    return [
        f"{left!r} == {right!r}",
        f"Differing fields: {', '.join(differing)}",
        *(f"{name}: {left[i]!r} != {right[i]!r}" for i, name in _shown(differing)),
    ]


def _shown(differing: list[str]) -> list[tuple[int, str]]:
    """The differing fields whose values may be printed: all but the SQL text."""
    return [(QueryRecord._fields.index(name), name) for name in differing if name != "sql"]


@pytest.fixture(name="sqlaudit")
def sqlaudit_fixture(request: pytest.FixtureRequest) -> SqlauditFixture:
    """Budgets for blocks (``budget``, ``no_queries``, ``assert_num_queries``...), the N+1
    proof ``assert_constant_queries`` and ``report``, the test's audit so far."""
    run = request.node.stash.get(_RUN, None)
    config = run.policy.config if run else request.config.stash[_SETTINGS].base_config
    return SqlauditFixture(request.node.nodeid, config, lambda: run.report if run else None)


def _unittest_callers() -> list[Any]:
    """unittest's ``TestCase`` methods that call a test's setUp, test method and tearDown
    (Python 3.8+; getattr keeps older or patched versions harmless)."""
    import unittest

    names = ("_callSetUp", "_callTestMethod", "_callTearDown", "_callCleanup")
    return [f for name in names if (f := getattr(unittest.TestCase, name, None)) is not None]
