"""The middlewares' options: declared once (``MiddlewareOptions``), validated once (``Options``).

``WSGIAuditMiddleware(app, config, **options)`` and ``ASGIAuditMiddleware(app, config,
**options)`` take exactly these keywords; a bad value or an unknown keyword raises
``ConfigError`` when the middleware is built, never at the first request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from sqlaudit._validate import (
    check_bool,
    check_budgets,
    check_choice,
    check_header_name,
    check_int,
    check_path,
    check_patterns,
    check_rate,
)
from sqlaudit.detectors import check_detectors
from sqlaudit.errors import ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.reporters import check_reporters

if TYPE_CHECKING:
    from sqlaudit.detectors import Detector
    from sqlaudit.model.config import OnFinding
    from sqlaudit.reporters import Reporter

__all__ = ["DEFAULT_HEADER", "DEVELOPMENT_OPTIONS", "MODES", "MiddlewareOptions", "Mode", "Options"]

Mode = Literal["production", "development"]

#: Header name used when ``header=True``.
DEFAULT_HEADER = "X-SQL-Queries"


class MiddlewareOptions(TypedDict, total=False):
    """The keyword options of both middlewares (all optional).

    * ``budgets``: ``max_queries`` per route, ``{"GET /streams": 12, "* /admin/*": 50}``;
      exact names first, then globs (``fnmatch``) in order.
    * ``sample_rate``: fraction of requests audited in full (head sampling, 0 to 1; default 1).
    * ``exclude``: paths or globs never audited (``"/health"``, ``"GET /static/*"``).
    * ``on_finding``: ``"log"``, ``"raise"`` (development: ``AuditFailed`` once the response is
      complete, unless the application raised itself) or ``"ignore"``; default: the config's.
    * ``reporters`` (default: log findings), ``detectors`` (default: all).
    * ``header``: ``True`` (``X-SQL-Queries``) or a header name: the statement count and, for
      sampled requests, the finding kinds, e.g. ``12; findings="n_plus_one"``.
    * ``server_timing``: add ``Server-Timing: db;dur=3.1;desc="12 SQL statements"``.
    * ``dev_page``: a path (``"/_sqlaudit"``) serving an HTML page of the last
      ``dev_page_size`` (default 50) requests. Development only.
    * ``explain``: ``True`` to show on the development page the plans of the SELECTs named by
      slow-query and N+1 findings, asked for after the request on a separate connection of
      the same engine (bind values kept in memory for that only, then dropped). Off by
      default, also in ``mode="development"``; needs ``dev_page``. Development only.
    * ``mode``: ``"production"`` (default: ``AuditConfig.for_production()``, nothing added to
      responses) or ``"development"``: ``AuditConfig.for_development()`` (every finding from
      its first repeats), ``header=True``, ``server_timing=True`` and
      ``dev_page="/_sqlaudit"``. An explicit ``config`` or option wins over the mode's.
    """

    budgets: Mapping[str, int] | None
    sample_rate: float
    exclude: Iterable[str]
    on_finding: OnFinding | None
    reporters: Iterable[Reporter] | None
    detectors: Sequence[Detector] | None
    header: bool | str
    server_timing: bool
    dev_page: str | None
    dev_page_size: int
    explain: bool
    mode: Mode


#: ``mode=``: which defaults the middleware starts from.
MODES = ("production", "development")
#: What ``mode="development"`` turns on (each overridden by an explicit option).
DEVELOPMENT_OPTIONS: Mapping[str, Any] = {
    "header": True,
    "server_timing": True,
    "dev_page": "/_sqlaudit",
}


@dataclass(frozen=True, slots=True)
class Options:
    """The validated options of one middleware."""

    config: AuditConfig
    exact_budgets: Mapping[str, int]
    pattern_budgets: tuple[tuple[str, int], ...]
    sample_rate: float
    exclude: tuple[str, ...]
    reporters: tuple[Reporter, ...] | None
    detectors: tuple[Detector, ...] | None
    header: str | None
    server_timing: bool
    dev_page: str | None
    dev_page_size: int
    explain: bool = False

    @classmethod
    def create(cls, config: AuditConfig | None, options: Mapping[str, Any]) -> Options:
        """Validate ``config`` (default: the ``mode``'s, ``AuditConfig.for_production()``)
        and ``options``."""
        known = MiddlewareOptions.__optional_keys__
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown middleware option(s) {', '.join(map(repr, unknown))}; "
                f"known: config, {', '.join(sorted(known))}"
            )
        mode = check_choice("mode", options.get("mode", "production"), MODES)
        if mode == "development":
            options = {**DEVELOPMENT_OPTIONS, **options}
        if config is None:
            # Production floors by default: a middleware deployed without a thought must not
            # log every two-row repeat of a busy service; mode="development" is one keyword.
            config = (
                AuditConfig.for_development()
                if mode == "development"
                else AuditConfig.for_production()
            )
        elif not isinstance(config, AuditConfig):
            raise ConfigError(f"config must be an AuditConfig, got {type(config).__name__}")
        on_finding = options.get("on_finding")
        if on_finding is not None:
            config = config.replace(on_finding=on_finding)
        exact, patterns = check_budgets("budgets", options.get("budgets"))
        reporters = options.get("reporters")
        detectors = options.get("detectors")
        dev_page = options.get("dev_page")
        explain = check_bool("explain", options.get("explain", False))
        if explain and dev_page is None:
            raise ConfigError(
                'explain=True needs dev_page (e.g. dev_page="/_sqlaudit" or mode="development"): '
                "the plans are shown there"
            )
        return cls(
            config=config,
            exact_budgets=exact,
            pattern_budgets=patterns,
            sample_rate=check_rate("sample_rate", options.get("sample_rate", 1.0)),
            exclude=check_patterns("exclude", options.get("exclude", ())),
            reporters=None if reporters is None else check_reporters(reporters),
            detectors=None if detectors is None else check_detectors(detectors),
            header=check_header_name("header", options.get("header", False), DEFAULT_HEADER),
            server_timing=check_bool("server_timing", options.get("server_timing", False)),
            dev_page=None if dev_page is None else check_path("dev_page", dev_page),
            # Checked even with the page off: a typo is a typo.
            dev_page_size=check_int("dev_page_size", options.get("dev_page_size", 50), 1),
            explain=explain,
        )
