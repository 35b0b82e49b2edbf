"""The finding kinds as code-scanning rules: default severity, one-line description, help.

Used by the SARIF output (:mod:`sqlaudit.pytest_plugin.ci`); every kind of
:data:`sqlaudit.model.findings.KINDS` has an entry (``tests/test_ci_output.py`` checks it).
"""

from __future__ import annotations

__all__ = ["RULES"]

#: kind -> (default severity, short description, help: why it matters and what to do).
RULES: dict[str, tuple[str, str, str]] = {
    "n_plus_one": (
        "warning",
        "N+1: a relationship lazy-loaded once per parent row",
        "One SELECT per parent object instead of one for all of them. Add the loader option "
        "the finding names (selectinload/joinedload) to the query that loaded the parents.",
    ),
    "column_reload": (
        "warning",
        "Deferred or expired columns loaded once per instance",
        "Each object reloads its columns on attribute access (often after a commit with "
        "expire_on_commit=True). Load the columns with the query (undefer) or read them "
        "before the commit.",
    ),
    "repeated_query": (
        "warning",
        "The same query shape issued repeatedly from one call site",
        "A loop runs one SELECT per item. Fetch all items with one query (IN, a join) "
        "before the loop.",
    ),
    "write_loop": (
        "warning",
        "Single-row INSERT/UPDATE/DELETE in a loop",
        "One round trip per row. Batch the writes: one flush, executemany, or a set-based "
        "UPDATE/DELETE.",
    ),
    "query_budget": (
        "error",
        "More statements (or DB time) than the unit's budget",
        "The unit of work exceeded its query budget. Remove the statements the other "
        "findings point at, or raise the budget after review.",
    ),
    "slow_query": (
        "warning",
        "A statement slower than the slow-query threshold",
        "Check the statement's plan (an index, a narrower query) or move the work out of "
        "the request.",
    ),
    "autocommit_writes": (
        "warning",
        "Several writes in one unit, each committed on its own (autocommit)",
        "The unit's writes are not atomic: a failure half-way leaves half of them. Run them "
        "in one transaction (with session.begin(): / with engine.begin():).",
    ),
    "ineffective_rollback": (
        "error",
        "A rollback after writes on an autocommit connection",
        "The rollback undoes nothing: the writes were already durable. Run the writes in a "
        "transaction so that the rollback means what the code expects.",
    ),
    "commit_in_loop": (
        "warning",
        "A commit per item in a loop",
        "Each commit is a round trip and a durable flush. Commit once after the loop, or in "
        "batches.",
    ),
    "discarded_writes": (
        "warning",
        "Writes rolled back because nobody committed",
        "The connection or session closed without a commit, so its writes were lost. Commit "
        "them, or do not issue them.",
    ),
    "long_transaction": (
        "warning",
        "A transaction open or idle for too long",
        "Long or idle transactions hold locks and connections. Keep network calls and slow "
        "work outside the transaction; commit as soon as the writes are done.",
    ),
    "stale_identity_map": (
        "warning",
        "A Session re-read rows it already held, ignoring newer values",
        "A Session that outlives its transaction serves stale objects. Use one Session per "
        "unit of work, or refresh/expire the objects before relying on them.",
    ),
    "transaction_overhead": (
        "info",
        "Many transactions: transaction control is most of the round trips",
        "BEGIN/COMMIT round trips dominate the unit. Group its statements into fewer transactions.",
    ),
    "autocommit_lock": (
        "error",
        "SELECT ... FOR UPDATE on an autocommit connection",
        "The lock ends with the statement and protects nothing. Take it inside the "
        "transaction that makes the write.",
    ),
    "autocommit_read_modify_write": (
        "warning",
        "A row read, then written back from the value read, on autocommit",
        "A lost update waiting to happen. Use an atomic SET col = col + ? or read with a "
        "lock inside one transaction.",
    ),
    "split_transaction": (
        "info",
        "One operation's writes committed in several transactions",
        "A failure between the commits leaves half the operation. Let the caller own one "
        "transaction for the whole operation.",
    ),
    "unused_eager_load": (
        "warning",
        "A relationship loaded eagerly that the unit never reads",
        "The eager load costs a query or a join for nothing. Remove the loader option the "
        "finding names.",
    ),
}
