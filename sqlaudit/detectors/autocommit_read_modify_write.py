"""``autocommit_read_modify_write``: a row read, then written back with absolute values, on an
autocommit connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, where
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.hazards import ReadModifyWrite
    from sqlaudit.model.records import CallSite, QueryRecord, UnitRecord

_Key = tuple[str, str, tuple[str, ...], "CallSite | None", tuple["CallSite", ...]]


class AutocommitReadModifyWrite:
    """Numeric columns read from a row and written back as new numbers (``SET col = ?``) on a
    connection that autocommits: the read and the write are two transactions, so an update
    that lands between them is overwritten (a lost update).

    What capture counts (``capture.hazards``): an ORM object loaded in the unit whose numeric
    attributes were changed and flushed on an autocommit session; a Core UPDATE, outside a
    flush, of the row (same table, same key values) that the SELECT just before it on the same
    autocommit connection returned, setting one of the columns it returned. Silent: ``SET col =
    col + ?`` (ORM: assigning ``Model.col + 1``), any write in a real transaction, a write to
    another row, an INSERT, key columns, mappers with ``version_id_col``, non-numeric columns.
    """

    kind = "autocommit_read_modify_write"
    #: ``run_detectors`` skips it for a unit without any.
    needs = "read_modify_writes"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        groups: dict[_Key, list[ReadModifyWrite]] = {}
        for rmw in unit.read_modify_writes:
            if rmw.unit != unit.key or self.kind in rmw.suppressed:
                continue
            key = (rmw.source, rmw.target, rmw.columns, first(rmw.read_stack), rmw.write_stack)
            groups.setdefault(key, []).append(rmw)
        for (source, target, columns, read_site, write_stack), items in groups.items():
            n = len(items)
            sample = items[0]
            write_site = first(write_stack)
            names = ", ".join(f"{target}.{c}" for c in columns)
            if source == "orm":
                write = f"flushed as SET {', '.join(f'{c} = ?' for c in columns)}"
                atomic = ", ".join(f"{c}={target}.{c} + delta" for c in columns)
                atomic_fix = f"`session.execute(update({target}).where(...).values({atomic}))`"
                lock = f"select({target}).where(...).with_for_update()"
            else:
                write = f"UPDATE {target} SET {', '.join(f'{c} = ?' for c in columns)}"
                atomic = ", ".join(f"{c} = {c} + ?" for c in columns)
                atomic_fix = f"`UPDATE {target} SET {atomic} WHERE ...`"
                lock = "the SELECT with .with_for_update()"
            where_read = f"read at {where(read_site)}" if read_site else "read earlier in the unit"
            where_write = f" at {where(write_site)}" if write_site else ""
            times = f" ({n}x)" if n > 1 else ""
            indexes = tuple(
                i
                for i, r in enumerate(records)
                if sample.write_sql and r.sql == sample.write_sql and r.stack == write_stack
            )
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"autocommit read-modify-write{times}: {names} {where_read}, then written "
                    f"back with an absolute value ({write}){where_write} on an autocommit "
                    "connection: the read and the write are separate transactions, so an "
                    "update that lands between them is lost"
                ),
                count=n,
                location=write_site,
                fix=(
                    "read and write in one transaction that locks the row: `with "
                    "Session(engine) as session, session.begin():` on an engine without "
                    f"isolation_level='AUTOCOMMIT', reading with {lock}; or let the database "
                    f"compute the new value atomically: {atomic_fix}"
                ),
                fingerprint=(
                    fingerprint(sample.write_sql, records[indexes[0]].dialect if indexes else "")
                    if sample.write_sql
                    else None
                ),
                sql=sample.write_sql or None,
                relationship=names,
                statements=indexes,
                stack=write_stack,
            )
