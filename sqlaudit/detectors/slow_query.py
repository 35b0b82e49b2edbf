"""``slow_query``: one statement slower than ``slow_query_ms``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._grouping import group, indexes, total_time
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.sql.fingerprint import elide, fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, QueryRecord, UnitRecord


class SlowQuery:
    """Statements over the threshold, one finding per shape and call site."""

    kind = "slow_query"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        threshold = unit.config.slow_query_ms
        if threshold is None:
            return
        limit = threshold / 1000.0

        def key(record: QueryRecord) -> tuple[str, CallSite | None] | None:
            if record.duration < limit:
                return None
            return (fingerprint(record.sql, record.dialect), record.callsite)

        for (shape, site), items in group(enumerate(records), key).items():
            worst = max(r.duration for _, r in items) * 1000
            n = len(items)
            times = f"{n}x, " if n > 1 else ""
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"slow query ({times}up to {worst:.0f} ms, threshold {threshold:g} ms): "
                    f"{elide(shape, 70)}"
                ),
                count=n,
                location=site,
                fix="EXPLAIN it: add the index its WHERE/JOIN needs, or fetch less",
                fingerprint=shape,
                sql=items[0][1].sql,
                db_time=total_time(items),
                statements=indexes(items),
            )
