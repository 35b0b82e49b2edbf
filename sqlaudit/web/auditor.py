"""Framework-free request auditing shared by the WSGI and ASGI middlewares.

One :class:`RequestAuditor` per middleware holds the validated options; one :class:`Unit` per
audited request holds its report. The middlewares keep what differs between the protocols:
where the ContextVar is set and reset, how headers are added, where the route is read.

1. ``begin``: excluded paths, and unsampled requests whose count nobody shows, open nothing
   (their statements cost what an instrumented engine costs with no scope). An unsampled
   request whose count is shown (header, Server-Timing, development page) gets a counting
   report (``max_records=0``, no detectors, no reporters); with no development page to show
   it, ``finish`` merely ends its scope (no freeze: issue 20) and its route is not looked for.
   A sampled request gets a full report named ``"{method} {path with ids collapsed}"`` until
   its route is known.
2. ``response_headers``: at response start; detectors run on the statements issued so far.
3. ``finish``: rename to ``"{method} {route}"``, apply the route's budget, then detectors,
   reporters and policy (``audit.close``). ``AuditFailed`` only when the application did not
   fail; any other sqlaudit error is logged once and the response is left alone. ``complete``
   finishes a unit early, while the request's span is still open (the ASGI middleware before
   the last body message, the Flask integration in ``teardown_request``), and keeps its
   ``AuditFailed`` for the protocol's own ``finish``, which is then a no-op that raises it.
4. ``defer``: a finaliser (a WSGI body collected unclosed, an ASGI coroutine closed while its
   application ran) only queues its unit. The collector runs finalisers at any allocation,
   also in a thread holding one of sqlaudit's plain locks (a memo's, the statement log's, the
   development page's), which ``finish`` takes again: finishing there waited for ever. The
   queue (``sqlaudit._audit.leave``) is drained by the next ``begin`` or ``finish``, before
   any unit closes (an enclosing test's audit sees the request first), by ``drain``, and at
   interpreter exit.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import partial
from random import random
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlaudit._audit import LEFT, audit, finish_left, leave
from sqlaudit._internal import contain
from sqlaudit.capture.explain import Plan, Samples, plans, plans_async
from sqlaudit.capture.scope import current
from sqlaudit.detectors import run_detectors
from sqlaudit.errors import AuditFailed
from sqlaudit.report import AuditReport, scope_of
from sqlaudit.report.entry import mark
from sqlaudit.sql.cache import release
from sqlaudit.web.devpage import DevPage
from sqlaudit.web.names import MAX_PATH as _MAX_PATH
from sqlaudit.web.names import collapse_ids
from sqlaudit.web.options import Options

if TYPE_CHECKING:
    from sqlaudit.model.config import AuditConfig

__all__ = ["RequestAuditor", "Unit", "collapse_ids"]


class Unit:
    """One audited request: its report and what the middleware learnt about the response."""

    __slots__ = (
        "__weakref__",
        "failed",
        "finished",
        "method",
        "path",
        "provisional",
        "report",
        "route",
        "sampled",
        "samples",
        "scope",
        "seq",
        "status",
    )

    def __init__(
        self, report: AuditReport, method: str, path: str, sampled: bool, provisional: str = ""
    ) -> None:
        self.report = report
        #: The capture state the middleware makes current while the application runs.
        self.scope = scope_of(report)
        self.method = method
        self.path = path
        self.sampled = sampled
        #: ``"{method} {path with ids collapsed}"`` when computed, else "".
        self.provisional = provisional
        #: The route template, once the framework exposed it ("": not wanted, see ``begin``).
        self.route: str | None = None
        #: The response status code, once the response started.
        self.status: int | None = None
        #: True once the audit closed (``finish`` or ``complete``).
        self.finished = False
        #: The ``AuditFailed`` of an early ``complete``, raised by the later ``finish``.
        self.failed: AuditFailed | None = None
        #: Bind values kept for EXPLAIN, until ``show_deferred`` asks for the plans (ASGI).
        self.samples: Samples | None = None
        #: Its entry on the development page (``Entry.seq``), 0 when it has none.
        self.seq = 0


class RequestAuditor:
    """The options of one middleware, validated; opens and closes the audit of each request."""

    def __init__(self, config: AuditConfig | None = None, **options: Any) -> None:
        opts = Options.create(config, options)
        self.options = opts
        self.config = opts.config
        self.sample_rate = opts.sample_rate
        self.exclude = opts.exclude
        self.header = opts.header
        self.server_timing = opts.server_timing
        self._budget_configs: dict[tuple[AuditConfig, int], AuditConfig] = {}
        self.dev_page = (
            None if opts.dev_page is None else DevPage(opts.dev_page, opts.dev_page_size)
        )
        #: Keep bind values of sampled requests' SELECTs for EXPLAIN (development only).
        self.explain = opts.explain
        #: The protocol asks for the plans itself, after the response (``show_deferred``):
        #: the ASGI middleware, from its coroutine. Else ``finish`` asks for them.
        self.defer_plans = False
        # One closer for every sampled request: audit.close() reads only its reporters,
        # detectors and policy (on_finding, fail_on), never per-request state.
        self._closer = audit(
            "request", opts.config, reporters=opts.reporters, detectors=opts.detectors
        )
        self._counting_config = opts.config.replace(max_records=0)
        self._counter = audit("request", self._counting_config, reporters=(), detectors=())
        #: Unsampled requests are counted only when something shows the count.
        self.count_unsampled = (
            self.header is not None or self.server_timing or self.dev_page is not None
        )
        #: The middleware must see the response start (headers, status, Flask's route).
        self.watch_response = self.count_unsampled

    # -- per request ---------------------------------------------------------------------

    def begin(self, method: str, path: str) -> Unit | None:
        """The unit to audit this request in, or None to let it through untouched."""
        try:
            if LEFT:  # units finalisers left (``defer``)
                finish_left()
            if self.exclude and self._excluded(method, path):
                return None
            scope = current()
            parent = None if scope is None else scope.owner
            if parent is not None:
                # Inside an enclosing audit (a test auditing the whole request): the request is
                # judged on its own (its findings roll up into the test's), always in full and
                # with the enclosing audit's thresholds (a test's, not production floors); the
                # route budgets, reporters and policy stay the middleware's.
                name = f"{method[:16]} {collapse_ids(path)}"
                report = AuditReport(name, parent.config, parent)
                mark(report, "request")
                return self._sampled(Unit(report, method, path, True, name))
            rate = self.sample_rate
            if rate >= 1.0 or (rate > 0.0 and random() < rate):
                name = f"{method[:16]} {collapse_ids(path)}"
                report = AuditReport(name, self.config, None)
                mark(report, "request")
                return self._sampled(Unit(report, method, path, True, name))
            if not self.count_unsampled:
                return None
            unit = Unit(AuditReport(method[:16], self._counting_config), method, path, False)
            if self.dev_page is None:
                unit.route = ""  # nothing reads a counting unit's name: no route to look for
            return unit
        except Exception as exc:
            contain("middleware: opening the request's audit", exc)
            return None

    def response_headers(self, unit: Unit) -> list[tuple[str, str]]:
        """Headers to add when the response starts (never raises outside strict mode)."""
        headers: list[tuple[str, str]] = []
        try:
            report = unit.report
            count = report.query_count
            if self.header is not None:
                value = str(count)
                if unit.sampled:
                    self._prepare(unit)
                    found, _ = run_detectors(report.snapshot(), self._closer.detectors)
                    kinds = " ".join(dict.fromkeys(f.kind for f in found if f.allowed is None))
                    value += f'; findings="{kinds}"'
                headers.append((self.header, value))
            if self.server_timing:
                noun = "statement" if count == 1 else "statements"
                headers.append(
                    ("Server-Timing", f'db;dur={report.db_time_ms:.1f};desc="{count} SQL {noun}"')
                )
        except Exception as exc:
            contain("middleware: response headers", exc)
            return []
        return headers

    def finish(self, unit: Unit, failing: bool) -> None:
        """Close the unit's audit: detectors, reporters, policy, development page.

        Raises AuditFailed when the policy says so and ``failing`` is False; never anything
        else outside strict mode, and nothing at all while the application is failing. A unit
        already finished is not finished again: the ``AuditFailed`` its ``complete`` kept is
        raised now (unless ``failing``). Never call it from a finaliser: ``defer``.
        """
        if LEFT:  # units finalisers left (``defer``)
            finish_left()
        self._finish(unit, failing)

    def defer(self, unit: Unit) -> None:
        """What a finaliser calls instead of ``finish``: ``unit`` ends later, at a safe point,
        as an early end (reported, never raised; ``sqlaudit._audit.leave``)."""
        if not unit.finished:
            leave(partial(self._finish_left, unit))

    def drain(self) -> None:
        """Finish now the units finalisers left (``defer``), e.g. before reading the page."""
        finish_left()

    def _finish_left(self, unit: Unit) -> None:
        self._finish(unit, failing=True)
        samples, unit.samples = unit.samples, None
        if samples is not None:  # kept for show_deferred, which no coroutine will call
            samples.clear()

    def _finish(self, unit: Unit, failing: bool) -> None:
        if unit.finished:
            kept, unit.failed = unit.failed, None
            if kept is not None and not failing:
                raise kept
            return
        unit.finished = True
        report = unit.report
        if not unit.sampled and self.dev_page is None:
            self._stop_counting(unit)
            return
        closer = self._counter
        try:
            if unit.sampled:
                self._prepare(unit)
                if not (self.exclude and unit.route and self._excluded_name(report.name)):
                    closer = self._closer
            elif self.dev_page is not None:
                report.name = self._name(unit)
        except Exception as exc:
            contain("middleware: naming the request", exc, report, failing=failing)
        failed: AuditFailed | None = None
        try:
            closer.close(report, failing)
        except AuditFailed as exc:
            failed = exc
        except Exception as exc:
            contain("middleware: closing the audit", exc, report, failing=failing)
        # Bind values kept for EXPLAIN leave the scope now, whatever happens next.
        samples, unit.scope.explain = unit.scope.explain, None
        if closer is self._closer or not unit.sampled:
            if samples is not None and self.defer_plans:
                # On the page now (a client reading it after the response finds the request),
                # its plans added by show_deferred.
                unit.samples, samples = samples, None
                unit.seq = self._add(unit, {})
            else:
                self._show(unit, samples)
        if samples is not None:
            samples.clear()
        release(report)  # after the development page summarised it: the last empties memos
        if failed is not None:
            raise failed

    def _stop_counting(self, unit: Unit) -> None:
        """End a counting unit nothing but its response headers read (issue 20): no freeze,
        no detectors, no reporters. Its counts were read at response start; the scope stops
        taking statements and lets go of what its listeners kept, as a closed one does."""
        scope = unit.scope
        try:
            scope.ended = perf_counter()
            scope.release()
        except Exception as exc:
            contain("middleware: closing the audit", exc, unit.report, failing=True)
        release(unit.report)

    def complete(self, unit: Unit, failing: bool = False) -> None:
        """Finish ``unit`` now, keeping its ``AuditFailed`` for the later ``finish``.

        For a unit whose request's span ends before the protocol is done with the request
        (OpenTelemetry's ASGI middleware ends it with the last body message, Flask's in
        ``teardown_request``): reporters then still find that span current and recording.
        """
        try:
            self.finish(unit, failing)
        except AuditFailed as exc:
            unit.failed = exc

    # -- helpers -------------------------------------------------------------------------

    def _sampled(self, unit: Unit) -> Unit:
        if self.explain:
            unit.scope.explain = Samples()
        return unit

    async def show_deferred(self, unit: Unit) -> None:
        """Ask for the plans of a finished unit whose ``finish`` left them to the protocol
        (``defer_plans``) and add them to its entry on the development page; drops the bind
        values."""
        samples, unit.samples = unit.samples, None
        if samples is None:
            return
        report = unit.report
        found: dict[str, Plan] = {}
        try:
            try:
                found = await plans_async(report.statements, report.findings, samples)
            except Exception:  # no greenlet installed: sync drivers can still answer
                found = plans(report.statements, report.findings, samples)
        except Exception as exc:
            contain("middleware: EXPLAIN", exc, report, failing=True)
        finally:
            samples.clear()
        if found and self.dev_page is not None:
            try:
                self.dev_page.explained(unit.seq, report, found)
            except Exception as exc:
                contain("middleware: development page", exc, report, failing=True)

    def _show(self, unit: Unit, samples: Samples | None = None) -> None:
        found: dict[str, Plan] = {}
        if samples is not None and self.dev_page is not None:
            try:
                found = plans(unit.report.statements, unit.report.findings, samples)
            except Exception as exc:
                contain("middleware: EXPLAIN", exc, unit.report, failing=True)
        self._add(unit, found)

    def _add(self, unit: Unit, found: dict[str, Plan]) -> int:
        """Add ``unit`` to the development page; its entry's ``seq`` (0: not added)."""
        if self.dev_page is None:
            return 0
        try:
            report = unit.report
            path = collapse_ids(unit.path)
            return self.dev_page.add(report, unit.status, unit.sampled, path, found)
        except Exception as exc:
            contain("middleware: development page", exc, unit.report, failing=True)
            return 0

    def _name(self, unit: Unit) -> str:
        if unit.route:
            return f"{unit.method[:16]} {unit.route[:_MAX_PATH]}"
        if not unit.provisional:
            unit.provisional = f"{unit.method[:16]} {collapse_ids(unit.path)}"
        return unit.provisional

    def _prepare(self, unit: Unit) -> None:
        """Name the report after its route and give it the route's budget."""
        report = unit.report
        report.name = self._name(unit)
        budget = self.budget_for(report.name)
        if budget is not None:
            key = (report.config, budget)
            config = self._budget_configs.get(key)
            if config is None:
                config = self._budget_configs[key] = report.config.replace(max_queries=budget)
            report.config = config

    def budget_for(self, name: str) -> int | None:
        """The ``max_queries`` budget of the unit ``name``: exact key, else first glob."""
        budget = self.options.exact_budgets.get(name)
        if budget is not None:
            return budget
        for pattern, value in self.options.pattern_budgets:
            if fnmatchcase(name, pattern):
                return value
        return None

    def _excluded(self, method: str, path: str) -> bool:
        return any(
            fnmatchcase(f"{method} {path}" if " " in pattern else path, pattern)
            for pattern in self.exclude
        )

    def _excluded_name(self, name: str) -> bool:
        method, _, path = name.partition(" ")
        return self._excluded(method, path)
