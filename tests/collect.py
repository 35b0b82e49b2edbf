"""``Collect``: a reporter that keeps every closed report, for tests that drive a middleware
or a service and then look at what was audited."""

from __future__ import annotations

import threading

from sqlaudit import AuditReport


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
