"""AuditConfig: every threshold and switch, validated when constructed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlaudit._validate import (
    check_bool,
    check_globs,
    check_int,
    check_ms,
    check_ratio,
    check_regexes,
    check_relationships,
)
from sqlaudit.errors import ConfigError
from sqlaudit.model.findings import Severity, check_kinds

__all__ = ["AuditConfig"]

OnFinding = Literal["log", "raise", "ignore"]
_ON_FINDING = ("log", "raise", "ignore")


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """Thresholds and switches for one audit. Strict defaults (:meth:`for_development`); see
    :meth:`for_production` for the floors of a service.

    Every field is validated on construction; a bad value raises :class:`~sqlaudit.ConfigError`
    naming the field, the value and what is allowed.
    """

    #: Fail the unit when it issues more statements than this (transaction control excluded).
    max_queries: int | None = None
    #: Fail the unit when its statements spend more than this many ms in the database.
    max_db_time_ms: float | None = None
    #: A statement slower than this is a ``slow_query`` finding (None: off).
    slow_query_ms: float | None = 100.0
    #: ``n_plus_one``: lazy loads of one relationship for at least this many parents.
    n_plus_one_min: int = 2
    #: ``column_reload``: deferred columns loaded per instance for at least this many objects.
    deferred_reload_min: int = 3
    #: ``column_reload``: expired attributes reloaded (after commit) for this many objects.
    expired_reload_min: int = 5
    #: ``repeated_query``: the same shape from the same call site at least this many times.
    repeated_query_min: int = 3
    #: ``write_loop``: the same single-row write from one call site at least this many times.
    write_loop_min: int = 5
    #: ``long_transaction``: a transaction open longer than this (None: off).
    long_transaction_ms: float | None = 1000.0
    #: ``long_transaction``: idle between two of its statements longer than this (None: off).
    idle_in_transaction_ms: float | None = 250.0
    #: ``long_transaction``: also report a transaction still open when the unit ends. Off for
    #: test bodies, whose fixtures open sessions before the body and close them after it.
    open_transactions: bool = True
    #: ``commit_in_loop``: at least this many commits from one call stack, each writing rows...
    commit_in_loop_min: int = 3
    #: ``commit_in_loop``: ... at most this many rows each (a batch of more is not a commit per
    #: item); rows are counted from the driver's rowcount, not statements.
    commit_in_loop_max_rows: int = 10
    #: ``transaction_overhead`` (info): transaction control >= this share of round trips...
    transaction_overhead_ratio: float | None = 0.5
    #: ``transaction_overhead`` (info): ... and at least this many control round trips (a
    #: small unit's BEGIN + ROLLBACK around one SELECT is the cost of a transaction, not a
    #: problem).
    transaction_overhead_min: int = 10
    #: Production floor: groups whose statements took less than this in total are not reported.
    min_group_ms: float = 0.0
    #: Report at most this many findings per unit (worst first); None: all.
    max_findings: int | None = None
    #: Statements recorded in detail per unit; past it only counters grow (memory bound).
    max_records: int = 10_000
    #: What to do with findings at or above ``fail_on``: log them, raise AuditFailed, or nothing.
    on_finding: OnFinding = "log"
    #: The severity at or above which ``on_finding="raise"`` raises.
    fail_on: Severity = Severity.WARNING
    #: Finding kinds never reported.
    ignore: frozenset[str] = field(default_factory=frozenset)
    #: Export SQL text (placeholders, no bind values) besides fingerprints. Off by default.
    include_sql: bool = False
    #: Allowlist: findings about these relationships or attributes (``"User.comments"``; globs
    #: such as ``"Legacy*.*"``) are reported as allowed, never failing, logged or exported.
    allow_relationships: frozenset[str] = field(default_factory=frozenset)
    #: Allowlist: findings with a frame of their call stack in a file matching one of these
    #: globs, relative to the working directory (``"app/legacy/*"``, ``"*/reports.py"``).
    allow_paths: tuple[str, ...] = ()
    #: Allowlist: findings whose SQL matches one of these regular expressions (``re.search``,
    #: case-insensitive, on the fingerprint: literals and placeholders as ``?``).
    allow_sql: tuple[str, ...] = ()
    #: ``unused_eager_load`` (development and tests only): follow reads of the relationships
    #: the unit loads eagerly. Off by default: when off nothing is watched and nothing is paid;
    #: when on, each read of a watched relationship attribute costs a fraction of a
    #: microsecond in every thread until the last such audit closes (benchmarks/eager.py).
    unused_eager_loads: bool = False

    def __post_init__(self) -> None:
        check_int("max_queries", self.max_queries, 0, optional=True)
        check_ms("max_db_time_ms", self.max_db_time_ms, optional=True)
        check_ms("slow_query_ms", self.slow_query_ms, optional=True)
        check_int("n_plus_one_min", self.n_plus_one_min, 2)
        check_int("repeated_query_min", self.repeated_query_min, 2)
        check_int("deferred_reload_min", self.deferred_reload_min, 2)
        check_int("expired_reload_min", self.expired_reload_min, 2)
        check_int("write_loop_min", self.write_loop_min, 2)
        check_ms("min_group_ms", self.min_group_ms)
        check_ms("long_transaction_ms", self.long_transaction_ms, optional=True)
        check_ms("idle_in_transaction_ms", self.idle_in_transaction_ms, optional=True)
        check_int("commit_in_loop_min", self.commit_in_loop_min, 2)
        check_int("commit_in_loop_max_rows", self.commit_in_loop_max_rows, 1)
        check_bool("open_transactions", self.open_transactions)
        check_ratio("transaction_overhead_ratio", self.transaction_overhead_ratio)
        check_int("transaction_overhead_min", self.transaction_overhead_min, 1)
        check_int("max_findings", self.max_findings, 0, optional=True)
        check_int("max_records", self.max_records, 0)
        if self.on_finding not in _ON_FINDING:
            raise ConfigError(
                f"on_finding must be one of {', '.join(map(repr, _ON_FINDING))}, "
                f"got {self.on_finding!r}"
            )
        object.__setattr__(self, "fail_on", Severity.parse(self.fail_on, setting="fail_on"))
        object.__setattr__(self, "ignore", check_kinds(self.ignore, setting="ignore"))
        check_bool("include_sql", self.include_sql)
        object.__setattr__(
            self, "allow_relationships", check_relationships(self.allow_relationships)
        )
        object.__setattr__(self, "allow_paths", check_globs("allow_paths", self.allow_paths))
        object.__setattr__(self, "allow_sql", check_regexes("allow_sql", self.allow_sql))
        check_bool("unused_eager_loads", self.unused_eager_loads)

    @property
    def allowlists(self) -> bool:
        """Whether any allowlist (relationships, paths, SQL) is set."""
        return bool(self.allow_relationships or self.allow_paths or self.allow_sql)

    @classmethod
    def for_production(cls, **overrides: Any) -> AuditConfig:
        """Floors for services: only groups of >= 5 statements taking >= 50 ms in total are
        reported, at most 10 findings per unit, and findings are logged, never raised."""
        settings: dict[str, Any] = {
            "n_plus_one_min": 5,
            "repeated_query_min": 5,
            "write_loop_min": 5,
            "min_group_ms": 50.0,
            "max_findings": 10,
            "slow_query_ms": 500.0,
            "on_finding": "log",
        }
        settings.update(overrides)
        return cls.create(**settings)

    @classmethod
    def for_development(cls, **overrides: Any) -> AuditConfig:
        """Development and tests: every finding from its first repeats (an N+1 over 2 parents,
        a query repeated 3 times), whatever it costs, all of them logged. The same thresholds
        as ``AuditConfig()``; named so that the choice is visible where a service is wired."""
        settings: dict[str, Any] = {"on_finding": "log"}
        settings.update(overrides)
        return cls.create(**settings)

    @classmethod
    def create(cls, **settings: Any) -> AuditConfig:
        """Like the constructor, but an unknown setting is a ConfigError listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(
                f"unknown AuditConfig setting(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**settings)

    def replace(self, **changes: Any) -> AuditConfig:
        """A copy with ``changes`` applied and validated."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        settings.update(changes)
        return type(self).create(**settings)
