"""``write_loop``: the same single-row write from one call site, statement after statement."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit._findings import Finding, Severity
from sqlaudit._fingerprint import fingerprint, short
from sqlaudit._records import StatementKind
from sqlaudit.detectors._common import group, indexes, total_time

if TYPE_CHECKING:
    from sqlaudit._records import CallSite, QueryRecord
    from sqlaudit._scope import AuditReport


def _key(record: QueryRecord) -> tuple[str, tuple[CallSite, ...]] | None:
    if record.kind not in StatementKind.WRITES or record.batch > 1 or not record.stack:
        return None
    return (fingerprint(record.sql), record.stack)


class WriteLoop:
    """The same single-row INSERT/UPDATE/DELETE >= ``write_loop_min`` times from one stack."""

    kind = "write_loop"

    def detect(self, report: AuditReport, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = report.config
        for (shape, stack), items in group(enumerate(records), _key).items():
            n = len(items)
            db_time = total_time(items)
            if n < config.write_loop_min or db_time * 1000 < config.min_group_ms:
                continue
            verb = items[0][1].kind.upper()
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=f"write loop: {n}x single-row {verb} {short(items[0][1].sql, 70)}",
                count=n,
                location=stack[0],
                fix=(
                    "send the rows in one statement: collect them and call "
                    "execute(stmt, [row, row, ...]) (executemany / insertmanyvalues), "
                    "or one UPDATE ... WHERE id IN (...) for a common change"
                ),
                fingerprint=shape,
                sql=items[0][1].sql,
                db_time=db_time,
                statements=indexes(items),
            )
