"""``column_reload``: deferred or expired columns loaded one instance at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._grouping import group, indexes, partition, total_time
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, QueryRecord, UnitRecord


def _key(record: QueryRecord) -> tuple[str, tuple[str, ...], str, tuple[CallSite, ...]] | None:
    orm = record.orm
    if orm is None or orm.load != "column" or orm.mapper is None:
        return None
    return (orm.mapper, orm.attributes, orm.reason, record.stack)


class ColumnReload:
    """Deferred-column loads for >= ``deferred_reload_min`` objects, or expired-attribute
    reloads after commit for >= ``expired_reload_min`` objects, per class, attributes and
    line."""

    kind = "column_reload"
    #: ``run_detectors`` skips it for a unit with no column loads.
    needs = "column"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        for (mapper, attributes, reason, stack), items in group(
            partition(records)["column"], _key
        ).items():
            expired = reason == "expired"
            minimum = config.expired_reload_min if expired else config.deferred_reload_min
            db_time = total_time(items)
            n = len(items)
            if n < minimum or db_time * 1000 < config.min_group_ms:
                continue
            names = ", ".join(attributes) or "columns"
            attrs = ", ".join(f"{mapper}.{a}" for a in attributes) or mapper
            if expired:
                message = (
                    f"column reload: {names} of {n} {mapper} objects reloaded one by one "
                    "after commit (expire_on_commit=True expired them)"
                )
                fix = (
                    "read what you need before commit(), or create the Session with "
                    "expire_on_commit=False (sessionmaker(expire_on_commit=False)) when the "
                    "objects outlive the transaction on purpose"
                )
            else:
                message = (
                    f"column reload: deferred {names} loaded for {n} {mapper} objects one by one"
                )
                fix = (
                    f"load them with the query: add .options(undefer({attrs.split(', ')[0]}))"
                    f" (or load_only(...) listing {attrs}) to the query that loads {mapper}"
                )
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=message,
                count=n,
                location=stack[0] if stack else None,
                fix=fix,
                fingerprint=fingerprint(items[0][1].sql, items[0][1].dialect),
                sql=items[0][1].sql,
                db_time=db_time,
                relationship=f"{mapper}.{attributes[0]}" if attributes else mapper,
                statements=indexes(items),
                stack=stack,
            )
