"""``query_budget``: the unit issued more statements, or spent more DB time, than allowed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.records import StatementKind

_TRANSACTION = StatementKind.TRANSACTION

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


class QueryBudget:
    """``max_queries`` and ``max_db_time_ms`` from the config (transaction control excluded)."""

    kind = "query_budget"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        # The budget counts every statement of the unit, those of units opened inside it
        # included, but not those under ignore("query_budget"); statements past max_records
        # (unit.overflow) always count.
        exempt = [
            r for r in unit.statements if self.kind in r.suppressed and r.kind != _TRANSACTION
        ]
        count = unit.query_count - len(exempt)
        if config.max_queries is not None and count > config.max_queries:
            yield Finding(
                kind=self.kind,
                severity=Severity.ERROR,
                message=(f"query budget exceeded: {count} statements, budget {config.max_queries}"),
                count=count,
                location=None,
                fix=(
                    "issue fewer statements (eager-load what loops read, batch writes), or "
                    f"raise max_queries to {count} if the new statements are intended"
                ),
            )
        db_time = unit.db_time - sum(r.duration for r in exempt)
        ms = db_time * 1000
        if config.max_db_time_ms is not None and ms > config.max_db_time_ms:
            yield Finding(
                kind=self.kind,
                severity=Severity.ERROR,
                message=(
                    f"DB time budget exceeded: {ms:.1f} ms in the database, "
                    f"budget {config.max_db_time_ms:g} ms"
                ),
                count=count,
                location=None,
                fix="find the slowest statements below and index or batch them",
                db_time=db_time,
            )
