"""``stale_identity_map``: a Session re-reads rows it holds from an earlier transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, QueryRecord, StaleRead, UnitRecord


class StaleIdentityMap:
    """SELECTs that returned rows the session held, unexpired, from an earlier database
    transaction (autocommit, or a session kept across commits / units of work): the session
    keeps its old objects and ignores the rows' current values. A SELECT of the same class
    that returns only rows the session does not hold is not stale."""

    kind = "stale_identity_map"
    #: ``run_detectors`` skips it for a unit with no stale-read candidates.
    needs = "stale_reads"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        groups: dict[tuple[str, CallSite | None], list[StaleRead]] = {}
        for read in unit.own_stale_reads:
            site = read.stack[0] if read.stack else None
            groups.setdefault((read.mapper, site), []).append(read)
        for (mapper, site), reads in groups.items():
            held = max(r.held for r in reads)
            why = (
                "the session autocommits, so every statement is its own transaction"
                if any(r.autocommit for r in reads)
                else "it outlived the transaction that loaded them"
            )
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"stale identity map: re-read {held} {mapper} row(s) the session already "
                    f"held from an earlier transaction ({why}); the values the database "
                    "returned for them were ignored"
                ),
                count=len(reads),
                location=site,
                fix=(
                    "use a Session per request (unit of work) in a real transaction; to "
                    "re-read on purpose add .execution_options(populate_existing=True) to "
                    "the query, or call session.expire_all() first"
                ),
                relationship=mapper,
            )
