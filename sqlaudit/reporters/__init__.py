"""Reporters: where a closed unit's report goes (logs, text, JSON, OpenTelemetry...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sqlaudit.reporters.log import LogReporter

if TYPE_CHECKING:
    from sqlaudit._scope import AuditReport

__all__ = ["LogReporter", "Reporter"]


class Reporter(Protocol):
    """Extension point: receives every closed report. Must not raise (errors are contained)."""

    def report(self, report: AuditReport) -> None:  # pragma: no cover - protocol
        """Handle ``report`` after its findings are computed."""
        ...
