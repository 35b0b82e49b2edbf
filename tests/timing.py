"""Time in sqlaudit's own tests: the one place that keeps the machine's speed out of verdicts.

A verdict that depends on how fast the machine runs (``slow_query``, ``long_transaction``, the
``min_group_ms`` floor of ``AuditConfig.for_production()``, a ``max_db_time_ms`` budget) is
asserted only by a test that controls time itself, with the ``clock`` fixture (conftest):
durations and gaps are then exactly what the test says. Every other test that asserts an exact
set of findings (or none) takes its settings from here:

* ``UNTIMED``: ``AuditConfig`` overrides that switch every timing threshold off, for
  ``audit(..., **UNTIMED)``, ``AuditConfig(**UNTIMED)``, ``config.replace(**UNTIMED)``,
  ``AuditConfig.for_production(**UNTIMED)`` and the middlewares' ``config=``;
* ``untimed(config)``: the same applied to a config;
* ``kinds(report_or_findings)``: the kinds of the findings at warning or above, timing kinds
  left out (for reports whose config the test does not choose, e.g. the demo's).

``SQLAUDIT_TEST_CLOCK=slow`` runs the suite on a clock that moves ten seconds at every read:
every statement is "slow" and every transaction "long". A test that passes on the real clock
and fails there asserts a verdict that a loaded machine can change (conftest installs it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlaudit import AuditConfig, Finding, Severity

#: Finding kinds whose verdict depends on the machine's speed.
TIMING_KINDS = frozenset({"slow_query", "long_transaction"})

#: AuditConfig overrides that switch every timing threshold off.
UNTIMED: dict[str, Any] = {
    "slow_query_ms": None,
    "long_transaction_ms": None,
    "idle_in_transaction_ms": None,
    "max_db_time_ms": None,
    "min_group_ms": 0.0,
}


def untimed(config: AuditConfig | None = None) -> AuditConfig:
    """``config`` (default ``AuditConfig()``) with every timing threshold off."""
    return (config or AuditConfig()).replace(**UNTIMED)


def kinds(found: Any, *, timing: bool = False, severity: Severity = Severity.WARNING) -> list[str]:
    """Sorted kinds of the findings of a report (or an iterable of findings) at ``severity`` or
    above; timing kinds are left out unless ``timing`` (for a test that controls the clock, or
    whose timing thresholds are off)."""
    findings: Iterable[Finding] = getattr(found, "findings", found)
    return sorted(
        f.kind
        for f in findings
        if f.severity >= severity and (timing or f.kind not in TIMING_KINDS)
    )


class Clock:
    """A clock for sqlaudit's timings: ``step`` seconds pass at every read, plus what the test
    adds with ``advance``."""

    def __init__(self, step: float = 0.0) -> None:
        # Starts at the real clock's reading, so that timestamps derived from it (OpenTelemetry
        # converts perf_counter readings to the epoch) stay near the present.
        self.now = time.perf_counter()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (e.g. an idle gap inside a transaction)."""
        self.now += seconds


def _clock_readers() -> list[Any]:
    """Every imported sqlaudit module that reads ``perf_counter`` (a module global: sqlaudit
    reads time nowhere else, which ``test_timing.py`` checks)."""
    return [
        module
        for name, module in list(sys.modules.items())
        if (name == "sqlaudit" or name.startswith("sqlaudit."))
        and getattr(module, "perf_counter", None) is not None
    ]


_installed: list[Clock] = []


@contextmanager
def installed(clock: Clock) -> Iterator[Clock]:
    """Make sqlaudit read ``clock`` instead of ``time.perf_counter`` inside the block."""
    modules = _clock_readers()
    saved = [(module, module.perf_counter) for module in modules]
    for module in modules:
        module.perf_counter = clock
    _installed.append(clock)
    try:
        yield clock
    finally:
        _installed.pop()
        for module, original in saved:
            module.perf_counter = original


def active() -> Clock:
    """The clock installed innermost (inner pytest runs of the plugin tests advance it)."""
    return _installed[-1]
