"""Text report: diagnosis first, then the statements with repeats collapsed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlaudit.detectors.loop_view import LOOP_HEADLINE
from sqlaudit.model.paths import relative
from sqlaudit.model.records import CallSite, StatementKind
from sqlaudit.sql.fingerprint import elide, fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.findings import Finding
    from sqlaudit.report import AuditReport

__all__ = ["format_finding", "format_site", "render"]

#: Statement groups listed at most in a text report.
MAX_GROUPS = 40


def format_site(site: CallSite | None, *, function: bool = True) -> str:
    """``file:line in function()`` with the file relative to the working directory
    (``function=False``: ``file:line`` only)."""
    if site is None:
        return "(no application frame)"
    file = relative(site.file)
    if not function:
        return f"{file}:{site.line}"
    name = site.function
    # A Jinja2 template's parts (callsite._template_site) are not Python functions.
    call = "" if name in ("<template>", "macro") or name.startswith("block ") else "()"
    return f"{file}:{site.line} in {name}{call}"


def format_finding(finding: Finding, number: int | None = None) -> str:
    """A finding as text: diagnosis, location, the statements concerned, the fix."""
    head = f"{number}. " if number is not None else ""
    lines = [f"{head}[{finding.severity}] {finding.headline}"]
    pad = " " * len(head)
    if finding.location is not None:
        where = f"{pad}at {format_site(finding.location)}"
        loop = finding.loop
        if loop is not None and loop != finding.location:
            same = loop.function == finding.location.function and loop.file == finding.location.file
            where += f", in the loop at {format_site(loop, function=not same)}"
        lines.append(where)
    # A loop's combined finding counts the statements of several shapes (its message says
    # how many per iteration): one shape's fingerprint times all of them would misstate both.
    if finding.fingerprint and finding.count > 1 and not finding.message.startswith(LOOP_HEADLINE):
        lines.append(f"{pad}{finding.count}x {elide(finding.fingerprint, 90)}")
    if finding.db_time:
        lines.append(f"{pad}{finding.db_time * 1000:.1f} ms in the database")
    lines.append(f"{pad}fix: {finding.fix}")
    return "\n".join(lines)


def _summary(report: AuditReport) -> str:
    counts = report.counts
    parts = [f"{n} {kind}" for kind, n in counts.items() if kind != StatementKind.TRANSACTION]
    detail = f" ({', '.join(parts)})" if parts else ""
    findings = len(report.findings)
    noun = "finding" if findings == 1 else "findings"
    extra = ""
    control = counts.get(StatementKind.TRANSACTION, 0)
    if control:
        extra += f", {control} transaction-control statements not counted"
    if report.overflow:
        extra += f", {report.overflow} statements past max_records counted only"
    statements = "statement" if report.query_count == 1 else "statements"
    allowed = f" ({len(report.allowed)} allowed)" if report.allowed else ""
    line = (
        f"sqlaudit: {report.name}: {report.query_count} {statements}{detail}, "
        f"{report.db_time_ms:.1f} ms in the database, {findings} {noun}{allowed}{extra}"
    )
    records = report.transaction_records
    on_server = any(t.dialect != "sqlite" for t in records)
    if records and (on_server or any(t.writes for t in records)):
        # Read-only work on embedded SQLite costs no round trips: nothing to say about it.
        parts = [
            f"{report.commit_count} committed",
            f"{report.rollback_count} rolled back",
            f"{sum(1 for t in records if t.statements and not t.writes)} read-only",
        ]
        kept = [p for p in parts if not p.startswith("0 ")]
        line += f"\n  {_plural(report.transaction_count, 'transaction')}: {', '.join(kept)}"
        if on_server:
            control, counted = report.round_trips
            line += f"; round trips: {counted} statements + about {control} transaction control"
    return line


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def render(report: AuditReport, *, statements: bool = True) -> str:
    """The whole report as text."""
    out = [_summary(report)]
    for number, finding in enumerate(report.findings, 1):
        out.append("")
        out.append(format_finding(finding, number))
    if report.allowed:
        out.append("")
        out.append("Allowed by the config's allowlists (not failing, not logged):")
        for finding in report.allowed:
            where = f" at {format_site(finding.location)}" if finding.location else ""
            out.append(f"  - [{finding.allowed}] {finding.headline}{where}")
    if statements and report.statements:
        out.append("")
        out.append("Statements:")
        out.extend(_statement_lines(report))
    return "\n".join(out)


def _statement_lines(report: AuditReport) -> list[str]:
    groups: dict[tuple[str, CallSite | None], list[int]] = {}
    records = report.statements
    for index, record in enumerate(records):
        shape = fingerprint(record.sql, record.dialect)
        groups.setdefault((shape, record.callsite), []).append(index)
    lines = []
    for (shape, site), indexes in list(groups.items())[:MAX_GROUPS]:
        record = records[indexes[0]]
        times = f"{len(indexes)}x " if len(indexes) > 1 else ""
        note = "  [not counted]" if record.kind == StatementKind.TRANSACTION else ""
        error = f"  [failed: {record.error}]" if record.error else ""
        where = f"  at {format_site(site)}" if site else ""
        lines.append(f"  {indexes[0] + 1:>4}  {times}{elide(shape, 90)}{where}{note}{error}")
    hidden = len(groups) - MAX_GROUPS
    if hidden > 0:
        lines.append(f"  ... {hidden} more statement shapes")
    return lines
