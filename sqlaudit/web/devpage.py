"""The development page: the last requests' audits as HTML. Development only.

Served by the middlewares at ``dev_page="/_sqlaudit"`` (off by default). Plain HTML and CSS,
no script at all (the page is sent with a Content-Security-Policy that forbids scripts);
``<details>`` elements fold requests and statements open, and links with a query string
choose the view (no JavaScript):

* ``?view=requests`` (default): each request's statements in execution order on a timeline
  grouped by transaction (begin, statements, idle stretches, commit or rollback), each with
  its whole SQL formatted, its duration and its application stack; findings link to their
  statements and back;
* ``?view=routes``: one row per route with request and finding counts;
* ``&findings=1``: only requests (routes) with findings; ``&route=NAME``: one route's requests;
  ``?request=N``: request ``N`` alone, unfolded (its anchor is ``#rN``).

Everything shown is escaped, and nothing shown is a bind value or a literal: statements appear
as fingerprints (literals and placeholders as ``?``), request paths with their identifiers
collapsed (``/streams/{id}``, never the query string). It still reveals route names, SQL
shapes and source file paths, which is why it must stay off in production. Memory is bounded:
``dev_page_size`` requests of at most ``timeline.MAX_STEPS`` statements each.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from sqlaudit._internal import fork_safe
from sqlaudit._validate import check_int, check_path
from sqlaudit.model.records import CallSite, StatementKind
from sqlaudit.report.text import format_site
from sqlaudit.sql.fingerprint import elide, fingerprint
from sqlaudit.sql.printable import printable
from sqlaudit.web.devhtml import render
from sqlaudit.web.timeline import Block, build

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from sqlaudit.capture.explain import Plan
    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import QueryRecord
    from sqlaudit.report import AuditReport

__all__ = ["HEADERS", "DevPage", "Entry", "Item", "Shape", "View", "entry", "parse_view"]

#: Statement shapes listed per request at most.
MAX_SHAPES = 25
#: Longest query string read (the page's own links are short).
_MAX_QUERY = 2048


@dataclass(frozen=True, slots=True)
class Shape:
    """One statement shape of a request: how often, where from, how long in total."""

    count: int
    sql: str
    site: str
    ms: float


@dataclass(frozen=True, slots=True)
class Item:
    """One finding, as text (no SQL values)."""

    kind: str
    severity: str
    message: str
    location: str
    fix: str
    #: 1-based numbers of the statements it names (those on the page's timeline).
    statements: tuple[int, ...] = ()
    #: What EXPLAIN said of its statements' plan, e.g. a full scan (``explain=True``).
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """What the page keeps of one request: summaries only, never the report itself."""

    when: float
    name: str
    status: int | None
    sampled: bool
    queries: int
    db_ms: float
    ms: float
    overflow: int
    internal_errors: int
    findings: tuple[Item, ...]
    shapes: tuple[Shape, ...]
    #: Position among the requests the page saw (1 = the first): the stable anchor ``r{seq}``.
    seq: int = 0
    #: The request's real path, identifiers collapsed (``/streams/{id}``), or "".
    path: str = ""
    #: The timeline (sampled requests only) and the statements it left out.
    blocks: tuple[Block, ...] = ()
    left_out: int = 0
    #: EXPLAIN plans by statement fingerprint (``explain=True``).
    plans: Mapping[str, Plan] = field(default_factory=dict)


def _notes(
    finding: Finding, statements: Sequence[QueryRecord], found: Mapping[str, Plan]
) -> tuple[str, ...]:
    """What the plan of a finding's statements says, for the finding."""
    for index in finding.statements:
        if 0 <= index < len(statements):
            record = statements[index]
            plan = found.get(fingerprint(record.sql, record.dialect))
            if plan is None:
                continue
            if plan.error:
                return (f"EXPLAIN failed ({plan.error})",)
            if plan.full_scans:
                return (
                    f"EXPLAIN: full scan of {', '.join(plan.full_scans)}: every row is read; "
                    "an index on the columns it filters or joins on lets the database seek "
                    "(harmless on a small table)",
                )
            return ("EXPLAIN: no full table scan in the plan",)
    return ()


def entry(
    report: AuditReport,
    status: int | None,
    sampled: bool,
    seq: int = 0,
    path: str = "",
    plans: Mapping[str, Plan] | None = None,
) -> Entry:
    """Summarise a closed report for the page (``path``: already collapsed; ``plans``: the
    EXPLAIN plans of its statements by fingerprint)."""
    found = plans or {}
    groups: dict[tuple[str, CallSite | None], list[float]] = {}
    for record in report.statements:
        if record.kind == StatementKind.TRANSACTION:
            continue
        shape = fingerprint(record.sql, record.dialect)
        groups.setdefault((shape, record.callsite), []).append(record.duration)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), -sum(item[1])))
    shapes = tuple(
        Shape(len(times), elide(shape, 160), format_site(site) if site else "", sum(times) * 1000)
        for (shape, site), times in ordered[:MAX_SHAPES]
    )
    blocks, left_out = build(report, report.findings) if sampled else ((), 0)
    shown = {step.number for block in blocks for step in block.steps}
    findings = tuple(
        Item(
            f.kind,
            str(f.severity),
            f.headline,
            format_site(f.location) if f.location else "",
            f.fix,
            tuple(n for n in (i + 1 for i in f.statements) if n in shown),
            _notes(f, report.statements, found) if found else (),
        )
        for f in report.findings
    )
    return Entry(
        when=time.time(),
        name=report.name,
        status=status,
        sampled=sampled,
        queries=report.query_count,
        db_ms=report.db_time_ms,
        ms=report.duration * 1000,
        overflow=report.overflow,
        internal_errors=report.internal_errors,
        findings=findings,
        shapes=shapes,
        seq=seq,
        path=printable(path),
        blocks=blocks,
        left_out=left_out,
        plans=dict(found),
    )


@dataclass(frozen=True, slots=True)
class View:
    """What the query string asks the page to show."""

    #: ``"requests"`` or ``"routes"``.
    view: str = "requests"
    #: Only requests (routes) with findings.
    findings: bool = False
    #: Only this route's requests ("" for all).
    route: str = ""
    #: Only the request with this ``Entry.seq``, unfolded (0 for all).
    request: int = 0


def parse_view(query: str) -> View:
    """The view a query string asks for; anything unknown is ignored (never an error)."""
    if not query:
        return View()
    try:
        params = parse_qs(query[:_MAX_QUERY], max_num_fields=8)
    except ValueError:  # more fields than the page ever links to
        return View()
    view = params.get("view", ["requests"])[-1]
    request = params.get("request", [""])[-1]
    return View(
        view="routes" if view == "routes" else "requests",
        findings=params.get("findings", [""])[-1] == "1",
        route=params.get("route", [""])[-1][:400],
        request=int(request)
        if request.isascii() and request.isdigit() and len(request) < 12
        else 0,
    )


class DevPage:
    """The last ``size`` requests' summaries, newest first, rendered as one HTML page."""

    def __init__(self, path: str, size: int = 50) -> None:
        # The page is served when the request path equals ``path``; the query string and the
        # fragment are never part of the path (PEP 3333 PATH_INFO, ASGI scope["path"]).
        self.path = check_path("dev_page", path)
        check_int("dev_page_size", size, 1)
        self.size = size
        self._entries: deque[Entry] = deque(maxlen=size)
        self._seq = 0
        self._lock = threading.Lock()
        fork_safe(self, "_lock")

    def add(
        self,
        report: AuditReport,
        status: int | None,
        sampled: bool,
        path: str = "",
        plans: Mapping[str, Plan] | None = None,
    ) -> int:
        """Keep a summary of the closed ``report`` (the oldest is dropped past ``size``);
        return its ``seq``."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        item = entry(report, status, sampled, seq, path, plans)
        with self._lock:
            self._entries.append(item)
        return seq

    def explained(self, seq: int, report: AuditReport, plans: Mapping[str, Plan]) -> None:
        """Add ``plans`` to the entry ``seq`` of ``report``, if it is still kept."""
        with self._lock:
            kept = next((e for e in self._entries if e.seq == seq), None)
        if kept is None or not kept.sampled:
            return
        findings = tuple(
            replace(item, notes=_notes(finding, report.statements, plans))
            for item, finding in zip(kept.findings, report.findings, strict=False)
        )
        updated = replace(kept, findings=findings, plans=dict(plans))
        with self._lock:
            for index, current in enumerate(self._entries):
                if current.seq == seq:
                    self._entries[index] = updated
                    break

    def entries(self) -> list[Entry]:
        """The kept requests, newest first."""
        with self._lock:
            return sorted(self._entries, key=lambda e: -e.seq)

    def render(self, query: str = "") -> bytes:
        """The page as UTF-8 HTML, for the view ``query`` (the request's query string) asks."""
        return render(self.entries(), self.size, parse_view(query)).encode("utf-8")


#: Response headers of the page: no caching, and no script may run on it.
HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
)
