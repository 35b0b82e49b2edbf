"""``unused_eager_load`` (development and tests, opt-in): a relationship loaded eagerly that the
unit never reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, where
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord

_OPTION = {"selectin": "selectinload", "joined": "joinedload", "subquery": "subqueryload"}


class UnusedEagerLoad:
    """An eager load (``selectinload``, ``joinedload``, ``subqueryload``, or the same as the
    relationship's ``lazy=`` setting) of a relationship whose attribute the unit read on no
    object at all. Recorded only with ``AuditConfig.unused_eager_loads`` (``capture.eager``).

    Silent: a relationship read anywhere in the unit (also through ``awaitable_attrs``, or in
    a request inside it); ``contains_eager`` (the JOIN is the query's own); a joined load whose
    query returned no row. Reads that bypass the attribute (``obj.__dict__``) are not seen.
    """

    kind = "unused_eager_load"
    #: ``run_detectors`` skips it for a unit without any.
    needs = "eager_loads"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        for load in unit.eager_loads:
            if load.read or load.unit != unit.key or self.kind in load.suppressed:
                continue
            option = _OPTION.get(load.strategy, f"{load.strategy}load")
            site = first(load.stack)
            query = f"the query at {where(site)}" if site else "the query"
            if load.statements:
                cost = f"{load.statements} extra statement(s)"
            else:
                cost = "a JOIN in the query's statement"
            if load.configured:
                how = f"by its lazy={load.strategy!r} setting"
                fix = (
                    f"{load.relationship} is lazy={load.strategy!r}: add "
                    f".options(lazyload({load.relationship})) to {query}, or make lazy='select' "
                    f"its default and ask for {option}({load.relationship}) where it is read"
                )
            else:
                how = f"with {option}()"
                fix = (
                    f"remove {option}({load.relationship}) from the options of {query} (or "
                    "that link of its loader chain)"
                )
            indexes = tuple(
                i
                for i, r in enumerate(records)
                if load.statements and r.sql == load.sql and r.stack == load.stack
            )
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"unused eager load: {load.relationship} loaded {how} by {query} "
                    f"({cost}), but the unit never read it"
                ),
                count=max(load.statements, 1),
                location=site,
                fix=fix,
                fingerprint=fingerprint(load.sql) if load.sql else None,
                sql=load.sql or None,
                db_time=sum(records[i].duration for i in indexes),
                relationship=load.relationship,
                statements=indexes,
                stack=load.stack,
            )
