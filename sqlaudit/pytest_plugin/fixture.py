"""The ``sqlaudit`` pytest fixture: the test's report, budgets for blocks, the N+1 proof.

No pytest import: the plugin builds :class:`SqlauditFixture` and hands it to the test. Blocks
are nested ``sqlaudit.audit(..., all_threads=True)`` scopes, so statements from threads the
block starts (a FastAPI ``TestClient``) count, and they roll up into the test's own audit.
Failures are :class:`~sqlaudit.AuditFailed` (an ``AssertionError``) with the diagnosis first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

from sqlaudit._audit import audit, ignore
from sqlaudit._internal import contain
from sqlaudit._validate import check_int
from sqlaudit.detectors import DEFAULT_DETECTORS
from sqlaudit.errors import ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.findings import KINDS, Finding
from sqlaudit.model.records import CallSite, StatementKind
from sqlaudit.pytest_plugin.policy import (
    Budget,
    SqlauditFailure,
    Verdict,
    failure_text,
    parse_budget,
)
from sqlaudit.report import AuditReport
from sqlaudit.report.text import format_site
from sqlaudit.sql.fingerprint import elide, fingerprint

__all__ = ["SqlauditFixture"]

Check = Callable[[AuditReport], list[str]]


class _Block:
    """``with`` / ``async with`` block audited as one unit and checked when it exits."""

    def __init__(self, name: str, config: AuditConfig, check: Check) -> None:
        self._audit = audit(name, config, reporters=(), all_threads=True)
        self._check = check

    def __enter__(self) -> AuditReport:
        return self._audit.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self._audit.__exit__(exc_type, exc, tb)
        report = self._audit.report
        if exc is None and report is not None:
            problems = self._check(report)
            if problems:
                raise SqlauditFailure(report, failure_text(report, Verdict(budget=problems)))

    async def __aenter__(self) -> AuditReport:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        self.__exit__(exc_type, exc, tb)


class SqlauditFixture:
    """What the ``sqlaudit`` fixture gives a test.

    ``report`` is the test's audit so far; ``budget(n)``, ``no_queries()``,
    ``assert_num_queries(n)`` and ``assert_max_queries(n)`` check one block;
    ``assert_constant_queries(populate, action)`` proves the absence of N+1.
    """

    def __init__(
        self, name: str, config: AuditConfig, current: Callable[[], AuditReport | None]
    ) -> None:
        self._name = name
        self._config = config
        self._current = current

    @property
    def report(self) -> AuditReport:
        """The test's audit so far (statements, counts, ``render()``); findings come at its end."""
        report = self._current()
        if report is None:
            raise RuntimeError(
                "sqlaudit.report is not open yet: with sqlaudit_scope=call (the default) the "
                "test's audit starts with the test function, after fixture setup"
            )
        return report

    def budget(
        self,
        n: int,
        *,
        select: int | None = None,
        writes: int | None = None,
        db_time_ms: float | None = None,
        reason: str | None = None,
    ) -> _Block:
        """Fail if the block issues more than ``n`` statements (and the other ceilings)."""
        kwargs = {"select": select, "writes": writes, "db_time_ms": db_time_ms, "reason": reason}
        budget = parse_budget((n,), kwargs, what="budget")
        budget = dataclasses.replace(budget, declared_as="sqlaudit.budget({n})")
        return _Block(f"{self._name} [budget {n}]", self._config, budget.problems)

    def no_queries(self) -> _Block:
        """Fail if the block issues any statement (transaction control excepted)."""
        budget = Budget(0, declared_as="sqlaudit.no_queries()")
        return _Block(f"{self._name} [no queries]", self._config, budget.problems)

    def assert_num_queries(self, num: int, *, info: str | None = None) -> _Block:
        """pytest-django's ``django_assert_num_queries``: exactly ``num`` statements."""
        return self._django(num, info, exact=True)

    def assert_max_queries(self, num: int, *, info: str | None = None) -> _Block:
        """pytest-django's ``django_assert_max_num_queries``: at most ``num`` statements."""
        return self._django(num, info, exact=False)

    def _django(self, num: int, info: str | None, exact: bool) -> _Block:
        check_int("num", num, 0)
        if info is not None and not isinstance(info, str):
            raise ConfigError(f"info must be a str or None, got {info!r}")

        def check(report: AuditReport) -> list[str]:
            done = report.query_count
            if done == num or (not exact and done < num):
                return []
            expected = f"{num} queries" if exact else f"{num} queries or less"
            extra = f"\n{info}" if info else ""
            return [
                f"Expected to perform {expected} but {done} were done "
                f"(transaction control not counted){extra}"
            ]

        label = "exactly" if exact else "at most"
        return _Block(f"{self._name} [{label} {num} queries]", self._config, check)

    def assert_constant_queries(
        self,
        populate: Callable[[int], Any],
        action: Callable[[], Any],
        scales: Sequence[int] = (2, 4),
    ) -> int:
        """Fail if ``action()`` issues more statements when there is more data (an N+1).

        For each scale, ``populate(scale)`` grows the data, then ``action()`` runs in its own
        audit. Only the first run of ``action`` counts towards the test's budgets and findings;
        ``populate`` and the later runs are suppressed (``sqlaudit.ignore``) in this thread.
        Returns the statement count of one run.
        """
        __tracebackhide__ = True
        # All checked before ``populate`` first runs: a bad argument must not leave data behind.
        for name, fn in (("populate", populate), ("action", action)):
            if not callable(fn):
                raise ConfigError(f"{name} must be a callable, got {fn!r}")
        scales = _check_scales(scales)
        runs: list[AuditReport] = []
        for i, scale in enumerate(scales):
            with ignore(*KINDS):
                populate(scale)
            quiet = ignore(*KINDS) if i else contextlib.nullcontext()
            name = f"{self._name} [scale {scale}]"
            with quiet, audit(name, self._config, reporters=(), all_threads=True) as run:
                action()
            runs.append(run)
        counts = [r.query_count for r in runs]
        if all(c <= counts[0] for c in counts):
            return counts[0]
        first, last = runs[0], runs[-1]
        shown = ", ".join(f"{s}: {c}" for s, c in zip(scales, counts, strict=True))
        lines = [f"statement count grows with the data (scale: statements {shown})"]
        lines += _growth(first, last)
        lines += [f"{f.message}; fix: {f.fix}" for f in _diagnose(last)]
        raise SqlauditFailure(last, "\n".join(lines))


def _check_scales(scales: Sequence[int]) -> tuple[int, ...]:
    given: object = scales  # typed as declared, checked at run time
    values: tuple[Any, ...] = tuple(given) if isinstance(given, Iterable) else ()
    if (
        len(values) < 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in values)
        or any(a >= b for a, b in itertools.pairwise(values))
    ):
        raise ConfigError(f"scales must be >= 2 increasing ints >= 0, got {scales!r}")
    return values


def _shapes(report: AuditReport) -> dict[tuple[str, CallSite | None], int]:
    shapes: dict[tuple[str, CallSite | None], int] = {}
    for record in report.statements:
        if record.kind != StatementKind.TRANSACTION:
            key = (fingerprint(record.sql, record.dialect), record.callsite)
            shapes[key] = shapes.get(key, 0) + 1
    return shapes


def _growth(first: AuditReport, last: AuditReport) -> list[str]:
    """The statement shapes issued more often at the largest scale than at the smallest, with
    their call sites: the loop to fix."""
    before = _shapes(first)
    lines = []
    for (shape, site), n in _shapes(last).items():
        old = before.get((shape, site), 0)
        if n > old:
            lines.append(f"  {old}x -> {n}x  {elide(shape, 90)}  at {format_site(site)}")
    return lines


def _diagnose(report: AuditReport) -> list[Finding]:
    """Findings of the largest run, computed on its statements despite the suppression."""
    findings: list[Finding] = []
    for detector in DEFAULT_DETECTORS:
        if detector.kind in ("query_budget", "slow_query"):
            continue
        try:
            unit = report.snapshot()
            findings.extend(detector.detect(unit, unit.statements))
        except Exception as exc:
            contain(f"detector {detector.kind}", exc)
    return findings
