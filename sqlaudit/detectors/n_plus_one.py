"""``n_plus_one``: one relationship lazy-loaded once per parent, from one call site."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit._findings import Finding, Severity
from sqlaudit._fingerprint import fingerprint
from sqlaudit.detectors._common import group, indexes, total_time

if TYPE_CHECKING:
    from sqlaudit._records import CallSite, QueryRecord
    from sqlaudit._scope import AuditReport


def _key(record: QueryRecord) -> tuple[str, CallSite | None] | None:
    orm = record.orm
    if orm is None or orm.load != "lazy" or orm.relationship is None:
        return None
    return (orm.relationship, record.callsite)


class NPlusOne:
    """Lazy loads of one relationship for >= ``n_plus_one_min`` distinct parents, one line."""

    kind = "n_plus_one"

    def detect(self, report: AuditReport, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = report.config
        groups = group(enumerate(records), _key)
        for (relationship, site), items in groups.items():
            parents = {r.orm.parent for _, r in items if r.orm is not None}
            db_time = total_time(items)
            if len(parents) < config.n_plus_one_min or db_time * 1000 < config.min_group_ms:
                continue
            owner = relationship.split(".", 1)[0]
            sample = items[0][1]
            n = len(items)
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"N+1: {relationship} lazy-loaded {n}x, once per {owner} "
                    f"({len(parents)} parents)"
                ),
                count=n,
                location=site,
                fix=(
                    f"load it with the query that loads {owner}: add "
                    f".options(selectinload({relationship})) to that query"
                ),
                fingerprint=fingerprint(sample.sql),
                sql=sample.sql,
                db_time=db_time,
                relationship=relationship,
                statements=indexes(items),
            )
