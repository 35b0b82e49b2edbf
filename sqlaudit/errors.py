"""Exceptions raised by sqlaudit's public API."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlaudit.capture.scope import AuditReport

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


def check_items(
    value: object, setting: str, allowed: str, is_item: Callable[[object], bool], item: str
) -> tuple[object, ...]:
    """``value`` as a tuple when it is an iterable (not a str) whose every element passes
    ``is_item``; else ``ConfigError`` naming ``setting`` (and the element's index) with
    ``allowed`` (what the whole may be) or ``item`` (what each element may be). Internal."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{setting} must be {allowed}, got {value!r}")
    items = tuple(value)
    for i, element in enumerate(items):
        if not is_item(element):
            raise ConfigError(f"{setting}[{i}] must be {item}, got {element!r}")
    return items
