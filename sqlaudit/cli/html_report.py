"""``sqlaudit report FILE.jsonl``: one self-contained HTML page from exported spans.

Input: OTLP/JSON lines (see :mod:`sqlaudit.cli.spans`). Output: one HTML page with no external
resources and no script (inline CSS and SVG): the routes in one table, sortable by each column
through links (``:target`` CSS, so it works from a file), findings by kind with their fixes, a
chart of statements per request labelled with the requests' names, and each request's
statements (formatted SQL, placeholders only) and findings, with a link to its trace when a
``trace_url`` template is given. File paths are shown relative to ``root`` (default: the
working directory). Standard library only: no opentelemetry import.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable
from html import escape

from sqlaudit.cli import html_requests as _parts
from sqlaudit.cli.spans import Finding, ReportInputError, Spans, Unit, load
from sqlaudit.errors import ConfigError

__all__ = ["ReportInputError", "build_report", "check_trace_url", "no_data_message", "render"]

#: Requests drawn in the chart and given a statement list (the latest ones).
_CHART_MAX = 100
_WORST = 10
_RANK = {"info": 1, "warning": 2, "error": 3}
#: (key, header, row index) of the sortable columns of the route table; the first is the default.
_SORTS = (
    ("statements", "Statements", 2),
    ("per-request", "Per request", 3),
    ("max", "Max", 4),
    ("db", "DB ms", 5),
    ("findings", "Findings", 6),
    ("requests", "Requests", 1),
)


def check_trace_url(template: str) -> str:
    """``template`` if it is an http(s) URL with ``{trace_id}`` (and optionally
    ``{span_id}``) and no other field; ConfigError says what is wrong."""
    if not re.match(r"https?://", template):
        raise ConfigError(f"--trace-url must start with http:// or https://, got {template!r}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"--trace-url is not a valid template ({exc}): {template!r}") from None
    unknown = sorted(fields - set(_parts.HEX))
    if unknown or "trace_id" not in fields:
        raise ConfigError(
            "--trace-url must contain {trace_id} and no field but {trace_id} and {span_id}, "
            f"got {template!r}"
        )
    return template


def no_data_message(spans: Spans, source: str) -> str:
    """The message for a file without sqlaudit units (why, and how to get some)."""
    if not spans.span_count:
        return f"no sqlaudit data found in {source}: it holds no spans"
    return (
        f"no sqlaudit data found in {source}: {spans.span_count} span(s), none with sqlaudit "
        "attributes (sqlaudit.query_count); report units with sqlaudit.otel.OTelReporter"
    )


def _routes(units: list[Unit]) -> str:
    """One route table, rendered once per sort order; CSS shows the one the URL targets."""
    by_route: dict[str, list[Unit]] = {}
    for unit in units:
        by_route.setdefault(unit.route, []).append(unit)
    rows = []
    for route, group in by_route.items():
        queries = sum(u.queries for u in group)
        rows.append(
            (
                route, len(group), queries, queries / len(group), max(u.queries for u in group),
                sum(u.db_ms for u in group), sum(len(u.findings) for u in group),
            )
        )  # fmt: skip
    parts = []
    for key, label, column in _SORTS:
        ordered = sorted(rows, key=lambda r: (-r[column], r[0]))  # type: ignore[operator]  # numbers
        headers = ["Route"]
        for other, text, _ in sorted(_SORTS, key=lambda s: s[2]):
            mark = ' aria-sort="descending"' if other == key else ""
            arrow = " &#9660;" if other == key else ""
            headers.append(f'<a href="#routes-by-{other}"{mark}>{text}{arrow}</a>')
        table = _parts.table(
            headers,
            [
                [
                    f"<code>{escape(r)}</code>", str(n), str(q), f"{per:.1f}", str(mx),
                    f"{db:.1f}", f'<span class="{"bad" if f else "ok"}">{f}</span>',
                ]
                for r, n, q, per, mx, db, f in ordered
            ],
            range(1, 7),
        )  # fmt: skip
        parts.append(
            f'<div class="sort" id="routes-by-{key}"><p class="sorted-by">Sorted by '
            f"<b>{label}</b>, highest first; click a column header to sort by it.</p>"
            f"{table}</div>"
        )
    return f'<div class="sorts">{"".join(parts)}</div>'


def _findings(units: list[Unit], root: str | None) -> str:
    by_kind: dict[str, list[tuple[Unit, int, Finding]]] = {}
    for number, unit in enumerate(units, 1):
        for each in unit.findings:
            by_kind.setdefault(each.kind, []).append((unit, number, each))
    if not by_kind:
        return '<p class="ok">No findings: every unit of work was clean.</p>'
    parts = []
    for kind, items in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        found = [f for _, _, f in items]
        routes = Counter(u.route for u, _, _ in items)
        fixes = Counter(f.fix for f in found if f.fix)
        places = Counter(_parts.where(f.where, root) for f in found if f.where)
        severity = max((f.severity for f in found), key=lambda s: _RANK.get(s, 0))
        statements = sum(f.count for f in found)
        requests = sorted({n for _, n, _ in items})
        parts.append(
            f'<section class="finding" id="kind-{escape(kind)}"><h3><code>{escape(kind)}</code>'
            f' <span class="sev {escape(severity)}">{escape(severity)}</span> '
            f"<small>{len(found)} finding(s), {statements} statement(s), "
            f"{len(routes)} route(s)</small></h3>"
            f"<p class=msg>{escape(found[0].message)}</p>"
            "<h4>Fix</h4><ul>"
            + "".join(
                f"<li>{escape(fix)} <small>&times;{n}</small></li>"
                for fix, n in fixes.most_common(5)
            )
            + "</ul><h4>Where</h4><ul>"
            + "".join(
                f"<li><code>{escape(p)}</code> <small>&times;{n}</small></li>"
                for p, n in places.most_common(5)
            )
            + "</ul><p><small>Routes: "
            + ", ".join(f"<code>{escape(r)}</code> &times;{n}" for r, n in routes.most_common(8))
            + "; requests: "
            + ", ".join(f'<a href="#req-{n}">{n}</a>' for n in requests[:20])
            + ("&hellip;" if len(requests) > 20 else "")
            + "</small></p></section>"
        )
    return "".join(parts)


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{padding:.3rem .6rem;border-bottom:1px solid #eef;text-align:left;vertical-align:top}
th{background:#f4f5fa}th a{color:inherit}.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#f4f5fa;border-radius:8px;
padding:.6rem 1rem;min-width:9rem}.card b{display:block;font-size:1.6rem}
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34}.bar{fill:#8a94b3}.bar.bad{fill:#d0463b}
.ax{stroke:#99a;fill:#667;font-size:11px}.lbl{fill:#1d2330;font-size:12px}
.val{fill:#667;font-size:11px}svg a:hover .bar{opacity:.75}
.sev{font-size:.75rem;padding:.1rem .4rem;border-radius:4px;background:#eee}
.sev.warning{background:#ffe3a3}.sev.error{background:#f8b4ae}
.finding{border:1px solid #e3e5ef;border-radius:8px;padding:.2rem 1rem;margin:.8rem 0}
.msg{font-weight:600}code{font-size:.92em}pre{margin:0;white-space:pre-wrap;font-size:.85em}
.sort{display:none}#routes-by-statements,.sort:target{display:block}
.sorts:has(.sort:target) #routes-by-statements:not(:target){display:none}
.sorted-by{margin:.3rem 0;color:#556}.req{border-bottom:1px solid #eef;padding:.3rem 0}
.req summary{cursor:pointer}.req[open]{background:#fafbfe}.nodata{font-size:1.2rem}
"""


def render(
    spans: Spans, *, source: str = "the input", trace_url: str | None = None,
    root: str | None = None,
) -> str:  # fmt: skip
    """The HTML page of ``spans``. ``trace_url``: a template checked by
    :func:`check_trace_url`; ``root``: the directory paths are shown relative to."""
    units = spans.units
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>sqlaudit report</title><style>{_CSS}</style></head><body>"
        "<h1>sqlaudit report</h1><p>SQL traffic per unit of work, from exported spans.</p>"
    )
    if not units:
        message = no_data_message(spans, source)
        return f'{head}<p class="bad nodata" id="no-data">{escape(message)}</p></body></html>'
    findings = sum(len(u.findings) for u in units)
    faulty = sum(1 for u in units if u.findings)
    cards = [
        ("requests", str(len(units))),
        ("routes", str(len({u.route for u in units}))),
        ("statements", str(sum(u.queries for u in units))),
        ("DB time", f"{sum(u.db_ms for u in units):.1f} ms"),
        ("findings", str(findings)),
        ("requests with findings", f"{faulty} ({faulty / len(units):.0%})"),
    ]
    worst = sorted(range(len(units)), key=lambda i: (-units[i].queries, -units[i].db_ms, i))
    worst = worst[:_WORST]
    shown = list(range(max(0, len(units) - _CHART_MAX), len(units)))
    detailed = sorted(set(shown) | set(worst))
    worst_table = _parts.table(
        ["Request", "Statements", "DB ms", "Findings", "Trace"],
        [
            [
                f'<a href="#req-{i + 1}">{i + 1}.</a> <code>{escape(units[i].route)}</code>',
                str(units[i].queries), f"{units[i].db_ms:.1f}",
                escape(", ".join(sorted({f.kind for f in units[i].findings})) or "-"),
                _parts.trace(units[i], trace_url),
            ]
            for i in worst
        ],
        range(1, 3),
    )  # fmt: skip
    return (
        head
        + '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in cards)
        + "</div>"
        '<h2 id="routes">Routes</h2>' + _routes(units)
        + '<h2 id="findings">Findings by kind</h2>' + _findings(units, root)
        + '<h2 id="statements">Statements per request</h2>' + _parts.chart(units, shown)
        + '<h2 id="worst">Worst requests</h2>' + worst_table
        + '<h2 id="requests">Requests</h2>'
        + "".join(_parts.request(units[i], i + 1, root, trace_url) for i in detailed)
        + "</body></html>"
    )  # fmt: skip


def build_report(
    lines: Iterable[str], *, source: str = "the input", trace_url: str | None = None,
    root: str | None = None,
) -> str:  # fmt: skip
    """The HTML page for OTLP/JSON ``lines`` (e.g. an open file). ReportInputError if not JSON."""
    return render(load(lines), source=source, trace_url=trace_url, root=root)
