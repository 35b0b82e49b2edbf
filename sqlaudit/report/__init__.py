"""``AuditReport``: the public view of one unit of work, and its renderings (text, JSON).

While the unit is open the view reads its live capture state (counts so far); once it closed,
the frozen ``UnitRecord`` (``report.unit``) and the findings. Renderers (``text``, ``json``) and
reporters read only this view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import fork_renewer
from sqlaudit.capture.scope import Scope
from sqlaudit.model.records import FrozenOrigins
from sqlaudit.sql.cache import hold, open_owners
from sqlaudit.sql.printable import printable

if TYPE_CHECKING:
    from sqlaudit.model.config import AuditConfig
    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import OriginRecord, QueryRecord, TransactionRecord, UnitRecord

__all__ = ["AuditReport", "scope_of"]


class AuditReport:
    """The statements and findings of one unit of work (a request, job or test).

    Filled while the ``sqlaudit.audit(...)`` block runs; ``findings`` and ``unit`` are set when
    it exits. Counts read while the block is open are the counts so far.
    """

    __slots__ = ("__weakref__", "_scope", "_unit", "allowed", "findings", "parent")

    def __init__(self, name: str, config: AuditConfig, parent: AuditReport | None = None) -> None:
        self._scope: Scope = Scope(
            printable(name), config, None if parent is None else parent._scope, self
        )
        self._unit: UnitRecord | None = None
        #: The enclosing unit's report (a request inside a test), or None.
        self.parent = parent
        #: The findings, worst first (set when the unit closes).
        self.findings: Sequence[Finding] = ()
        #: Findings an allowlist of the config allowed (``Finding.allowed`` names the rule):
        #: shown as allowed in reports and summaries, never failing, logged or exported.
        self.allowed: Sequence[Finding] = ()
        # Statement-text memos live while an audit is open (``sqlaudit.sql.cache``): the
        # code that ends the audit (``audit``, the middlewares) releases it.
        hold(self)

    # -- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The unit of work's name, e.g. ``"GET /users/{id}"`` (control characters, line breaks
        included, written as escapes: ``sqlaudit.sql.printable``)."""
        return self._scope.name

    @name.setter
    def name(self, value: str) -> None:
        self._scope.name = printable(value)

    @property
    def config(self) -> AuditConfig:
        """The configuration the unit is audited with."""
        return self._scope.config

    @config.setter
    def config(self, value: AuditConfig) -> None:
        self._scope.config = value

    @property
    def unit(self) -> UnitRecord | None:
        """What the unit did, as frozen plain data; None until it closed."""
        return self._unit

    # -- counts (live while open) ---------------------------------------------------------

    @property
    def query_count(self) -> int:
        """Statements issued, transaction control (BEGIN/COMMIT/SAVEPOINT...) excluded."""
        return self._unit.query_count if self._unit is not None else self._scope.query_count()

    @property
    def counts(self) -> dict[str, int]:
        """Statements per kind (``select``, ``insert``, ..., ``transaction``)."""
        counts = self._unit.counts if self._unit is not None else self._scope.kind_counts()
        return dict(sorted(counts.items()))

    @property
    def statements(self) -> Sequence[QueryRecord]:
        """Recorded statements in the order they started (at most ``max_records``)."""
        if self._unit is not None:
            return self._unit.statements
        return self._scope.log.statements()

    @property
    def overflow(self) -> int:
        """Statements beyond ``max_records``: counted, not recorded."""
        return self._unit.overflow if self._unit is not None else self._scope.log.overflow()

    @property
    def recorded_count(self) -> int:
        """Statements recorded in detail (at most ``max_records``)."""
        if self._unit is not None:
            return self._unit.recorded_count
        return self._scope.log.recorded_count()

    @property
    def db_time(self) -> float:
        """Seconds spent executing counted statements (transaction control excluded)."""
        return self._unit.db_time if self._unit is not None else self._scope.log.db_time()

    @property
    def db_time_ms(self) -> float:
        """Milliseconds the unit's counted statements spent in the database."""
        return self.db_time * 1000.0

    @property
    def started(self) -> float:
        """``perf_counter()`` when the unit opened."""
        return self._scope.started

    @property
    def ended(self) -> float | None:
        """``perf_counter()`` when the unit closed, None while open."""
        return self._scope.ended

    @property
    def duration(self) -> float:
        """Wall-clock seconds the unit has been (or was) open."""
        end = self._scope.ended
        return (perf_counter() if end is None else end) - self._scope.started

    @property
    def internal_errors(self) -> int:
        """sqlaudit errors swallowed while auditing this unit."""
        return self._scope.internal_errors

    @internal_errors.setter
    def internal_errors(self, value: int) -> None:
        self._scope.internal_errors = value

    # -- transactions and ORM origins -----------------------------------------------------

    @property
    def transaction_records(self) -> Sequence[TransactionRecord]:
        """The unit's database transactions (so far, while open)."""
        if self._unit is not None:
            return self._unit.transaction_records
        return self._scope.transactions(perf_counter())

    @property
    def transaction_count(self) -> int:
        """Database transactions of this unit that ran at least one statement."""
        return self.snapshot().transaction_count

    @property
    def commit_count(self) -> int:
        """Transactions of this unit that ended in a commit."""
        return self.snapshot().commit_count

    @property
    def rollback_count(self) -> int:
        """Transactions of this unit with writes that were rolled back (explicitly, on error
        or at close)."""
        return self.snapshot().rollback_count

    @property
    def origin_records(self) -> Mapping[int, OriginRecord]:
        """Every query that loaded ORM objects in this unit, by id (see ``OrmLoad.query``)."""
        if self._unit is not None:
            return self._unit.origin_records
        scope = self._scope
        return FrozenOrigins(dict(scope.origins), dict(scope.origin_rows))

    @property
    def round_trips(self) -> tuple[int, int]:
        """(transaction-control round trips, statement round trips), estimated per dialect."""
        return self.snapshot().round_trips

    # -- renderings -----------------------------------------------------------------------

    def render(self, *, statements: bool = True) -> str:
        """The human report: diagnosis first, then the statements with repeats collapsed."""
        from sqlaudit.report.text import render

        return render(self, statements=statements)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the report (fingerprints, never bind values)."""
        from sqlaudit.report.json import report_to_dict

        return report_to_dict(self)

    def snapshot(self) -> UnitRecord:
        """What the unit did so far as a ``UnitRecord`` (the closed one once it closed)."""
        return self._unit if self._unit is not None else self._scope.freeze()

    def __repr__(self) -> str:
        return (
            f"<AuditReport {self.name!r} queries={self.query_count} findings={len(self.findings)}>"
        )


def _renew_open_logs() -> None:
    """In a forked child: the statement logs of the audits open at the fork get new locks."""
    for owner in open_owners():
        if isinstance(owner, AuditReport):
            owner._scope.log.lock._at_fork_reinit()  # type: ignore[attr-defined]  # CPython


fork_renewer(_renew_open_logs)


def scope_of(report: AuditReport) -> Scope:
    """The capture state behind ``report`` (for sqlaudit's own integrations)."""
    return report._scope
