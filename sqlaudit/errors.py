"""Exceptions raised by sqlaudit's public API."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["AuditFailed", "ConfigError"]


class ConfigError(ValueError):
    """A setting, argument or marker was given a value sqlaudit cannot use.

    The message names the setting, the value received and what is allowed, e.g.
    ``max_queries must be an int >= 0 or None, got -1``.
    """


class AuditFailed(AssertionError):  # noqa: N818 - public name fixed by DESIGN
    """Raised when an audit's policy is ``"raise"`` and a finding reached the fail severity.

    It subclasses :class:`AssertionError` so that test runners report it as a failure, not an
    error. ``report`` is the complete :class:`~sqlaudit.AuditReport` of the unit of work.
    """

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__(report.render())
