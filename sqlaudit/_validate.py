"""Every argument check of sqlaudit's public API, in one place.

Each check names the setting, the value received and what is allowed, in one form:
``ConfigError("<setting> must be <allowed>, got <value>")``. Checks run when an object is
configured (constructors, ``instrument``, marker parsing), never at the first request.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlaudit.errors import ConfigError

__all__ = [
    "check_bool",
    "check_callable",
    "check_int",
    "check_items",
    "check_ms",
    "check_ratio",
    "check_str",
]

T = TypeVar("T")


def check_bool(setting: str, value: object) -> bool:
    """``value`` when it is True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{setting} must be True or False, got {value!r}")
    return value


def check_int(setting: str, value: Any, minimum: int, *, optional: bool = False) -> Any:
    """``value`` when it is an int >= ``minimum`` (or None when ``optional``)."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        none = " or None" if optional else ""
        raise ConfigError(f"{setting} must be an int >= {minimum}{none}, got {value!r}")
    return value


def check_ms(setting: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` when it is a finite number of milliseconds >= 0 (or None when ``optional``)."""
    if optional and value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        none = " or None" if optional else ""
        raise ConfigError(
            f"{setting} must be a finite number of milliseconds >= 0{none}, got {value!r}"
        )
    return value


def check_ratio(setting: str, value: Any) -> Any:
    """``value`` when it is a number in (0, 1], or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{setting} must be a number in (0, 1] or None, got {value!r}")
    return value


def check_str(setting: str, value: Any, *, optional: bool = False) -> Any:
    """``value`` when it is a str (or None when ``optional``)."""
    if optional and value is None:
        return None
    if not isinstance(value, str):
        none = " or None" if optional else ""
        raise ConfigError(f"{setting} must be a str{none}, got {value!r}")
    return value


def check_callable(setting: str, value: T, what: str = "a callable") -> T:
    """``value`` when it is callable."""
    if not callable(value):
        raise ConfigError(f"{setting} must be {what}, got {value!r}")
    return value


def check_items(
    value: object, setting: str, allowed: str, is_item: Callable[[object], bool], item: str
) -> tuple[object, ...]:
    """``value`` as a tuple when it is an iterable (not a str) whose every element passes
    ``is_item``; else ``ConfigError`` naming ``setting`` (and the element's index) with
    ``allowed`` (what the whole may be) or ``item`` (what each element may be)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{setting} must be {allowed}, got {value!r}")
    items = tuple(value)
    for i, element in enumerate(items):
        if not is_item(element):
            raise ConfigError(f"{setting}[{i}] must be {item}, got {element!r}")
    return items
