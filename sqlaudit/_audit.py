"""``audit()`` and ``ignore()``: open a unit of work, close it, detect, report, apply policy."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from contextvars import Token
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar, cast

from sqlaudit._internal import internal_error
from sqlaudit.capture.scope import CURRENT, FALLBACK, SUPPRESSED, AuditReport, current
from sqlaudit.detectors import DEFAULT_DETECTORS, Detector, check_detectors
from sqlaudit.detectors._grouping import partition, sharing
from sqlaudit.detectors.loop_view import combine_loops
from sqlaudit.errors import AuditFailed, ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.findings import Finding, check_kinds
from sqlaudit.model.records import QueryRecord
from sqlaudit.reporters import LogReporter, Reporter, check_reporters

__all__ = ["audit", "current_report", "ignore", "run_detectors"]

F = TypeVar("F", bound=Callable[..., Any])


def current_report() -> AuditReport | None:
    """The audit that statements issued here now belong to, or None."""
    return current()


def run_detectors(
    report: AuditReport, detectors: Sequence[Detector] = DEFAULT_DETECTORS
) -> list[Finding]:
    """All findings for ``report``'s recorded statements, worst first, capped by config."""
    config = report.config
    records = report.statements
    if not records and not report.query_count and not report.transaction_records:
        return []  # nothing issued (a request that did not touch the database)
    suppressed_any = any(r.suppressed for r in records)
    findings: list[Finding] = []
    with sharing():
        _detect_all(report, detectors, records, suppressed_any, findings)
    try:
        findings = combine_loops(findings)
    except Exception as exc:
        report.internal_errors += 1
        internal_error("loop view", exc)
    findings.sort(key=lambda f: (-f.severity, -f.db_time, -f.count))
    if config.max_findings is not None:
        findings = findings[: config.max_findings]
    return findings


def _detect_all(
    report: AuditReport,
    detectors: Sequence[Detector],
    records: Sequence[QueryRecord],
    suppressed_any: bool,
    findings: list[Finding],
) -> None:
    config = report.config
    facts = _Facts(report, records)
    for detector in detectors:
        if detector.kind in config.ignore:
            continue
        needs = getattr(detector, "_needs", None)
        if needs is not None and not facts.has(needs):
            continue  # a built-in detector with nothing to look at in this unit
        try:
            if suppressed_any:
                keep = [i for i, r in enumerate(records) if detector.kind not in r.suppressed]
                found = [
                    dataclasses.replace(f, statements=tuple(keep[i] for i in f.statements))
                    for f in detector.detect(report, [records[i] for i in keep])
                ]
            else:
                found = list(detector.detect(report, records))
        except Exception as exc:
            report.internal_errors += 1
            internal_error(f"detector {detector.kind}", exc)
            continue
        if found:
            findings.extend(found)


class _Facts:
    """What a unit holds, for skipping the built-in detectors that would find nothing (each
    names what it looks at in ``_needs``): a unit of ten SELECTs runs five detectors, not
    thirteen. Computed on first use; the record partition is the one detectors share."""

    __slots__ = ("_cache", "_records", "_report")

    def __init__(self, report: AuditReport, records: Sequence[QueryRecord]) -> None:
        self._report = report
        self._records = records
        self._cache: dict[str, bool] = {}

    def has(self, need: str) -> bool:
        known = self._cache.get(need)
        if known is None:
            known = self._cache[need] = self._compute(need)
        return known

    def _compute(self, need: str) -> bool:
        report = self._report
        if need in ("lazy", "column", "read", "write"):
            return bool(partition(self._records)[need])
        if need == "transactions":
            return bool(report.transaction_records)
        if need == "tx_writes":
            return any(tx.writes for tx in report.transaction_records)
        if need == "stale_reads":
            return bool(report.stale_reads)
        return True  # unknown: run the detector


class audit:  # noqa: N801 - used like a function: ``with sqlaudit.audit("GET /users"):``
    """Audit the statements issued inside a block: ``with`` / ``async with`` / decorator.

    ``name`` names the unit of work (``"GET /users"``); ``config`` is an :class:`AuditConfig`
    and keyword ``overrides`` replace some of its fields (validated). ``reporters`` receive the
    closed report; by default findings are logged on logger ``sqlaudit`` when
    ``on_finding="log"``. Scopes nest: a nested audit's statements also count in its parent.

    ``all_threads=True`` also gives this audit the statements of threads and tasks that have
    no audit of their own while it is open (a test client serving the app in a thread), and
    makes audits opened there its children.
    """

    def __init__(
        self,
        name: str = "audit",
        config: AuditConfig | None = None,
        *,
        reporters: Iterable[Reporter] | None = None,
        detectors: Sequence[Detector] | None = None,
        all_threads: bool = False,
        **overrides: Any,
    ) -> None:
        if not isinstance(name, str) or not name:  # type: ignore[redundant-expr]  # runtime check
            raise ConfigError(f"audit name must be a non-empty str, got {name!r}")
        if config is None:
            config = AuditConfig.create(**overrides)
        elif not isinstance(config, AuditConfig):
            raise ConfigError(f"config must be an AuditConfig, got {type(config).__name__}")
        elif overrides:
            config = config.replace(**overrides)
        self.name = name
        self.config = config
        if reporters is None:
            reporters = (LogReporter(),) if config.on_finding == "log" else ()
        self.reporters: tuple[Reporter, ...] = check_reporters(reporters)
        self.detectors = DEFAULT_DETECTORS if detectors is None else check_detectors(detectors)
        if not isinstance(all_threads, bool):
            raise ConfigError(f"all_threads must be True or False, got {all_threads!r}")
        self.all_threads = all_threads
        self.report: AuditReport | None = None
        self._token: Token[AuditReport | None] | None = None

    def __enter__(self) -> AuditReport:
        if self._token is not None:
            raise RuntimeError("this audit() block is already open; create one per use")
        parent = current()
        report = AuditReport(self.name, self.config, parent)
        self.report = report
        self._token = CURRENT.set(report)
        if self.all_threads:
            FALLBACK.append(report)
        return report

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        report = self.report
        token = self._token
        self._token = None
        if report is None or token is None:
            raise RuntimeError("this audit() block was exited without being entered")
        # Exited in another context than it was entered in (e.g. a generator finalised
        # elsewhere): ContextVar.reset raises ValueError; the scope is closed all the same.
        with contextlib.suppress(ValueError):
            CURRENT.reset(token)
        if self.all_threads:
            with contextlib.suppress(ValueError):
                FALLBACK.remove(report)
        self.close(report, exc is not None)

    async def __aenter__(self) -> AuditReport:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def close(self, report: AuditReport, failing: bool) -> None:
        """Detect, report and apply the policy. Raises AuditFailed only if not ``failing``."""
        report.ended = perf_counter()
        report.flush_load = None
        try:
            for tx in report.tx_all:
                tx.settle()
            report.transaction_records = tuple(tx.freeze(report.ended) for tx in report.tx_all)
        except Exception as exc:
            report.internal_errors += 1
            internal_error("transactions.close", exc)
        report.findings = tuple(run_detectors(report, self.detectors))
        if report.parent is not None:
            try:
                report.parent.merge_child(report)
            except Exception as exc:
                report.internal_errors += 1
                internal_error("merge_child", exc)
        # Drop the references to sessions and statement ids (merged into the parent, if any).
        report.orm_statements.clear()
        report.sessions.clear()
        for reporter in self.reporters:
            try:
                reporter.report(report)
            except Exception as exc:
                report.internal_errors += 1
                internal_error(f"reporter {type(reporter).__name__}", exc)
        config = self.config
        if (
            not failing
            and config.on_finding == "raise"
            and any(f.severity >= config.fail_on for f in report.findings)
        ):
            raise AuditFailed(report)

    def __call__(self, fn: F) -> F:
        """Use as a decorator: each call of ``fn`` is one unit of work."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh():
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh():
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    def _fresh(self) -> audit:
        return audit(
            self.name,
            self.config,
            reporters=self.reporters,
            detectors=self.detectors,
            all_threads=self.all_threads,
        )


class ignore:  # noqa: N801 - used like a function: ``with sqlaudit.ignore("n_plus_one"):``
    """Suppress finding kinds for statements issued inside the block (still counted)."""

    def __init__(self, *kinds: str) -> None:
        if not kinds:
            raise ConfigError("ignore() needs at least one finding kind, got none")
        self.kinds = check_kinds(kinds, setting="ignore()")
        self._tokens: list[Token[frozenset[str]]] = []

    def __enter__(self) -> None:
        self._tokens.append(SUPPRESSED.set(SUPPRESSED.get() | self.kinds))

    def __exit__(self, *exc: object) -> None:
        SUPPRESSED.reset(self._tokens.pop())

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()
