"""One request on the development page (see ``sqlaudit.web.devpage``): its findings, and its
timeline of transactions and statements, each statement with its SQL, stack and plan.

Everything from a request, a statement or a source file goes through ``escape``; the bars'
offsets and widths are numbers formatted here, the only values in ``style`` attributes.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from sqlaudit.report.sqltext import format_sql
from sqlaudit.report.text import format_site
from sqlaudit.sql.fingerprint import elide
from sqlaudit.web.timeline import IDLE_MS

if TYPE_CHECKING:
    from sqlaudit.web.devpage import Entry, Item
    from sqlaudit.web.timeline import Block, Step

__all__ = ["details"]


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 1 else f"{ms:.1f} ms"


def _finding(entry: Entry, number: int, item: Item) -> str:
    anchor = f"r{entry.seq}"
    where = f"<br>at <code>{escape(item.location)}</code>" if item.location else ""
    links = ""
    if item.statements:
        shown = item.statements[:20]
        more = len(item.statements) - len(shown)
        links = "<br>statements: " + " ".join(f'<a href="#{anchor}-s{n}">#{n}</a>' for n in shown)
        if more:
            links += f" and {more} more"
    notes = "".join(
        f'<br><span class="plan{"" if note.startswith("EXPLAIN: no ") else " bad"}">'
        f"{escape(note)}</span>"
        for note in item.notes
    )
    return (
        f'<li id="{anchor}-f{number}"><span class="k {escape(item.severity)}">'
        f"{escape(item.severity)}</span><strong>{escape(item.message)}</strong>{where}"
        f"{links}{notes}<br>fix: {escape(item.fix)}</li>"
    )


def _plan(entry: Entry, step: Step) -> str:
    plan = entry.plans.get(step.shape)
    if plan is None:
        return ""
    if plan.error:
        return f'<p class="plan bad">EXPLAIN failed: {escape(plan.error)} (see the log)</p>'
    scans = (
        f'<p class="plan bad">full scan of {escape(", ".join(plan.full_scans))}</p>'
        if plan.full_scans
        else ""
    )
    text = "\n".join(plan.lines)
    return (
        f'<div class="explain"><h5>{escape(plan.command)} ({escape(plan.dialect)})</h5>'
        f"{scans}<pre>{escape(text)}</pre></div>"
    )


def _step(entry: Entry, step: Step, total: float) -> str:
    anchor = f"r{entry.seq}"
    scale = 100.0 / total if total > 0 else 0.0
    left = min(100.0, max(0.0, step.offset * scale))
    width = min(100.0 - left, step.duration * scale)
    flags = "".join(
        f'<a class="k {escape(entry.findings[n - 1].severity)}" href="#{anchor}-f{n}">'
        f"{escape(entry.findings[n - 1].kind)}</a>"
        for n in step.findings
        if 0 < n <= len(entry.findings)
    )
    facts = []
    if step.orm:
        facts.append(escape(step.orm))
    if step.rows >= 0:
        facts.append(f"{step.rows} row{'' if step.rows == 1 else 's'}")
    if step.batch > 1:
        facts.append(f"{step.batch} parameter sets (executemany)")
    if step.error:
        facts.append(f'<span class="k error">failed: {escape(step.error)}</span>')
    stack = "".join(f"<li><code>{escape(format_site(site))}</code></li>" for site in step.stack)
    stack_html = (
        f'<ol class="stack">{stack}</ol>'
        if stack
        else '<p class="muted">no application frame (issued by a library)</p>'
    )
    return (
        f'<li id="{anchor}-s{step.number}" class="step{" flag" if flags else ""}">'
        f"<details{' open' if flags else ''}><summary>"
        f'<span class="no">#{step.number}</span><span class="t">+{_ms(step.offset)}</span>'
        f'<span class="d">{_ms(step.duration)}</span> {flags}'
        f"<code>{escape(elide(step.shape, 140))}</code>"
        f'<span class="bar"><i style="margin-left:{left:.2f}%;width:{width:.2f}%"></i></span>'
        f"</summary>"
        f'<pre class="sql">{escape(format_sql(step.shape, step.dialect))}</pre>'
        f"<div>{' &middot; '.join(facts)}</div>{stack_html}{_plan(entry, step)}</details></li>"
    )


def _block(entry: Entry, block: Block, total: float) -> str:
    count = len(block.steps)
    noun = "statement" if count == 1 else "statements"
    if not block.source:
        title = f"Outside any recorded transaction: {count} {noun}"
        css = "tx loose"
    else:
        kind = "ORM session transaction" if block.source == "orm" else "Transaction"
        mode = " (autocommit: each statement commits on its own)" if block.autocommit else ""
        title = (
            f"{kind} {block.number}{mode}: {count} {noun}, {block.writes} "
            f"write{'' if block.writes == 1 else 's'}, {_ms(block.finish - block.begin)}"
        )
        css = f"tx c{block.number % 4}"
    out = [f'<section class="{css}"><h3>{escape(title)}</h3><ol class="steps">']
    if block.source:
        out.append(f'<li class="ev">BEGIN +{_ms(block.begin)}</li>')
    for step in block.steps:
        if step.idle * 1000 >= IDLE_MS:
            out.append(f'<li class="idle">idle {_ms(step.idle)}</li>')
        out.append(_step(entry, step, total))
    if block.end:
        if block.idle_end * 1000 >= IDLE_MS:
            out.append(f'<li class="idle">idle {_ms(block.idle_end)}</li>')
        out.append(f'<li class="ev">{escape(block.end)} +{_ms(block.finish)}</li>')
    out.append("</ol></section>")
    return "".join(out)


def details(entry: Entry, unfold: bool = False) -> str:
    """One request, folded unless it has findings or ``unfold``."""
    status = "" if entry.status is None else f" &rarr; {entry.status}"
    path = f' <span class="muted">{escape(entry.path)}</span>' if entry.path else ""
    out = [
        f'<details class="req" id="r{entry.seq}"{" open" if entry.findings or unfold else ""}>',
        f"<summary>{escape(entry.name)}{path}{status}: {entry.queries} "
        f"statement{'' if entry.queries == 1 else 's'}, "
        f"{entry.db_ms:.1f} ms in the database, {entry.ms:.1f} ms in all</summary>",
    ]
    if entry.findings:
        out.append('<ol class="findings">')
        out.extend(_finding(entry, n, item) for n, item in enumerate(entry.findings, 1))
        out.append("</ol>")
    if entry.blocks:
        out.append("<h4>Timeline (execution order, by transaction)</h4>")
        total = max(entry.ms / 1000, *(b.finish for b in entry.blocks))
        out.extend(_block(entry, block, total) for block in entry.blocks)
    if entry.shapes:
        out.append("<h4>By statement shape</h4>")
        out.append("<table><tr><th class=n>times</th><th>statement</th>")
        out.append("<th class=n>ms</th><th>from</th></tr>")
        for shape in entry.shapes:
            out.append(
                f'<tr><td class="n">{shape.count}&times;</td><td><code>{escape(shape.sql)}'
                f'</code></td><td class="n">{shape.ms:.1f}</td>'
                f"<td><code>{escape(shape.site)}</code></td></tr>"
            )
        out.append("</table>")
    notes = []
    if entry.left_out:
        notes.append(f"{entry.left_out} more statements are not on the timeline")
    if entry.overflow:
        notes.append(f"{entry.overflow} statements past max_records were counted only")
    if entry.internal_errors:
        notes.append(f"{entry.internal_errors} internal sqlaudit errors (see the log)")
    if notes:
        out.append(f'<p class="muted">{escape("; ".join(notes))}</p>')
    out.append("</details>")
    return "\n".join(out)
