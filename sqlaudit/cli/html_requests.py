"""Parts of the ``sqlaudit report`` page: tables, the chart, each request's details.

Every value from the input file is HTML-escaped here; trace links are made only from
well-formed hex ids and a template :func:`sqlaudit.cli.html_report.check_trace_url` accepted.
"""

from __future__ import annotations

import os
import re
from html import escape

from sqlaudit.cli.spans import Unit, Where
from sqlaudit.model.paths import relative
from sqlaudit.report.sqltext import format_sql

__all__ = ["HEX", "chart", "request", "table", "trace", "where"]

HEX = {"trace_id": re.compile(r"[0-9a-f]{32}"), "span_id": re.compile(r"[0-9a-f]{16}")}


def where(site: Where | None, root: str | None) -> str:
    """``path:line in function()`` with the path relative to ``root`` (or the working
    directory); empty for no site."""
    if site is None:
        return ""
    if root is None:
        path = relative(site.path)
    else:
        rel = os.path.relpath(site.path, root) if os.path.isabs(site.path) else site.path
        path = site.path if rel.startswith("..") else rel.replace(os.sep, "/")
    return f"{path}:{site.line} in {site.function}()"


def trace(unit: Unit, template: str | None) -> str:
    """The unit's trace id, as a link when a template is given and the ids are well formed."""
    ids = {"trace_id": unit.trace_id.lower(), "span_id": unit.span_id.lower()}
    text = f"<code>{escape(unit.trace_id)}</code>"
    if template is None or not all(HEX[k].fullmatch(v) for k, v in ids.items()):
        return text
    return f'<a href="{escape(template.format(**ids))}">{text}</a>'


def table(headers: list[str], rows: list[list[str]], numeric: range) -> str:
    """An HTML table; headers and cells are already escaped; ``numeric`` columns align right."""
    head = "".join(
        f"<th{' class=n' if i in numeric else ''}>{h}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _label(text: str, width: int = 44) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def chart(units: list[Unit], shown: list[int]) -> str:
    """Statements per request as labelled horizontal bars (SVG), in time order; each bar
    links to its request's statement list below."""
    if not shown:
        return "<p>No requests.</p>"
    label_w, bar_w, row, pad = 330, 560, 20, 24
    top = max(1, *(units[i].queries for i in shown))
    height = pad + row * len(shown) + 8
    rows = []
    for r, i in enumerate(shown):
        unit = units[i]
        y = pad + r * row
        w = max(bar_w * unit.queries / top, 1.0)
        cls = "bar bad" if unit.findings else "bar"
        tip = f"{unit.route}: {unit.queries} statements, {len(unit.findings)} finding(s)"
        rows.append(
            f'<a href="#req-{i + 1}"><title>{escape(tip)}</title>'
            f'<text x="{label_w - 8}" y="{y + 14}" class="lbl" text-anchor="end">'
            f"{i + 1}. {escape(_label(unit.route))}</text>"
            f'<rect class="{cls}" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 14}" class="val">{unit.queries}</text></a>'
        )
    axis = (
        f'<text x="{label_w}" y="14" class="ax">statements (0 to {top})</text>'
        f'<line x1="{label_w}" y1="{pad - 2}" x2="{label_w}" y2="{height - 6}" class="ax"/>'
    )
    note = f" (the latest {len(shown)} of {len(units)})" if len(units) > len(shown) else ""
    return (
        f'<svg id="chart" viewBox="0 0 960 {height}" width="960" height="{height}" role="img" '
        f'aria-label="statements per request">{axis}{"".join(rows)}</svg>'
        f"<p><small>{len(shown)} request(s) in time order{note}; red: with findings; click a "
        "bar for the request's statements.</small></p>"
    )


def request(unit: Unit, number: int, root: str | None, trace_url: str | None) -> str:
    """One request as a ``<details>``: its findings, then its statement shapes in order."""
    kinds = ", ".join(sorted({f.kind for f in unit.findings}))
    path = f" <small>{escape(unit.path)}</small>" if unit.path else ""
    summary = (
        f"<b>{number}.</b> <code>{escape(unit.route)}</code>{path} &middot; {unit.queries} "
        f"statement(s), {unit.db_ms:.1f} ms"
        + (f' &middot; <span class="bad">{escape(kinds)}</span>' if kinds else "")
        + f" &middot; trace {trace(unit, trace_url)}"
    )
    body = []
    if unit.findings:
        body.append("<ul class=found>")
        for f in unit.findings:
            place = where(f.where, root)
            body.append(
                f'<li><span class="sev {escape(f.severity)}">{escape(f.severity)}</span> '
                f"<code>{escape(f.kind)}</code> {escape(f.message)}"
                + (f"<br><small>at <code>{escape(place)}</code></small>" if place else "")
                + (f"<br><small>fix: {escape(f.fix)}</small>" if f.fix else "")
                + "</li>"
            )
        body.append("</ul>")
    if unit.shape_count is None:
        body.append(
            "<p><small>Statements not exported: "
            "<code>OTelReporter(statement_events=50)</code> exports each unit's statement "
            "shapes (fingerprints, never values).</small></p>"
        )
    else:
        rows = [
            [
                str(s.number), f"{s.count}&times;", escape(s.kind), f"{s.db_ms:.2f}",
                f"<pre>{escape(format_sql(s.sql))}</pre>"
                + (f'<small class="bad">failed: {escape(", ".join(s.errors))}</small>'
                   if s.errors else ""),
                f"<code>{escape(where(s.where, root))}</code>",
            ]
            for s in unit.statements
        ]  # fmt: skip
        body.append(table(["#", "Runs", "Kind", "DB ms", "SQL", "Where"], rows, range(4)))
        if unit.shape_count > len(unit.statements):
            body.append(
                f"<p><small>The first {len(unit.statements)} of {unit.shape_count} statement "
                "shapes were exported.</small></p>"
            )
    open_ = " open" if unit.findings else ""
    return (
        f'<details id="req-{number}" class="req"{open_}><summary>{summary}</summary>'
        + "".join(body)
        + "</details>"
    )
