"""``n_plus_one``: one relationship lazy-loaded once per parent, from one call site.

Exact rule (parent-origin linkage, see ``_origins``): the lazy loads of one relationship from
one line cover >= ``n_plus_one_min`` distinct parents AND a parent came from a query that
returned >= 2 rows, or the parents' origin line ran >= 2 times (a loop of single-row queries).
Two parents each loaded by its own single-row query on different lines (1+1) are not an N+1.
Parents whose origin is unknown (loaded before the audit) cannot prove the 1+1 case and count
as a loop.

The fix follows the origin chain to the root query and names the loader option to add there:
``selectinload`` for collections, ``joinedload`` for many-to-one unless the parent query has a
LIMIT or a large result, chained for nested loads.

Location: the loads' innermost application frame; when no application frame issued them
(library code read the relationship, e.g. FastAPI validating a ``response_model`` after the
endpoint returned), the root query that loaded the parents, which is also where the fix goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._grouping import indexes, partition, record_of
from sqlaudit.detectors._tx import where
from sqlaudit.model.fields import (
    duration_of,
    orm_of,
    parent_of,
    query_of,
    relationship_of,
    stack_of,
)
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.records import FrozenOrigins
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, OriginRecord, QueryRecord, UnitRecord

#: A parent query returning more rows than this gets selectinload even for many-to-one.
LARGE_RESULT = 100
# A parent query that pages (LIMIT, OFFSET alone on PostgreSQL and MySQL, FETCH FIRST/NEXT,
# TOP): selectinload, whose IN batches follow the page, rather than joinedload.
_LIMIT = re.compile(r"\b(LIMIT|OFFSET|FETCH\s+FIRST|FETCH\s+NEXT|TOP)\b", re.IGNORECASE)


def _groups(
    lazy: list[tuple[int, QueryRecord]],
) -> dict[tuple[str, tuple[CallSite, ...]], list[tuple[int, QueryRecord]]]:
    """``partition``'s lazy loads by (relationship, stack), in statement order; loads of no
    named relationship skipped. The keys are read in C: an N+1 is most often one group (one
    loop, one relationship), then taken whole."""
    records = list(map(record_of, lazy))
    relationships = list(map(relationship_of, map(orm_of, records)))
    stacks = list(map(stack_of, records))
    # One group when every load has the first one's relationship and stack: told by
    # ``list.count`` (equality, the relationship's an identity), not by hashing every stack.
    if (
        relationships
        and relationships[0] is not None
        and relationships.count(relationships[0]) == len(relationships)
        and stacks.count(stacks[0]) == len(stacks)
    ):
        return {(relationships[0], stacks[0]): list(lazy)}
    groups: dict[tuple[str, tuple[CallSite, ...]], list[tuple[int, QueryRecord]]] = {}
    setdefault = groups.setdefault
    for key, item in zip(zip(relationships, stacks, strict=True), lazy, strict=True):
        if key[0] is not None:
            setdefault(key, []).append(item)
    return groups


class _Origins:
    """Lookups over a unit's origins and the SQL of the statements they issued."""

    def __init__(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> None:
        self.origins = unit.origin_records
        self.records = records
        self._sql: dict[int, str] | None = None

    def get(self, oid: int) -> OriginRecord | None:
        return self.origins.get(oid) if oid else None

    def parents_of(self, oids: Iterable[int]) -> set[int]:
        """The parent origin ids of origins ``oids`` (unknown ids and 0 skipped)."""
        origins = self.origins
        if isinstance(origins, FrozenOrigins):  # a closed unit's: read without freezing each
            return origins.parents(oids)
        return {origin.parent for oid in oids if oid and (origin := origins.get(oid)) is not None}

    def limited_or_large(self, origin: OriginRecord) -> bool:
        if self._sql is None:  # built only when a finding needs it
            self._sql = {}
            for record in self.records:
                if record.orm is not None and record.orm.query:
                    self._sql.setdefault(record.orm.query, record.sql)
        sql = self._sql.get(origin.oid, "")
        return origin.rows > LARGE_RESULT or bool(_LIMIT.search(sql))

    def loader(self, relationship: str, many_to_one: bool, parent: OriginRecord | None) -> str:
        if many_to_one and (parent is None or not self.limited_or_large(parent)):
            return f"joinedload({relationship})"
        return f"selectinload({relationship})"

    def chain(self, origin: OriginRecord | None) -> tuple[list[str], OriginRecord | None]:
        """Loader options from the root query down to ``origin``, and the root origin."""
        links: list[str] = []
        seen: set[int] = set()
        while origin is not None and origin.load in ("lazy", "eager") and origin.relationship:
            if origin.oid in seen:
                break
            seen.add(origin.oid)
            parent = self.get(origin.parent)
            links.insert(0, self.loader(origin.relationship, origin.many_to_one, parent))
            if origin.load == "eager":
                break  # an eager batch runs at its root query's line
            origin = parent
        return links, origin


class NPlusOne:
    """Lazy loads of one relationship, one line, many parents, from a multi-row query or a
    loop of queries."""

    kind = "n_plus_one"
    #: ``run_detectors`` skips it for a unit with no lazy loads.
    needs = "lazy"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        origins = _Origins(unit, records)
        for (relationship, stack), items in _groups(partition(records)["lazy"]).items():
            group = list(map(record_of, items))  # read once for the loads and the time
            loads = list(filter(None, map(orm_of, group)))
            parents = set(map(parent_of, loads))
            db_time: float = sum(map(duration_of, group))  # ``total_time(items)``
            if len(parents) < config.n_plus_one_min or db_time * 1000 < config.min_group_ms:
                continue
            # Parents' origins via the lazy loads' origins' parent field: freezing every lazy
            # load's own origin would cost a record per statement.
            parent_oids = origins.parents_of(map(query_of, loads))
            parent_origins = {oid: origins.get(oid) for oid in parent_oids}
            known = [o for o in parent_origins.values() if o is not None]
            if known and len(known) == len(parent_origins):
                multi_row = any(o.rows >= 2 for o in known)
                stacks = [o.stack for o in known]
                looped = any(stacks.count(s) >= 2 for s in stacks)
                if not (multi_row or looped):
                    continue  # 1+1: separate single-row queries on different lines
            sample = items[0][1]
            this = origins.get(sample.orm.query) if sample.orm is not None else None
            parent = known[0] if known else None
            yield self._finding(
                relationship, stack, items, len(parents), db_time, sample, this, parent, origins,
                sum(o.rows for o in known),
            )  # fmt: skip

    def _finding(
        self,
        relationship: str,
        stack: tuple[CallSite, ...],
        items: list[tuple[int, QueryRecord]],
        parents: int,
        db_time: float,
        sample: QueryRecord,
        this: OriginRecord | None,
        parent: OriginRecord | None,
        origins: _Origins,
        parent_rows: int = 0,
    ) -> Finding:
        owner = relationship.split(".", 1)[0]
        n = len(items)
        option = origins.loader(relationship, bool(this and this.many_to_one), parent)
        links, root = origins.chain(parent)
        root_site = root.stack[0] if root is not None and root.stack else None
        message = f"N+1: {relationship} lazy-loaded {n}x, once per {owner} ({parents} parents)"
        if parent is not None and links and parent.relationship:
            # The parents were themselves loaded through a relationship (``user.posts`` of a
            # User the query loaded): name it, not the root query as if it had loaded them.
            message += (
                f"; the {owner} rows came from {parent.relationship} ({parent_rows} rows) of "
                f"the query at {where(root_site)}"
            )
        elif parent is not None:
            message += (
                f"; the {owner} rows came from the query at {where(root_site)} ({parent.rows} rows)"
            )
        location = stack[0] if stack else None
        if location is None and parent is not None and root_site is not None:
            # No application frame issued the loads: library code read the relationship (FastAPI
            # validating a SQLModel/pydantic ``response_model`` after the endpoint returned). The
            # query that loaded the parents is the application's line to name, and to fix.
            location = root_site
            message += "; loaded by library code only (e.g. serializing a response model)"
        if root_site is not None:
            options = ".".join([*links, option])
            fix = f"add .options({options}) to the query at {where(root_site)}"
        else:
            fix = f"load it with the query that loads {owner}: add .options({option}) to it"
        if this is not None and this.strategy == "immediate":
            fix += f" (lazy='immediate' on {relationship} loads per row: use selectinload)"
        return Finding(
            kind=self.kind,
            severity=Severity.WARNING,
            message=message,
            count=n,
            location=location,
            fix=fix,
            fingerprint=fingerprint(sample.sql, sample.dialect),
            sql=sample.sql,
            db_time=db_time,
            relationship=relationship,
            statements=indexes(items),
            stack=stack,
            origin=parent.stack[0] if parent is not None and parent.stack else None,
        )
