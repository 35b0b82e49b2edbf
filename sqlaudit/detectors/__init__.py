"""Detectors: pure functions from a unit's recorded statements to findings.

Each detector module defines one ``Detector`` (a kind and a ``detect`` function). They see
only recorded data, so every rule is testable without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from sqlaudit.detectors.autocommit_writes import AutocommitWrites
from sqlaudit.detectors.column_reload import ColumnReload
from sqlaudit.detectors.commit_in_loop import CommitInLoop
from sqlaudit.detectors.discarded_writes import DiscardedWrites
from sqlaudit.detectors.ineffective_rollback import IneffectiveRollback
from sqlaudit.detectors.long_transaction import LongTransaction
from sqlaudit.detectors.n_plus_one import NPlusOne
from sqlaudit.detectors.query_budget import QueryBudget
from sqlaudit.detectors.repeated_query import RepeatedQuery
from sqlaudit.detectors.slow_query import SlowQuery
from sqlaudit.detectors.stale_identity_map import StaleIdentityMap
from sqlaudit.detectors.transaction_overhead import TransactionOverhead
from sqlaudit.detectors.write_loop import WriteLoop
from sqlaudit.errors import check_items

if TYPE_CHECKING:
    from sqlaudit.capture.scope import AuditReport
    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import QueryRecord

__all__ = ["DEFAULT_DETECTORS", "Detector", "check_detectors"]


class Detector(Protocol):
    """Extension point: one finding kind, computed from recorded statements."""

    kind: str

    def detect(
        self, report: AuditReport, records: Sequence[QueryRecord]
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
)


def _is_detector(item: object) -> bool:
    kind = getattr(item, "kind", None)
    return isinstance(kind, str) and bool(kind) and callable(getattr(item, "detect", None))


def check_detectors(detectors: object, *, setting: str = "detectors") -> tuple[Detector, ...]:
    """``detectors`` as a tuple, each with a str ``kind`` and a ``detect`` method; else
    ConfigError (checked when configured, not when the first unit closes)."""
    items = check_items(
        detectors,
        setting,
        "an iterable of detectors (objects with a str kind and a detect(report, records) method)",
        _is_detector,
        "a detector (an object with a str kind and a detect(report, records) method)",
    )
    return cast("tuple[Detector, ...]", items)
