"""``audit()`` and ``ignore()``: open a unit of work, close it, detect, report, apply policy."""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import Context, Token
from types import FrameType, TracebackType
from typing import Any, TypeVar, cast

from sqlaudit._internal import contain
from sqlaudit._validate import check_bool
from sqlaudit.capture.loops import loop_of
from sqlaudit.capture.scope import CURRENT, FALLBACK, SUPPRESSED, Scope, current
from sqlaudit.detectors import (
    DEFAULT_DETECTORS,
    Detector,
    check_detectors,
    lift,
    rank,
    run_detectors,
)
from sqlaudit.errors import AuditFailed, ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.findings import Finding, check_kinds
from sqlaudit.model.frozen import evolve
from sqlaudit.model.records import FrozenOrigins, QueryRecord, UnitRecord
from sqlaudit.report import AuditReport, scope_of
from sqlaudit.reporters import LogReporter, Reporter, check_reporters
from sqlaudit.sql.cache import release

__all__ = ["LEFT", "audit", "current_report", "finish_left", "ignore", "leave", "unaudited"]

#: A scope nobody reads (``unaudited``): counts only, no parent.
_VOID = AuditConfig(max_records=0, on_finding="ignore")

F = TypeVar("F", bound=Callable[..., Any])

#: Ends of units left by finalisers (``leave``), oldest first.
LEFT: deque[Callable[[], None]] = deque()


def leave(finish: Callable[[], None]) -> None:
    """For a finaliser: have ``finish`` (a unit's end) called at a safe point, not here. The
    collector runs finalisers at any allocation, also where this thread holds one of
    sqlaudit's plain locks (a memo's, the statement log's...) that ending a unit takes again:
    it would wait for itself for ever. Takes no lock (``deque.append``).

    ``finish_left`` calls it: before the next unit closes (``audit.close``: an enclosing
    audit sees the unit first), at the middlewares' next request, and at interpreter exit."""
    LEFT.append(finish)


def finish_left() -> None:
    """Call the ends that finalisers left (``leave``); never from a finaliser. Each runs in an
    empty context: not as part of whatever runs here (another request, whose span a reporter
    would take for the unit's own)."""
    while LEFT:
        try:
            finish = LEFT.popleft()
        except IndexError:  # another thread took the last one since the check
            return
        try:
            Context().run(finish)
        except Exception as exc:
            contain("finishing a unit a finaliser left", exc, failing=True)


atexit.register(finish_left)


def current_report() -> AuditReport | None:
    """The audit that statements issued here now belong to, or None."""
    scope = current()
    return None if scope is None else scope.owner


#: ``audit(**overrides)`` configs by their overrides: a service opens one audit per request
#: with the same few settings, and building and validating an AuditConfig costs ~12 µs
#: (issue 20). Bounded; settings that cannot be hashed are not cached.
_CONFIGS: dict[tuple[tuple[str, type, Any], ...], AuditConfig] = {}
_CONFIGS_MAX = 64


def _config(overrides: dict[str, Any]) -> AuditConfig:
    if not overrides:
        config = _CONFIGS.get(())
        if config is not None:
            return config
    try:
        # The type is part of the key: True == 1 and 1.0 == 1, but only some are valid.
        values = overrides.values()
        key = tuple(sorted(zip(overrides, map(type, values), values, strict=True)))
        config = _CONFIGS.get(key)
    except TypeError:  # an unhashable value (a list of globs): validated every time
        return AuditConfig.create(**overrides)
    if config is None:
        config = AuditConfig.create(**overrides)
        if len(_CONFIGS) < _CONFIGS_MAX:
            _CONFIGS[key] = config
    return config


#: The default reporter of on_finding="log", shared by every audit: it holds only its logger
#: (building one per unit cost a ``logging.getLogger`` call).
_LOG_REPORTER = LogReporter()


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
            config = _config(overrides)
        elif not isinstance(config, AuditConfig):
            raise ConfigError(f"config must be an AuditConfig, got {type(config).__name__}")
        elif overrides:
            config = config.replace(**overrides)
        self.name = name
        self.config = config
        checked = () if reporters is None else check_reporters(reporters)
        if config.on_finding == "log" and not (
            checked and any(isinstance(r, LogReporter) for r in checked)
        ):
            # ``reporters`` add to the log records of on_finding="log" (issue 19: passing an
            # OTelReporter used to turn them off); a LogReporter among them replaces the
            # default one, and on_finding="ignore" turns them off.
            checked = (_LOG_REPORTER, *checked)
        self.reporters: tuple[Reporter, ...] = checked
        self.detectors = DEFAULT_DETECTORS if detectors is None else check_detectors(detectors)
        self.all_threads = False if all_threads is False else check_bool("all_threads", all_threads)
        self.report: AuditReport | None = None
        self._token: Token[Scope | None] | None = None

    def __enter__(self) -> AuditReport:
        return self._open(sys._getframe(1))

    def _open(self, opener: FrameType | None) -> AuditReport:
        """Open the unit; ``opener`` is the frame running the ``with`` block (its statements'
        call stacks end there; None: where ``callsite.stop_at`` functions say)."""
        if self._token is not None:
            raise RuntimeError("this audit() block is already open; create one per use")
        parent = current()
        report = AuditReport(self.name, self.config, None if parent is None else parent.owner)
        self.report = report
        scope = report._scope
        scope.opener = opener
        self._token = CURRENT.set(scope)
        if self.all_threads:
            FALLBACK.append(scope)
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
        try:  # noqa: SIM105 - once per unit: suppress() is an object and two Python calls
            CURRENT.reset(token)
        except ValueError:
            pass
        if self.all_threads:
            with contextlib.suppress(ValueError):
                FALLBACK.remove(scope_of(report))
        try:
            self.close(report, exc is not None)
        finally:
            release(report)  # the last audit to end empties the statement-text memos

    async def __aenter__(self) -> AuditReport:
        return self._open(sys._getframe(1))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def close(self, report: AuditReport, failing: bool) -> None:
        """Detect, report and apply the policy. Raises AuditFailed only if not ``failing``."""
        if LEFT:  # units a finaliser left (``leave``), nested in this one maybe: theirs first
            finish_left()
        scope = report._scope
        try:
            unit = scope.close()
        except Exception as exc:
            contain("close", exc, scope)
            unit = _frozen(scope)
        report._unit = unit
        # A fault of sqlaudit's own past this point is contained like a listener's: the unit
        # keeps what was judged before it, and the application's block never sees it.
        try:
            findings, failures = run_detectors(unit, self.detectors)
            if failures:
                scope.internal_errors += failures
            if scope.child_findings:
                # A request inside a test: the test reports the request's findings too.
                nested = lift(scope.child_findings, unit)
                findings = rank([*nested, *findings], unit.config.max_findings)
            if findings:  # else the report keeps its empty findings and allowed
                findings = _with_loops(_with_stacks(findings, unit.statements))
                report.findings = tuple(f for f in findings if f.allowed is None)
                report.allowed = tuple(f for f in findings if f.allowed is not None)
        except Exception as exc:
            contain("findings", exc, scope, failing=failing)
        parent = scope.parent
        # A unit that outlived the one it was opened in (a response body finalised late, the
        # enclosing request's unit closed first) rolls up into the nearest one still open.
        while parent is not None and parent.ended is not None:
            parent = parent.parent
        if parent is not None:
            try:
                parent.merge_child(scope, unit, (*report.findings, *report.allowed))
            except Exception as exc:
                contain("merge_child", exc, scope)
        scope.release()
        for reporter in self.reporters:
            try:
                reporter.report(report)
            except Exception as exc:
                contain(f"reporter {type(reporter).__name__}", exc, scope)
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


def _frozen(scope: Scope) -> UnitRecord:
    """The unit as frozen without closing its transactions, else with nothing recorded: a
    fault in ``Scope.close`` still gives the report a unit (its counts, if they can be read)."""
    try:
        return scope.freeze()
    except Exception as exc:
        contain("close", exc, scope)
    return UnitRecord(
        name=scope.name,
        config=scope.config,
        statements=(),
        counts={},
        db_time=0.0,
        overflow=0,
        transaction_records=(),
        origin_records=FrozenOrigins({}, {}),
        stale_reads=(),
        resets=0,
        started=scope.started,
        ended=scope.ended if scope.ended is not None else scope.started,
        internal_errors=scope.internal_errors,
        transactions_past_cap={},
        key=scope.key,
        nested=scope.nested,
        read_modify_writes=(),
        eager_loads=(),
    )


#: Findings of statements repeated by a loop: they name the loop's line (``Finding.loop``).
_LOOP_KINDS = frozenset(
    {"n_plus_one", "column_reload", "repeated_query", "write_loop", "commit_in_loop"}
)


def _with_stacks(findings: Iterable[Finding], records: Sequence[QueryRecord]) -> list[Finding]:
    """``findings`` with a call stack also when a detector gave none (a loop's combined
    finding): its location, then the callers of its first statement, when that statement was
    issued in the same function. Baselines key on the stack's first named function
    (``Finding.identity``), which a comprehension's frame alone does not give."""
    out = []
    for finding in findings:
        site = finding.location
        if not finding.stack and site is not None and finding.statements:
            index = finding.statements[0]
            stack = records[index].stack if index < len(records) else ()
            if stack and (stack[0].file, stack[0].function) == (site.file, site.function):
                out.append(evolve(finding, stack=(site, *stack[1:])))
                continue
        out.append(finding)
    return out


def _with_loops(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` with each loop finding's ``loop`` set (the source is read once per file,
    only for findings); errors leave a finding as it is."""
    out = []
    for finding in findings:
        if finding.loop is None and finding.stack and finding.kind in _LOOP_KINDS:
            try:
                loop = loop_of(finding.stack, finding.origin)
            except Exception as exc:
                contain("loop line", exc)
                loop = None
            if loop is not None:
                out.append(evolve(finding, loop=loop))
                continue
        out.append(finding)
    return out


@contextlib.contextmanager
def unaudited() -> Iterator[None]:
    """Statements issued in the block belong to no unit of work (a test's ``setUp`` under
    the pytest plugin: setup, like a fixture). A fresh scope per block takes them and is
    dropped with it, so nothing accumulates."""
    token = CURRENT.set(Scope("unaudited", _VOID))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):  # exited in another context: leave it
            CURRENT.reset(token)


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
