"""Detectors: pure functions from what a unit of work did (a ``UnitRecord``) to findings.

Each detector module defines one ``Detector`` (a kind and a ``detect`` function). They read
only plain data (``sqlaudit.model``) and SQL helpers (``sqlaudit.sql``), so every rule is
testable with hand-built records, without a database. ``run_detectors`` runs them over one
unit, sets aside the findings an allowlist of its config allows (``model.allowlist``), merges
one loop's per-iteration findings (``loop_view``) and orders them worst first, the allowed ones
last (``Finding.allowed`` set): callers keep those apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress
from typing import TYPE_CHECKING, Protocol, cast

from sqlaudit._internal import contain
from sqlaudit._validate import check_items
from sqlaudit.detectors._facts import OURS, Facts, may_find
from sqlaudit.detectors._grouping import sharing
from sqlaudit.detectors.autocommit_lock import AutocommitLock
from sqlaudit.detectors.autocommit_read_modify_write import AutocommitReadModifyWrite
from sqlaudit.detectors.autocommit_writes import AutocommitWrites
from sqlaudit.detectors.column_reload import ColumnReload
from sqlaudit.detectors.commit_in_loop import CommitInLoop
from sqlaudit.detectors.discarded_writes import DiscardedWrites
from sqlaudit.detectors.ineffective_rollback import IneffectiveRollback
from sqlaudit.detectors.long_transaction import LongTransaction
from sqlaudit.detectors.loop_view import combine_loops
from sqlaudit.detectors.n_plus_one import NPlusOne
from sqlaudit.detectors.query_budget import QueryBudget
from sqlaudit.detectors.repeated_query import RepeatedQuery
from sqlaudit.detectors.slow_query import SlowQuery
from sqlaudit.detectors.split_transaction import SplitTransaction
from sqlaudit.detectors.stale_identity_map import StaleIdentityMap
from sqlaudit.detectors.transaction_overhead import TransactionOverhead
from sqlaudit.detectors.unused_eager_load import UnusedEagerLoad
from sqlaudit.detectors.write_loop import WriteLoop
from sqlaudit.model import allowlist
from sqlaudit.model.fields import suppressed_of
from sqlaudit.model.frozen import evolve

if TYPE_CHECKING:
    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import QueryRecord, UnitRecord

__all__ = ["DEFAULT_DETECTORS", "Detector", "check_detectors", "lift", "rank", "run_detectors"]


class Detector(Protocol):
    """Extension point: one finding kind, computed from what a unit of work did.

    ``detect(unit, records)`` gets the unit (a ``UnitRecord``: ``config``, ``name``,
    ``statements``, ``counts``, ``query_count``, ``db_time``, ``transaction_records``,
    ``origin_records``...) and ``records``, its statements minus those suppressed for the
    detector's kind by ``sqlaudit.ignore``; it returns findings whose ``statements`` index into
    ``records``. It must not raise (errors are contained and counted, never reach the app).

    A detector may also have ``needs``, a str naming what it looks at (``"lazy"``,
    ``"column"``, ``"read"``, ``"write"``, ``"transactions"``, ``"tx_writes"``,
    ``"stale_reads"``, ``"read_modify_writes"``, ``"eager_loads"``): ``run_detectors`` then
    skips it for a unit with none of that.
    """

    kind: str

    def detect(
        self, unit: UnitRecord, records: Sequence[QueryRecord]
    ) -> Iterable[Finding]:  # pragma: no cover - protocol
        """Findings for ``records`` (the unit's statements, minus those suppressed for kind)."""
        ...


DEFAULT_DETECTORS: tuple[Detector, ...] = (
    NPlusOne(),
    ColumnReload(),
    RepeatedQuery(),
    WriteLoop(),
    QueryBudget(),
    SlowQuery(),
    AutocommitWrites(),
    IneffectiveRollback(),
    CommitInLoop(),
    DiscardedWrites(),
    LongTransaction(),
    StaleIdentityMap(),
    TransactionOverhead(),
    AutocommitLock(),
    AutocommitReadModifyWrite(),
    SplitTransaction(),
    UnusedEagerLoad(),
)


_DEFAULT_TYPES = tuple(map(type, DEFAULT_DETECTORS))


def _is_detector(item: object) -> bool:
    kind = getattr(item, "kind", None)
    return isinstance(kind, str) and bool(kind) and callable(getattr(item, "detect", None))


def check_detectors(detectors: object, *, setting: str = "detectors") -> tuple[Detector, ...]:
    """``detectors`` as a tuple, each with a str ``kind`` and a ``detect`` method; else
    ConfigError (checked when configured, not when the first unit closes)."""
    items = check_items(
        detectors,
        setting,
        "an iterable of detectors (objects with a str kind and a detect(unit, records) method)",
        _is_detector,
        "a detector (an object with a str kind and a detect(unit, records) method)",
    )
    return cast("tuple[Detector, ...]", items)


def run_detectors(
    unit: UnitRecord, detectors: Sequence[Detector] = DEFAULT_DETECTORS
) -> tuple[list[Finding], int]:
    """The findings of ``unit``'s own statements (those of units opened inside it were judged
    when they closed), worst first, capped by its config; and how many detectors failed
    (their errors are logged once and counted, never raised outside strict mode).

    Each finding's ``statements`` index into ``unit.statements``."""
    records = unit.own_statements
    if not records and not unit.query_count and not unit.transaction_records:
        return [], 0  # nothing issued (a request that did not touch the database)
    findings: list[Finding] = []
    with sharing():
        failures = _detect_all(unit, detectors, records, findings)
    if not findings:
        return findings, failures  # most units: nothing to allow, combine, re-index or rank
    # Allowlists (the one place they apply): before loops are combined, so that a loop with
    # one allowed relationship still reports the others, and before the cap.
    findings, allowed = allowlist.apply(findings, unit.config)
    try:
        findings = combine_loops(findings)
    except Exception as exc:
        failures += 1
        contain("loop view", exc)
    findings += allowed
    if unit.nested:  # indexes into the own records -> indexes into all the unit's records
        key = unit.key
        own = [i for i, r in enumerate(unit.statements) if r.unit == key]
        findings = [evolve(f, statements=tuple(own[i] for i in f.statements)) for f in findings]
    return rank(findings, unit.config.max_findings), failures


def rank(findings: Iterable[Finding], limit: int | None = None) -> list[Finding]:
    """``findings`` worst first (severity, DB time, count), at most ``limit`` of them; then
    the allowed ones (``Finding.allowed``), ranked and capped on their own."""
    ranked = list(findings)
    if len(ranked) < 2:  # most units with a finding have one: nothing to order or to split
        return ranked if limit is None or limit > 0 else []
    ranked.sort(key=lambda f: (f.allowed is not None, -f.severity, -f.db_time, -f.count))
    if limit is None:
        return ranked
    split = next((i for i, f in enumerate(ranked) if f.allowed is not None), len(ranked))
    return ranked[:split][:limit] + ranked[split:][:limit]


def lift(
    nested: Iterable[tuple[Finding, Sequence[QueryRecord]]], unit: UnitRecord
) -> list[Finding]:
    """Findings of units opened inside ``unit`` (each with the records it concerns), their
    ``statements`` re-indexed into ``unit.statements`` (records the enclosing unit did not keep,
    past its ``max_records``, drop out of the index)."""
    position = {id(r): i for i, r in enumerate(unit.statements)}  # live records: ids unique
    lifted = []
    for finding, records in nested:
        indexes = tuple(i for r in records if (i := position.get(id(r))) is not None)
        lifted.append(evolve(finding, statements=indexes))
    return lifted


def _detect_all(
    unit: UnitRecord,
    detectors: Sequence[Detector],
    records: Sequence[QueryRecord],
    findings: list[Finding],
) -> int:
    ignored = unit.config.ignore
    facts = Facts(unit, records)
    candidates: set[type] | None = None
    if detectors is DEFAULT_DETECTORS:  # every one of them ours: only those that may find
        candidates = may_find(unit, facts)
        if not candidates:
            return 0
        detectors = list(compress(detectors, map(candidates.__contains__, _DEFAULT_TYPES)))
    suppressed_any = any(map(suppressed_of, records))
    failures = 0
    for detector in detectors:
        if detector.kind in ignored:
            continue
        if type(detector) in OURS:
            if candidates is None:
                candidates = may_find(unit, facts)
            if type(detector) not in candidates:
                continue  # one of ours, and nothing it could find is in this unit
        else:
            needs = getattr(detector, "needs", None)
            if needs is not None and not facts.has(needs):
                continue  # nothing to look at in this unit
        try:
            if suppressed_any:
                keep = [i for i, r in enumerate(records) if detector.kind not in r.suppressed]
                found = [
                    evolve(f, statements=tuple(keep[i] for i in f.statements))
                    for f in detector.detect(unit, [records[i] for i in keep])
                ]
            else:
                found = list(detector.detect(unit, records))
        except Exception as exc:
            failures += 1
            contain(f"detector {detector.kind}", exc)
            continue
        if found:
            findings.extend(found)
    return failures
