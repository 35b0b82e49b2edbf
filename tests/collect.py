"""``Collect``: a reporter that keeps every closed report, for tests that drive a middleware
or a service and then look at what was audited; ``every_output``: middleware options that
turn every output on."""

from __future__ import annotations

import threading
from typing import Any

from timing import untimed

from sqlaudit import AuditReport
from sqlaudit.reporters import Reporter


def every_output(budgets: dict[str, int], reporter: Reporter) -> dict[str, Any]:
    """Keyword arguments for ``WSGIAuditMiddleware`` / ``ASGIAuditMiddleware`` with every
    output on (budget findings, the statement-count header, Server-Timing, the development
    page at ``/_sqlaudit`` with EXPLAIN plans) and ``reporter`` receiving each closed report."""
    return {
        "config": untimed(),
        "budgets": budgets,
        "header": True,
        "server_timing": True,
        "dev_page": "/_sqlaudit",
        "explain": True,
        "reporters": [reporter],
        "on_finding": "ignore",  # the reporter alone: "log" adds a record per finding
    }


class Collect:
    """A reporter keeping every closed report (thread-safe)."""

    def __init__(self) -> None:
        self.reports: list[AuditReport] = []
        self._lock = threading.Lock()

    def report(self, report: AuditReport) -> None:
        with self._lock:
            self.reports.append(report)

    def named(self, name: str) -> AuditReport:
        """The one report named ``name`` (fails if there are none or several)."""
        [report] = [r for r in self.reports if r.name == name]
        return report

    def last(self, name: str) -> AuditReport:
        """The latest report named ``name``."""
        return [r for r in self.reports if r.name == name][-1]
