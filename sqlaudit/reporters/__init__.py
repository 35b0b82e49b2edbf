"""Reporters: where a closed unit's report goes (logs, text, JSON, OpenTelemetry...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from sqlaudit._validate import check_items
from sqlaudit.errors import ConfigError
from sqlaudit.reporters.log import LogReporter

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["LogReporter", "Reporter", "check_reporters"]


class Reporter(Protocol):
    """Extension point: receives every closed report. Must not raise (errors are contained)."""

    def report(self, report: AuditReport) -> None:  # pragma: no cover - protocol
        """Handle ``report`` after its findings are computed."""
        ...


def check_reporters(reporters: object, *, setting: str = "reporters") -> tuple[Reporter, ...]:
    """``reporters`` as a tuple, each with a ``report(report)`` method; else ConfigError.

    A single reporter, a str or a non-iterable is refused as a whole: iterating a str would
    blame its first character, and a lone reporter is almost always a forgotten list.
    """
    allowed = "an iterable of reporters (objects with a report(report) method)"
    if callable(getattr(reporters, "report", None)):
        raise ConfigError(
            f"{setting} must be {allowed}, got the single reporter {reporters!r}; "
            f"pass it in a list: {setting}=[reporter]"
        )
    items = check_items(
        reporters,
        setting,
        allowed,
        lambda item: callable(getattr(item, "report", None)),
        "a reporter (an object with a report(report) method)",
    )
    return cast("tuple[Reporter, ...]", items)
