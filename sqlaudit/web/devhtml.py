"""The development page's HTML (see ``sqlaudit.web.devpage``): no script, everything escaped.

The page frame, its view links, the request list and the by-route table; one request's
findings and timeline are ``devrequest``'s. Every text that comes from a request goes through
``escape``; links are built from the page's own parameters, URL-quoted then escaped. The
page's Content-Security-Policy allows inline styles (the timeline's bars), never scripts.
"""

from __future__ import annotations

import time
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from sqlaudit.web.devrequest import details

if TYPE_CHECKING:
    from sqlaudit.web.devpage import Entry, View

__all__ = ["MAX_DETAILED", "render"]

#: Requests whose timelines the request list unfolds at most (the newest).
MAX_DETAILED = 10

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem 2rem;
color:#1d2330;background:#f7f8fa}
h1{font-size:1.4rem;margin:0 0 .2rem}p.sub{margin:0 0 .8rem;color:#596273}
h3{font-size:.95rem;margin:.2rem 0}h4{font-size:.9rem;margin:.8rem 0 .3rem}
nav{margin:0 0 1rem}nav a,nav b{margin-right:.8rem}nav b{color:#1d2330}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e6eb;vertical-align:top}
th{background:#eef1f5;font-weight:600}th.n{text-align:right}
td.n{text-align:right;font-variant-numeric:tabular-nums}
details.req{background:#fff;border:1px solid #dfe3ea;border-radius:6px;margin:.6rem 0;
padding:.5rem .8rem}
summary{cursor:pointer}details.req>summary{font-weight:600}
code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;margin:.3rem 0;background:#f3f5f8;padding:.4rem .6rem;border-radius:4px}
.k{display:inline-block;border-radius:4px;padding:0 .4rem;margin:0 .2rem .1rem 0;
font-size:.8rem;background:#e8ecf3;text-decoration:none}
.error{background:#fde2e1;color:#8a1c17}.warning{background:#fff1cc;color:#6b4b00}
.info{background:#e2efff;color:#0b4a8b}.ok{color:#23724a}.muted{color:#7a8394}
li{margin:.3rem 0}ol.findings li{margin:.45rem 0}
section.tx{border-left:4px solid #8aa4c8;margin:.6rem 0;padding:.1rem 0 .1rem .7rem}
section.tx.c1{border-color:#c89a5a}section.tx.c2{border-color:#6aa88a}
section.tx.c3{border-color:#a77ac2}section.tx.loose{border-color:#c3c8d1;border-left-style:dashed}
ol.steps{list-style:none;padding:0;margin:.2rem 0}
li.ev{color:#3a4a63;font:600 13px/1.4 ui-monospace,Menlo,Consolas,monospace}
li.idle{color:#9a6a00;font-size:.85rem}li.idle:before{content:"\\22EE  "}
li.step{border-bottom:1px dotted #e3e6eb;padding:.15rem 0}
li.step.flag{background:#fffaf0}
span.no{display:inline-block;min-width:2.6rem;color:#596273}
span.t{display:inline-block;min-width:5.5rem;color:#596273;font-variant-numeric:tabular-nums}
span.d{display:inline-block;min-width:4.5rem;font-variant-numeric:tabular-nums}
span.bar{display:block;height:4px;background:#eef1f5;margin:.15rem 0 .1rem}
span.bar i{display:block;height:4px;background:#4b74b5;min-width:2px}
ol.stack{margin:.2rem 0 .4rem;padding-left:1.4rem;font-size:.85rem}
h5{font-size:.85rem;margin:.3rem 0 0}.plan{color:#23724a;font-weight:600;margin:.2rem 0}
.plan.bad{color:#8a1c17}
div.explain pre{background:#f0f5ee}
"""


def _link(current: View, **changes: object) -> str:
    """A query-string link to the page with ``changes`` applied to ``current``, escaped."""
    values = {"view": current.view, "findings": current.findings, "route": current.route}
    values.update(changes)  # a link never keeps ``request``: it shows one request only
    params = {}
    if values["view"] != "requests":
        params["view"] = values["view"]
    if values["findings"]:
        params["findings"] = "1"
    if values["route"]:
        params["route"] = values["route"]
    return escape("?" + urlencode(params) if params else "?", quote=True)


def _badges(entry: Entry) -> str:
    if not entry.sampled:
        return '<span class="muted">not sampled (counted only)</span>'
    if not entry.findings:
        return '<span class="ok">clean</span>'
    kinds: dict[str, str] = {}
    for item in entry.findings:
        kinds.setdefault(item.kind, item.severity)
    return "".join(f'<span class="k {escape(s)}">{escape(k)}</span>' for k, s in kinds.items())


def _requests(entries: list[Entry], view: View) -> str:
    # The newest MAX_DETAILED sampled requests are unfolded on the page; older ones are one
    # link away (``?request=N``): a page of 50 requests of 200 statements each would weigh
    # megabytes.
    detailed = {e.seq for e in [e for e in entries if e.sampled][:MAX_DETAILED]}
    rows = []
    for item in entries:
        clock = time.strftime("%H:%M:%S", time.localtime(item.when))
        status = "" if item.status is None else str(item.status)
        if not item.sampled:
            name = escape(item.name)
        elif item.seq in detailed:
            name = f'<a href="#r{item.seq}">{escape(item.name)}</a>'
        else:
            name = f'<a href="?request={item.seq}">{escape(item.name)}</a>'
        rows.append(
            f"<tr><td>{clock}</td><td>{name}</td><td><code>{escape(item.path)}</code></td>"
            f'<td class="n">{status}</td><td class="n">{item.queries}</td>'
            f'<td class="n">{item.db_ms:.1f}</td><td class="n">{item.ms:.1f}</td>'
            f"<td>{_badges(item)}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="8" class="muted">No request audited yet.</td></tr>')
    unfolded = [details(e, bool(view.request)) for e in entries if e.seq in detailed]
    older = sum(1 for e in entries if e.sampled) - len(detailed)
    if older:
        unfolded.append(
            f'<p class="muted">{older} older request{"" if older == 1 else "s"} not unfolded '
            "here: follow its link in the table.</p>"
        )
    return (
        "<table><tr><th>time</th><th>request</th><th>path</th><th class=n>status</th>"
        "<th class=n>statements</th><th class=n>DB ms</th><th class=n>total ms</th>"
        "<th>findings</th></tr>\n" + "\n".join(rows) + "\n</table>\n" + "\n".join(unfolded)
    )


def _routes(entries: list[Entry], view: View) -> str:
    routes: dict[str, list[Entry]] = {}
    for item in entries:
        routes.setdefault(item.name, []).append(item)
    rows = []
    for name, items in sorted(routes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        found = [f for e in items for f in e.findings]
        if view.findings and not found:
            continue
        statuses: dict[str, int] = {}
        for e in items:
            key = "-" if e.status is None else str(e.status)
            statuses[key] = statuses.get(key, 0) + 1
        kinds: dict[tuple[str, str], int] = {}
        for f in found:
            kinds[(f.kind, f.severity)] = kinds.get((f.kind, f.severity), 0) + 1
        counts = [e.queries for e in items]
        rows.append(
            f'<tr><td><a href="{_link(view, view="requests", route=name)}">{escape(name)}</a>'
            f'</td><td class="n">{len(items)}</td>'
            f"<td>{escape(', '.join(f'{s} x{n}' for s, n in sorted(statuses.items())))}</td>"
            f'<td class="n">{sum(counts) / len(counts):.1f}</td><td class="n">{max(counts)}</td>'
            f'<td class="n">{sum(e.db_ms for e in items) / len(items):.1f}</td>'
            f'<td class="n">{sum(1 for e in items if e.findings)}</td><td>'
            + "".join(
                f'<span class="k {escape(s)}">{escape(k)} &times;{n}</span>'
                for (k, s), n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
            )
            + "</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="8" class="muted">No route to show.</td></tr>')
    return (
        "<table><tr><th>route</th><th class=n>requests</th><th>statuses</th>"
        "<th class=n>statements (mean)</th><th class=n>statements (max)</th>"
        "<th class=n>DB ms (mean)</th><th class=n>requests with findings</th>"
        "<th>findings (occurrences)</th></tr>\n" + "\n".join(rows) + "\n</table>\n"
    )


def _nav(view: View) -> str:
    def choice(label: str, active: bool, href: str) -> str:
        return f"<b>{label}</b>" if active else f'<a href="{href}">{label}</a>'

    parts = [
        choice("Requests", view.view == "requests", _link(view, view="requests")),
        choice("By route", view.view == "routes", _link(view, view="routes", route="")),
        "|",
        choice("All", not view.findings, _link(view, findings=False)),
        choice("Only with findings", view.findings, _link(view, findings=True)),
    ]
    if view.request:
        parts.append(
            f'| request {view.request} <a href="{_link(view, request=0)}">(all requests)</a>'
        )
    if view.route and view.view == "requests":
        parts.append(
            f"| route <code>{escape(view.route)}</code> "
            f'<a href="{_link(view, route="")}">(all routes)</a>'
        )
    return "<nav>" + " ".join(parts) + "</nav>"


def render(entries: list[Entry], size: int, view: View) -> str:
    """The whole page for ``entries`` (newest first), as ``view`` asks."""
    kept = len(entries)
    if view.route:
        entries = [e for e in entries if e.name == view.route]
    if view.findings and view.view == "requests":
        entries = [e for e in entries if e.findings]
    if view.request:
        entries = [e for e in entries if e.seq == view.request]
    body = _routes(entries, view) if view.view == "routes" else _requests(entries, view)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="robots" content="noindex">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>sqlaudit: last {kept} requests</title><style>{_CSS}</style></head>\n"
        "<body><h1>sqlaudit: SQL per request</h1>"
        f'<p class="sub">The last {kept} audited requests (keeps {size}), newest first. '
        "Statements are shown as fingerprints: values are never shown. Reload to refresh. "
        "Development only.</p>\n" + _nav(view) + "\n" + body + "\n</body></html>\n"
    )
