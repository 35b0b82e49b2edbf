"""Log reporter: one record per finding on logger ``sqlaudit``."""

from __future__ import annotations

import functools
import logging
import sys
from itertools import repeat
from typing import TYPE_CHECKING, Any

from sqlaudit.errors import ConfigError
from sqlaudit.model.findings import Severity
from sqlaudit.report.text import format_site

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.ERROR: logging.ERROR,
}

#: ``log`` and ``info`` methods that return at once when ``isEnabledFor(level)`` is false.
_LOG_METHODS = (logging.Logger.log, logging.LoggerAdapter.log)
_INFO_METHODS = (logging.Logger.info, logging.LoggerAdapter.info)


def _always(level: int) -> bool:
    return True


#: What ``Logger.log`` runs past its level check before ``makeRecord``: ``LogReporter`` makes
#: the record itself only while these are the stdlib's, on the logger's class and instance.
_STDLIB_NAMES = ("log", "_log", "findCaller")
_STDLIB = tuple(getattr(logging.Logger, name) for name in _STDLIB_NAMES)


def _direct(logger: object) -> bool:
    """Whether a record logged through ``logger.log`` comes from the stdlib's ``_log``: caller
    lookup (``findCaller``) included, while ``logging._srcfile`` is set (its default; None
    turns the lookup off; private to ``logging``: read with a fallback)."""
    if not getattr(logging, "_srcfile", None):
        return False
    # Read in C: once per unit with findings, as cheap as one attribute lookup each.
    if tuple(map(getattr, repeat(type(logger)), _STDLIB_NAMES, repeat(None))) != _STDLIB:
        return False
    # A Logger's own methods, unless patched on the instance (``mock.patch.object``).
    return vars(logger).keys().isdisjoint(_STDLIB_NAMES)


def _record(logger: logging.Logger, level: int, msg: str, *args: object, extra: Any) -> None:
    """``logger.log(level, msg, *args, extra=extra)`` past its level check, for a logger
    whose ``log`` is the stdlib's (``_direct``): the same record, the same handling, without
    ``findCaller``'s walk of the stack (~200 bytecodes per record, issue 20). The caller
    fields are those it finds: the frame that called here (``LogReporter.report``), at the
    line of the call."""
    caller = sys._getframe(1)
    code = caller.f_code
    record = logger.makeRecord(
        logger.name,
        level,
        code.co_filename,
        caller.f_lineno,
        msg,
        args,
        None,
        code.co_name,
        extra,
        None,
    )
    logger.handle(record)


class LogReporter:
    """Logs each finding (diagnosis, location, fix) at a level matching its severity.

    Records carry ``extra`` fields ``sqlaudit_unit``, ``sqlaudit_kind`` and
    ``sqlaudit_fingerprint`` for structured log pipelines; never SQL values.

    ``logger`` is a logger name or a :class:`logging.Logger` (or anything with its ``log`` and
    ``info`` methods, e.g. a ``LoggerAdapter``); ``summary`` is True or False.
    """

    def __init__(self, logger: logging.Logger | str = "sqlaudit", summary: bool = False):
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not (
            callable(getattr(logger, "log", None)) and callable(getattr(logger, "info", None))
        ):
            raise ConfigError(
                f"logger must be a logging.Logger or a logger name (str), got {logger!r}"
            )
        if not isinstance(summary, bool):
            raise ConfigError(f"summary must be True or False, got {summary!r}")
        self.logger = logger
        #: Also log one INFO line per unit with its statement count and DB time.
        self.summary = summary

    def report(self, report: AuditReport) -> None:
        logger = self.logger
        # A level the logger would drop: nothing formatted for it (issue 20). Asked only of
        # the stdlib's methods, which ask ``isEnabledFor`` first themselves.
        if self.summary and (
            getattr(type(logger), "info", None) not in _INFO_METHODS
            or logger.isEnabledFor(logging.INFO)
        ):
            logger.info(
                "%s: %d statements, %.1f ms DB time, %d findings",
                report.name,
                report.query_count,
                report.db_time_ms,
                len(report.findings),
                extra={"sqlaudit_unit": report.name},
            )
        findings = report.findings
        if not findings:
            return
        enabled = (
            logger.isEnabledFor if getattr(type(logger), "log", None) in _LOG_METHODS else _always
        )
        # One call below for both: a record's lineno is that of the call either way.
        emit = functools.partial(_record, logger) if _direct(logger) else logger.log
        for finding in findings:
            level = _LEVELS[finding.severity]
            if not enabled(level):
                continue
            where = f" at {format_site(finding.location)}" if finding.location else ""
            emit(
                level,
                "%s: %s%s; fix: %s",
                report.name,
                finding.headline,
                where,
                finding.fix,
                extra={
                    "sqlaudit_unit": report.name,
                    "sqlaudit_kind": finding.kind,
                    "sqlaudit_fingerprint": finding.fingerprint,
                },
            )
