"""``write_loop``: the same single-row write from one call site, statement after statement.

A flush that writes its rows one statement at a time (SQLAlchemy cannot batch some INSERTs,
e.g. on SQLite without RETURNING support for the table) is one unit of work, not a loop: the
writes of one flush count once. A loop of ``add(); flush()`` or ``add(); commit()`` flushes
row by row and is reported with a flush-specific hint.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._grouping import (
    indexes,
    partition,
    retried,
    shaped,
    sited,
    total_time,
)
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.records import StatementKind
from sqlaudit.sql.fingerprint import elide

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord

#: What to send instead of one statement per row, by statement kind.
_LOOP_FIXES = {
    StatementKind.INSERT: (
        "send the rows in one statement: collect them and call execute(insert(...), "
        "[row, row, ...]) (executemany / insertmanyvalues), or session.add_all(objects) and "
        "one flush"
    ),
    StatementKind.UPDATE: (
        "one UPDATE ... WHERE id IN (...) when every row gets the same change; for values per "
        "row, one ORM bulk UPDATE by primary key: session.execute(update(Model), "
        "[{'id': ..., 'column': ...}, ...])"
    ),
    StatementKind.DELETE: (
        "one DELETE for all the rows: delete(Model).where(Model.id.in_(ids)), or "
        "session.delete() each object and flush once"
    ),
}
#: A loop flushing (or committing) one object per iteration, by statement kind.
_FLUSH_FIXES = {
    StatementKind.INSERT: (
        "each iteration flushes (or commits) one new object: add them all first "
        "(session.add_all(objects)) and flush or commit once after the loop, so the unit of "
        "work can batch the INSERTs{dialect_hint}"
    ),
    StatementKind.UPDATE: (
        "each iteration flushes (or commits) one changed object: change them all, then flush "
        "or commit once after the loop, so the unit of work sends the UPDATEs together "
        "(executemany)"
    ),
    StatementKind.DELETE: (
        "each iteration flushes (or commits) one deleted object: session.delete() them all, "
        "then flush or commit once after the loop, or delete them in one statement: "
        "delete(Model).where(Model.id.in_(ids))"
    ),
}
_DIALECT_HINTS = {
    "sqlite": "; on SQLite, server-generated defaults fetched per row defeat batching",
    "mysql": "; on MySQL/MariaDB, PyMySQL batches INSERT ... VALUES rows in one round trip",
    "postgresql": "; on PostgreSQL, psycopg batches them with insertmanyvalues and RETURNING",
}


def _flush_id(record: QueryRecord) -> int | None:
    orm = record.orm
    return orm.parent if orm is not None and orm.load == "flush" else None


class WriteLoop:
    """The same single-row INSERT/UPDATE/DELETE >= ``write_loop_min`` times from one stack,
    counting the writes of one flush once."""

    kind = "write_loop"
    #: ``run_detectors`` skips it for a unit with no writes.
    needs = "write"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        # Grouped statements first; the flush rule below then counts flushes, not statements.
        # Single-row writes (an executemany is batched already), grouped by (text, innermost
        # frame) and then by shape and whole stack; ``sited`` skips those with no frame.
        single = [item for item in partition(records)["write"] if item[1].batch <= 1]
        for (shape, stack), items in shaped(sited(single), 2):
            flushes = {_flush_id(r) for _, r in items} - {None}
            plain = sum(1 for _, r in items if _flush_id(r) is None)
            occurrences = plain + len(flushes)
            db_time = total_time(items)
            if occurrences < config.write_loop_min or db_time * 1000 < config.min_group_ms:
                continue
            sample = items[0][1]
            if retried(items, unit):
                continue  # each attempt after a rollback: a retry, not a loop
            by_flush = len(flushes) > plain
            if by_flush:
                hint = _DIALECT_HINTS.get(sample.dialect, "")
                message = f"write loop: {len(flushes)} flushes of one row each: {elide(shape, 70)}"
                fix = _FLUSH_FIXES[sample.kind].format(dialect_hint=hint)
            else:
                message = f"write loop: {len(items)}x single-row {elide(shape, 70)}"
                fix = _LOOP_FIXES[sample.kind]
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=message,
                count=len(items),
                location=stack[0],
                fix=fix,
                fingerprint=shape,
                sql=sample.sql,
                db_time=db_time,
                statements=indexes(items),
                stack=stack,
            )
