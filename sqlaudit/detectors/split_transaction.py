"""``split_transaction`` (info): one operation's writes committed in several transactions.

"One operation" is one function of the application (the innermost application frame that
two committed transactions' call stacks share, reached through the same outer call lines)
that calls, from two different lines, code which each begins and commits a transaction of
its own: a service calling ``repo.debit()`` and ``repo.credit()``, each ``with
session.begin():``. A failure between the two leaves half of the operation committed.

Quiet by design:

* the unit's own entry frame (the test function, the view, the ``with sqlaudit.audit()``
  block): it runs several operations one after the other by design (a test's steps, a job's
  phases), so the operation is a function it calls;

* a function that opens two transactions itself (two ``with session.begin():`` blocks in one
  body) owns its transaction boundaries: that is deliberate (claim a job, work, mark it done);
* retries and commit-per-item loops: the transactions come from the same call stack;
* savepoints (``begin_nested``) are not transactions of their own; transactions that rolled
  back, autocommit connections (``autocommit_writes`` covers them) and transactions the unit
  did not begin are not counted;
* a transaction that only INSERTs into log-like tables (a name with a word ``audit``,
  ``log``, ``outbox``, ``event``, ``history`` or ``journal``): an audit or outbox record kept
  apart on purpose, so it survives a failure of the operation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import own_transactions
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.records import StatementKind
from sqlaudit.sql.fingerprint import statement_kind, tables

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, QueryRecord, TransactionRecord, UnitRecord

_LOG_WORDS = frozenset(
    {"audit", "audits", "log", "logs", "outbox", "event", "events", "history", "histories"}
    | {"journal", "journals", "auditlog", "auditlogs"}
)
_WORD = re.compile(r"[a-z]+")


def _log_like(table: str) -> bool:
    words = _WORD.findall(re.sub(r"([a-z])([A-Z])", r"\1_\2", table).lower())
    return any(w in _LOG_WORDS or w.startswith("audit") for w in words)


def _deliberate(tx: TransactionRecord) -> bool:
    """Only INSERTs into log-like tables: an audit/outbox record kept apart on purpose."""
    if not tx.write_sql:
        return False
    for sql in tx.write_sql:
        if statement_kind(sql) != StatementKind.INSERT:
            return False
        written = tables(sql)
        if not written or not all(_log_like(t) for t in written):
            return False
    return True


# (the shared outer frames, outermost first; the operation's file; its function)
_Operation = tuple[tuple["CallSite", ...], str, str]


def _operation(
    a: tuple[CallSite, ...], b: tuple[CallSite, ...]
) -> tuple[_Operation, CallSite, CallSite] | None:
    """Where two transactions' stacks (outermost first) part inside one function, at two
    lines that each call further down: (operation, its call line for ``a``, for ``b``)."""
    k = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        k += 1
    if k == 0 or k >= len(a) - 1 or k >= len(b) - 1:
        # The unit's own entry (a test, a view, the audited block) runs several operations by
        # design; the same stack; or one began in the operation's own body.
        return None
    first, second = a[k], b[k]
    if (first.file, first.function) != (second.file, second.function):
        return None
    return (a[:k], first.file, first.function), first, second


class SplitTransaction:
    """One operation of a unit whose writes were committed in >= 2 transactions begun from
    different call sites below it (see the module)."""

    kind = "split_transaction"
    #: ``run_detectors`` skips it for a unit with no transaction with writes.
    needs = "tx_writes"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        committed = [
            tx
            for tx in own_transactions(unit, self.kind)
            if tx.end == "commit" and tx.writes and tx.autocommit is False
        ]
        if len(committed) < 2:
            return
        committed.sort(key=lambda tx: tx.started)
        stacks = [tuple(reversed(tx.begin_stack or tx.end_stack)) for tx in committed]
        found: dict[_Operation, dict[int, tuple[CallSite, CallSite, int]]] = {}
        deliberate: dict[int, bool] = {}
        for i in range(len(committed) - 1):
            pair = _operation(stacks[i], stacks[i + 1])
            if pair is None:
                continue
            operation, first, second = pair
            if any(deliberate.setdefault(j, _deliberate(committed[j])) for j in (i, i + 1)):
                continue
            calls = found.setdefault(operation, {})
            for j, site in ((i, first), (i + 1, second)):
                callee = stacks[j][len(operation[0]) + 1]
                calls.setdefault(j, (site, callee, committed[j].writes))
        for (outer, _file, function), calls in found.items():
            lines = {site.line: callee for site, callee, _ in calls.values()}
            if len(lines) < 2:
                continue
            sites = sorted({site for site, _, _ in calls.values()}, key=lambda s: s.line)
            where = ", ".join(f"line {s.line} ({lines[s.line].function}())" for s in sites)
            callees = " and ".join(dict.fromkeys(f"{lines[s.line].function}()" for s in sites))
            n = len(calls)
            yield Finding(
                kind=self.kind,
                severity=Severity.INFO,
                message=(
                    f"split transaction: {function}() committed its writes in {n} separate "
                    f"transactions, begun by the calls at {where}; a failure between them "
                    "leaves the operation half done"
                ),
                count=n,
                location=sites[0],
                fix=(
                    f"open one transaction for the whole of {function}() (`with "
                    "Session(engine) as session, session.begin():` or `with engine.begin() as "
                    f"conn:`) and pass the session or connection to {callees} instead of "
                    "letting each commit; keep a transaction of their own only for writes "
                    "that must survive a failure (an audit log)"
                ),
                db_time=sum(committed[j].exec_time for j in calls),
                stack=(sites[0], *reversed(outer)),
            )
