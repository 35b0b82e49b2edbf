"""Findings: what a detector concluded about a unit of work. Plain, frozen data."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlaudit._validate import check_names
from sqlaudit.errors import ConfigError
from sqlaudit.model.paths import relative
from sqlaudit.model.records import CallSite

__all__ = ["ANONYMOUS", "KINDS", "TIMING_KINDS", "Finding", "Severity", "named_site"]

#: Every finding kind sqlaudit can report (stable strings, see DESIGN "kinds").
KINDS: frozenset[str] = frozenset(
    {
        "n_plus_one",
        "column_reload",
        "repeated_query",
        "write_loop",
        "query_budget",
        "slow_query",
        "autocommit_writes",
        "ineffective_rollback",
        "commit_in_loop",
        "discarded_writes",
        "long_transaction",
        "stale_identity_map",
        "transaction_overhead",
        "autocommit_lock",
        "autocommit_read_modify_write",
        "split_transaction",
        "unused_eager_load",
    }
)


#: Kinds whose verdict depends on how fast the machine runs (a loaded machine pauses any
#: statement or transaction): never a default failure in tests or in the demo.
TIMING_KINDS: frozenset[str] = frozenset({"slow_query", "long_transaction"})


#: Code objects without a name of their own. CPython 3.12 inlines list, dict and set
#: comprehensions into the enclosing function (PEP 709), so a statement issued in one has a
#: ``<listcomp>`` frame up to 3.11 and none from 3.12; generator expressions and lambdas keep
#: theirs, but name no place a reader (or a baseline) can key on either.
ANONYMOUS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>"})


def named_site(stack: Sequence[CallSite]) -> CallSite | None:
    """The innermost frame of ``stack`` in a named function (or module, class body, template):
    the same on every Python version (see :data:`ANONYMOUS`). None for an empty stack; the
    innermost frame when every frame is anonymous."""
    for site in stack:
        if site.function not in ANONYMOUS:
            return site
    return stack[0] if stack else None


class Severity(enum.IntEnum):
    """How bad a finding is; ordered ``INFO < WARNING < ERROR``."""

    INFO = 10
    WARNING = 20
    ERROR = 30

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: object, *, setting: str = "severity") -> Severity:
        """``"info"``, ``"warning"`` or ``"error"`` (any case), or a Severity, else ConfigError."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        allowed = ", ".join(repr(str(s)) for s in cls)
        raise ConfigError(f"{setting} must be one of {allowed}, got {value!r}")


def check_kinds(kinds: Any, *, setting: str) -> frozenset[str]:
    """Validate an iterable of finding kinds; ConfigError names the unknown ones."""
    return check_names(setting, kinds, KINDS, "finding kind")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a unit of work: the diagnosis, where it happened and how to fix it."""

    #: One of :data:`KINDS`, e.g. ``"n_plus_one"``.
    kind: str
    severity: Severity
    #: One line diagnosis, e.g. ``"N+1: User.addresses lazy-loaded 20x, once per User"``.
    message: str
    #: How many statements (or events) make up the finding.
    count: int
    #: The application line that issued the statements (the loop body), when known.
    location: CallSite | None
    #: What to change, as precisely as sqlaudit can say it.
    fix: str
    #: Normalised SQL shape (literals and placeholders as ``?``), never values.
    fingerprint: str | None = None
    #: A sample of the SQL text as sent to the driver (placeholders, no values; literals the
    #: application inlined are part of it). Stays in the process; exporters send
    #: ``fingerprint`` unless the user opts in. Left out of ``repr()`` and of equality, so
    #: that pytest's assertion messages never print it (issue 14, row 8).
    sql: str | None = field(default=None, repr=False, compare=False)
    #: Total seconds the finding's statements spent in the database.
    db_time: float = 0.0
    #: For ORM findings, the relationship or attributes concerned, e.g. ``"User.addresses"``.
    relationship: str | None = None
    #: Indexes into ``report.statements`` of the statements concerned (may be truncated).
    statements: tuple[int, ...] = field(default=(), repr=False)
    #: The name of the nested unit of work it was found in (a request inside a test), or None
    #: when found in the unit that reports it.
    unit: str | None = None
    #: The application stack of the statements concerned, innermost first (``location`` is
    #: its first frame).
    stack: tuple[CallSite, ...] = field(default=(), repr=False)
    #: For a loop's findings: the loop statement (``for``/``while``, a template's ``{% for %}``)
    #: that repeats the statements, when sqlaudit can tell which frame holds it.
    loop: CallSite | None = None
    #: The allowlist rule that allowed it (``'allow_relationships "User.comments"'``), or None.
    #: Allowed findings are kept apart (``report.allowed``): never failing, logged or exported.
    allowed: str | None = None
    #: For an N+1: where the query that loaded the parents was issued (the rows a loop runs
    #: over). It tells which of several loops on the stack repeats the loads (``loop``).
    origin: CallSite | None = field(default=None, repr=False, compare=False)

    @property
    def headline(self) -> str:
        """The diagnosis, prefixed with the nested unit it was found in (``"GET /users/{id}:
        N+1: ..."``) when a unit reports the finding of a request inside it."""
        return f"{self.unit}: {self.message}" if self.unit else self.message

    @property
    def identity(self) -> tuple[str, str, str, str]:
        """What makes two findings "the same" across runs: kind, subject (relationship or
        fingerprint), and the file and name of the innermost named function of its stack."""
        subject = self.relationship or self.fingerprint or ""
        site = named_site(self.stack or ((self.location,) if self.location else ()))
        if site is None:
            return (self.kind, subject, "", "")
        return (self.kind, subject, site.file, site.function)

    def to_dict(self, *, include_sql: bool = False) -> dict[str, Any]:
        """JSON-safe form. ``sql`` is included only when ``include_sql`` is True."""
        data: dict[str, Any] = {
            "kind": self.kind,
            "severity": str(self.severity),
            "message": self.message,
            "count": self.count,
            "location": None
            if self.location is None
            else {
                "file": relative(self.location.file),
                "line": self.location.line,
                "function": self.location.function,
            },
            "fix": self.fix,
            "fingerprint": self.fingerprint,
            "db_time_ms": round(self.db_time * 1000, 3),
            "relationship": self.relationship,
            "unit": self.unit,
            "loop": None
            if self.loop is None
            else {
                "file": relative(self.loop.file),
                "line": self.loop.line,
                "function": self.loop.function,
            },
            "allowed": self.allowed,
        }
        if include_sql:
            data["sql"] = self.sql
        return data
