"""The development page: an HTML summary of the last requests' audits. Development only.

Served by the middlewares at ``dev_page="/_sqlaudit"`` (off by default). Plain HTML and CSS,
no script at all (the page is sent with a Content-Security-Policy that forbids scripts);
``<details>`` elements fold each request open. Everything shown is escaped, and nothing shown
is a bind value: statements appear as fingerprints (literals and placeholders as ``?``),
findings as their diagnosis, location and fix.

It still reveals route names, SQL shapes and source file paths, which is why it must stay off
in production.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from sqlaudit._internal import fork_safe
from sqlaudit._validate import check_int, check_path
from sqlaudit.model.records import CallSite, StatementKind
from sqlaudit.report.text import format_site
from sqlaudit.sql.fingerprint import elide, fingerprint

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["DevPage", "Entry"]

#: Statement shapes listed per request at most.
MAX_SHAPES = 25

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem 2rem;
color:#1d2330;background:#f7f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem}p.sub{margin:0 0 1.2rem;color:#596273}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
details{background:#fff;border:1px solid #dfe3ea;border-radius:6px;margin:.6rem 0;
padding:.5rem .8rem}
summary{cursor:pointer;font-weight:600}code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;margin:.2rem 0}
.k{display:inline-block;border-radius:4px;padding:0 .4rem;margin:0 .2rem .1rem 0;
font-size:.8rem;background:#e8ecf3}
.error{background:#fde2e1;color:#8a1c17}.warning{background:#fff1cc;color:#6b4b00}
.info{background:#e2efff;color:#0b4a8b}.ok{color:#23724a}.muted{color:#7a8394}
li{margin:.45rem 0}
"""


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


def entry(report: AuditReport, status: int | None, sampled: bool) -> Entry:
    """Summarise a closed report for the page."""
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
    findings = tuple(
        Item(
            f.kind,
            str(f.severity),
            f.headline,
            format_site(f.location) if f.location else "",
            f.fix,
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
        self._lock = threading.Lock()
        fork_safe(self, "_lock")

    def add(self, report: AuditReport, status: int | None, sampled: bool) -> None:
        item = entry(report, status, sampled)
        with self._lock:
            self._entries.append(item)

    def entries(self) -> list[Entry]:
        """The kept requests, newest first."""
        with self._lock:
            return list(reversed(self._entries))

    def render(self) -> bytes:
        """The page as UTF-8 HTML."""
        return render(self.entries(), self.size).encode("utf-8")


def _badges(entry: Entry) -> str:
    if not entry.sampled:
        return '<span class="muted">not sampled (counted only)</span>'
    if not entry.findings:
        return '<span class="ok">clean</span>'
    kinds: dict[str, str] = {}
    for item in entry.findings:
        kinds.setdefault(item.kind, item.severity)
    return "".join(f'<span class="k {escape(s)}">{escape(k)}</span>' for k, s in kinds.items())


def _details(number: int, entry: Entry) -> str:
    status = "" if entry.status is None else f" &rarr; {entry.status}"
    out = [
        f'<details id="r{number}"{" open" if entry.findings else ""}>',
        f"<summary>{escape(entry.name)}{status}: {entry.queries} "
        f"statement{'' if entry.queries == 1 else 's'}, "
        f"{entry.db_ms:.1f} ms in the database</summary>",
    ]
    if entry.findings:
        out.append("<ol>")
        for item in entry.findings:
            where = f"<br>at <code>{escape(item.location)}</code>" if item.location else ""
            out.append(
                f'<li><span class="k {escape(item.severity)}">{escape(item.severity)}</span>'
                f"<strong>{escape(item.message)}</strong>{where}"
                f"<br>fix: {escape(item.fix)}</li>"
            )
        out.append("</ol>")
    if entry.shapes:
        out.append("<table><tr><th>times</th><th>statement</th><th>ms</th><th>from</th></tr>")
        for shape in entry.shapes:
            out.append(
                f'<tr><td class="n">{shape.count}&times;</td><td><code>{escape(shape.sql)}'
                f'</code></td><td class="n">{shape.ms:.1f}</td>'
                f"<td><code>{escape(shape.site)}</code></td></tr>"
            )
        out.append("</table>")
    notes = []
    if entry.overflow:
        notes.append(f"{entry.overflow} statements past max_records were counted only")
    if entry.internal_errors:
        notes.append(f"{entry.internal_errors} internal sqlaudit errors (see the log)")
    if notes:
        out.append(f'<p class="muted">{escape("; ".join(notes))}</p>')
    out.append("</details>")
    return "\n".join(out)


def render(entries: list[Entry], size: int) -> str:
    """The whole page for ``entries`` (newest first)."""
    rows = []
    for number, item in enumerate(entries, 1):
        clock = time.strftime("%H:%M:%S", time.localtime(item.when))
        status = "" if item.status is None else str(item.status)
        rows.append(
            f'<tr><td>{clock}</td><td><a href="#r{number}">{escape(item.name)}</a></td>'
            f'<td class="n">{status}</td><td class="n">{item.queries}</td>'
            f'<td class="n">{item.db_ms:.1f}</td><td class="n">{item.ms:.1f}</td>'
            f"<td>{_badges(item)}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="7" class="muted">No request audited yet.</td></tr>')
    details = [_details(n, e) for n, e in enumerate(entries, 1) if e.sampled]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="robots" content="noindex">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>sqlaudit: last {len(entries)} requests</title><style>{_CSS}</style></head>\n"
        "<body><h1>sqlaudit: SQL per request</h1>"
        f'<p class="sub">The last {len(entries)} audited requests (keeps {size}), newest first. '
        "Statements are shown as fingerprints: values are never shown. Reload to refresh. "
        "Development only.</p>\n"
        "<table><tr><th>time</th><th>request</th><th>status</th><th>statements</th>"
        "<th>DB ms</th><th>total ms</th><th>findings</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n"
        + "\n".join(details)
        + "\n</body></html>\n"
    )


#: Response headers of the page: no caching, and no script may run on it.
HEADERS = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
)
