"""``repeated_query``: the same statement shape from the same call site, again and again.

Exempt: eager-loader batches (the cure for N+1), lazy and column loads (reported by their own
detectors), LIMIT/OFFSET and keyset pagination walks, and hand-written IN-list chunks (every
statement's IN list differs, no value appears in two chunks, everything else is equal). Only
salted hashes of those statements' bind values are kept to tell them apart (``_params``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._counter_cache import counter_cache
from sqlaudit.detectors._grouping import (
    indexes,
    partition,
    record_of,
    retried,
    shaped,
    sited,
    total_time,
)
from sqlaudit.model.fields import params_of, sql_of
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.sql.cache import Memo
from sqlaudit.sql.fingerprint import elide
from sqlaudit.sql.params import walk

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


#: ``elide(shape, 80)`` of each shape reported: unit after unit the same loops repeat the
#: same shapes (issue 20). A statement-text memo (``sql.cache``): bounded, and let go with
#: the last audit.
_HEADS: Memo[str] = Memo(len, max_entries=1024)


def _elided(shape: str) -> str:
    head = _HEADS.data.get(shape)
    return _HEADS.put(shape, elide(shape, 80)) if head is None else head


class RepeatedQuery:
    """The same read shape from the same application stack >= ``repeated_query_min`` times."""

    kind = "repeated_query"
    #: ``run_detectors`` skips it for a unit with no reads.
    needs = "read"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        # Grouped by (text, innermost frame) and shape. The read part (``partition``) holds no
        # lazy or column load (n_plus_one, column_reload report them) and no eager-loader
        # batch (one per chunk of parents is the cure, not the disease); ``sited`` skips
        # statements with no application frame.
        grouped = shaped(sited(partition(records)["read"]), config.repeated_query_min)
        for (shape, stack), items in grouped:
            n = len(items)
            db_time = total_time(items)
            if n < config.repeated_query_min or db_time * 1000 < config.min_group_ms:
                continue
            group_records = list(map(record_of, items))
            texts = map(sql_of, group_records)
            if walk(list(zip(texts, map(params_of, group_records), strict=True))):
                continue  # walking pages or IN-list chunks is the cure for loading all at once
            if retried(items, unit):
                continue  # each attempt after a rollback: a retry, not a loop
            orm = items[0][1].orm
            message = f"repeated query: {n}x {_elided(shape)}"
            fix = (
                "issue it once: load every row the loop needs in one query "
                "(WHERE ... IN (...)) before the loop, or reuse the first result"
            )
            relationship = None
            counter = counter_cache(items[0][1], n)  # a COUNT/SUM per parent row (issue 22)
            if counter is not None:
                message, fix = counter
            if orm is not None and orm.reason in ("dynamic", "write_only") and orm.relationship:
                relationship = orm.relationship
                owner = relationship.split(".", 1)[0]
                child = orm.mapper or "the child class"
                message = (
                    f"N+1 through {relationship} (lazy={orm.reason!r}): {n}x one query per "
                    f"{owner}: {elide(shape, 60)}"
                )
                fix = (
                    f"{relationship} is lazy={orm.reason!r}, so no loader option applies: "
                    f"query the {child} rows of all {owner} objects at once, "
                    f"select({child}).where(<{child} foreign key>.in_([o.id for o in "
                    f"{owner.lower()}s])), and group them by parent in Python"
                )
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=message,
                count=n,
                location=stack[0],
                fix=fix,
                fingerprint=shape,
                sql=items[0][1].sql,
                db_time=db_time,
                relationship=relationship,
                statements=indexes(items),
                stack=stack,
            )
