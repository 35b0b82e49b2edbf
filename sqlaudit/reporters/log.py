"""Log reporter: one record per finding on logger ``sqlaudit``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlaudit._findings import Severity

if TYPE_CHECKING:
    from sqlaudit._scope import AuditReport

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
}


class LogReporter:
    """Logs each finding (diagnosis, location, fix) at a level matching its severity.

    Records carry ``extra`` fields ``sqlaudit_unit``, ``sqlaudit_kind`` and
    ``sqlaudit_fingerprint`` for structured log pipelines; never SQL values.
    """

    def __init__(self, logger: logging.Logger | str = "sqlaudit", summary: bool = False):
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        #: Also log one INFO line per unit with its statement count and DB time.
        self.summary = summary

    def report(self, report: AuditReport) -> None:
        if self.summary:
            self.logger.info(
                "%s: %d statements, %.1f ms DB time, %d findings",
                report.name,
                report.query_count,
                report.db_time_ms,
                len(report.findings),
                extra={"sqlaudit_unit": report.name},
            )
        for finding in report.findings:
            where = f" at {finding.location}" if finding.location else ""
            self.logger.log(
                _LEVELS[finding.severity],
                "%s: %s%s; fix: %s",
                report.name,
                finding.message,
                where,
                finding.fix,
                extra={
                    "sqlaudit_unit": report.name,
                    "sqlaudit_kind": finding.kind,
                    "sqlaudit_fingerprint": finding.fingerprint,
                },
            )
