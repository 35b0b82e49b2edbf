"""Every argument check of sqlaudit's public API, in one place.

Each check names the setting, the value received and what is allowed, in one form:
``ConfigError("<setting> must be <allowed>, got <value>")``. Checks run when an object is
configured (constructors, ``instrument``, marker parsing), never at the first request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from sqlaudit.errors import ConfigError

__all__ = [
    "check_bool",
    "check_budgets",
    "check_callable",
    "check_choice",
    "check_globs",
    "check_header_name",
    "check_int",
    "check_items",
    "check_ms",
    "check_names",
    "check_path",
    "check_patterns",
    "check_provider",
    "check_rate",
    "check_ratio",
    "check_regexes",
    "check_relationships",
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


def check_rate(setting: str, value: Any) -> float:
    """``value`` as a float when it is a number from 0 to 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{setting} must be a number from 0 to 1, got {value!r}")
    return float(value)


def check_choice(setting: str, value: Any, allowed: Iterable[str]) -> Any:
    """``value`` when it is one of ``allowed``."""
    choices = tuple(allowed)
    if value not in choices:
        raise ConfigError(
            f"{setting} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return value


def check_names(setting: str, value: Any, allowed: frozenset[str], what: str) -> frozenset[str]:
    """An iterable of names (a single str counts as one) as a frozenset, each in ``allowed``;
    ``what`` names one of them in messages (e.g. "finding kind")."""
    if isinstance(value, str):
        value = (value,)
    try:
        names = frozenset(value)
    except TypeError:
        raise ConfigError(f"{setting} must be an iterable of {what}s, got {value!r}") from None
    unknown = sorted(str(n) for n in names - allowed)
    if unknown:
        raise ConfigError(
            f"{setting} has unknown {what}(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )
    return names


def check_provider(setting: str, value: object, method: str) -> None:
    """``value`` is None or an OpenTelemetry provider (has ``method``)."""
    if value is not None and not callable(getattr(value, method, None)):
        raise ConfigError(
            f"{setting} must be an OpenTelemetry provider (with a {method}() method) or None, "
            f"got {value!r}"
        )


def check_path(setting: str, value: object) -> str:
    """A request path: starts with "/", no query string or fragment."""
    if not isinstance(value, str) or not value.startswith("/") or any(c in value for c in "?#"):
        raise ConfigError(
            f'{setting} must be a path starting with "/", without "?" or "#", got {value!r}'
        )
    return value


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch


def check_header_name(setting: str, value: object, default: str) -> str | None:
    """True (``default``), False (None) or an HTTP header name (RFC 9110 token)."""
    if value is True:
        return default
    if value is False:
        return None
    if not isinstance(value, str) or not _HEADER_NAME(value):
        raise ConfigError(
            f"{setting} must be True, False or an HTTP header name like {default!r}, got {value!r}"
        )
    return value


# What budget keys and exclude patterns are matched against: a request path (always starting
# with "/"), or "METHOD /path" with one space. A pattern of another shape never matches, so it
# is refused when configured rather than ignored at every request.
_PATH_PATTERN = re.compile(r"[/*?\[].*").fullmatch
_METHOD_PATTERN = re.compile(r"[^\s/]+ [/*?\[].*").fullmatch
_PATTERNS = 'paths or globs like "/health" or "GET /static/*"'
_BUDGET_KEYS = '"METHOD /route" or a glob like "* /api/*"'
# Job names (Celery task names, RQ function paths) never contain whitespace.
_JOB_PATTERN = re.compile(r"\S+").fullmatch


def _request_pattern(pattern: str) -> object:
    return _METHOD_PATTERN(pattern) if " " in pattern else _PATH_PATTERN(pattern)


def check_patterns(setting: str, value: object, *, jobs: bool = False) -> tuple[str, ...]:
    """Paths or globs like ``"/health"`` or ``"GET /static/*"`` (a single str counts as one);
    with ``jobs``, job names or globs like ``"reports.*"``."""
    allowed = 'job names or globs like "reports.*"' if jobs else _PATTERNS
    shape = _JOB_PATTERN if jobs else _request_pattern
    if isinstance(value, str):
        value = (value,)
    elif not isinstance(value, Iterable):
        raise ConfigError(f"{setting} must be an iterable of {allowed}, got {value!r}")
    patterns: tuple[object, ...] = tuple(value)
    for pattern in patterns:
        if not isinstance(pattern, str) or not shape(pattern):
            raise ConfigError(f"{setting} must be {allowed}, got {pattern!r}")
    return tuple(str(p) for p in patterns)


def check_budgets(
    setting: str, value: object, *, jobs: bool = False
) -> tuple[dict[str, int], tuple[tuple[str, int], ...]]:
    """``{"GET /streams": 12, "* /admin/*": 50}`` as (exact names, globs in order); with
    ``jobs``, job names or globs: ``{"reports.nightly": 500, "mail.*": 5}``."""
    if value is None:
        return {}, ()
    if not isinstance(value, Mapping):
        raise ConfigError(
            f'{setting} must be a mapping like {{"GET /streams": 12}}, got {type(value).__name__}'
        )
    exact: dict[str, int] = {}
    patterns: list[tuple[str, int]] = []
    items: Iterable[tuple[object, object]] = value.items()
    for key, budget in items:
        if not isinstance(key, str) or not (_JOB_PATTERN if jobs else _METHOD_PATTERN)(key):
            allowed = 'a job name or a glob like "mail.*"' if jobs else _BUDGET_KEYS
            raise ConfigError(f"{setting} keys must be {allowed}, got {key!r}")
        n: int = check_int(f"{setting}[{key!r}]", budget, 0)
        if any(c in key for c in "*?["):
            patterns.append((key, n))
        else:
            exact[key] = n
    return exact, tuple(patterns)


def _strings(setting: str, value: object, allowed: str) -> tuple[str, ...]:
    """``value`` as a tuple of non-empty strs (a single str counts as one), order kept,
    duplicates dropped."""
    if isinstance(value, str):
        value = (value,)
    elif isinstance(value, bytes) or not isinstance(value, Iterable):
        raise ConfigError(f"{setting} must be an iterable of {allowed}, got {value!r}")
    items: tuple[object, ...] = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise ConfigError(f"{setting} must be {allowed}, got {item!r}")
    return tuple(dict.fromkeys(str(item).strip() for item in items))


# "User.comments", "Legacy*.*", "*.audit_log": a class and an attribute, either may be a glob.
_RELATIONSHIP = re.compile(r"[\w*?\[\]!]+\.[\w*?\[\]!]+").fullmatch


def check_relationships(value: object, setting: str = "allow_relationships") -> frozenset[str]:
    """Relationships or attributes like ``"User.comments"`` (globs allowed)."""
    allowed = 'relationships like "User.comments" (globs like "Legacy*.*" allowed)'
    items = _strings(setting, value, allowed)
    for item in items:
        if not _RELATIONSHIP(item):
            raise ConfigError(f"{setting} must be {allowed}, got {item!r}")
    return frozenset(items)


def check_globs(setting: str, value: object) -> tuple[str, ...]:
    """File path globs like ``"app/legacy/*"`` (``/`` separated, relative to the working
    directory, or absolute)."""
    return _strings(setting, value, 'path globs like "app/legacy/*" or "*/reports.py"')


def check_regexes(setting: str, value: object) -> tuple[str, ...]:
    """Regular expressions (compiled here once, so a typo fails when configured)."""
    items = _strings(setting, value, r'regular expressions like "FROM audit_log\b"')
    for item in items:
        try:
            re.compile(item)
        except re.error as exc:
            raise ConfigError(
                f"{setting} must be valid regular expressions, got {item!r} ({exc})"
            ) from None
    return items
