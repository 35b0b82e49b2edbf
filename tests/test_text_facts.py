"""One memo entry per recorded statement text (``sqlaudit.sql.cache.TextFacts``, issue 20).

Capture makes a text's entry at its first statement (kind, parameter roles) and fills in the
rest when asked (fingerprint, locking read): one ``put`` per new text instead of one per memo.
These tests pin that the entry answers exactly what the functions answer without one, over
the corpus of ``test_fingerprint``, under every dialect and in either order; that capture
keeps a new text in that one memo only; and that the memo stays within its bounds.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text
from test_fingerprint import CASTS, DIALECT_FINGERPRINTS, FINGERPRINTS, KINDS, LEAKS
from timing import UNTIMED

import sqlaudit
from sqlaudit.sql.cache import ABSENT, TEXTS, TextFacts, clear_all, memos
from sqlaudit.sql.fingerprint import facts, fingerprint, statement_kind
from sqlaudit.sql.locking import is_locking
from sqlaudit.sql.params import roles

DIALECTS = ("", "sqlite", "mysql", "mariadb", "postgresql", "mssql", "oracle", "other")
#: Texts the entry must answer for as the functions do: the fingerprint tables, plus locking
#: reads, page and chunk walks, and fingerprints longer than their text.
CORPUS = sorted(
    {
        str(case.values[0])
        for table in (FINGERPRINTS, DIALECT_FINGERPRINTS, KINDS, LEAKS, CASTS)
        for case in table
    }
    | {
        "SELECT a FROM t WHERE id = ? FOR UPDATE",
        "SELECT a FROM t WHERE id = %s FOR NO KEY UPDATE SKIP LOCKED",
        "SELECT a FROM t WHERE id = %s LOCK IN SHARE MODE",
        "SELECT a FROM t WHERE note = 'for update'",
        "SELECT a FROM t -- FOR UPDATE\nWHERE id = ?",
        'SELECT "for update" FROM t FOR SHARE',
        "SELECT a FROM t WHERE x = ? ORDER BY a LIMIT ? OFFSET ?",
        "SELECT a FROM t WHERE id IN (%(a)s, %(b)s) AND s = %(c)s",
        "SELECT a FROM t ORDER BY a LIMIT %s, %s",
        "SELECT a,b,c FROM t WHERE a=b AND c<>d",
        "UPDATE t SET a=a+1,b=b WHERE c=d",
        "WITH d AS (DELETE FROM t WHERE a = 1 RETURNING a) SELECT * FROM d",
    }
)


def answers(sql: str) -> tuple[object, ...]:
    """What the public functions answer for ``sql``, under every dialect."""
    return (
        statement_kind(sql),
        roles(sql),
        tuple(fingerprint(sql, dialect) for dialect in DIALECTS),
        tuple(is_locking(sql, dialect) for dialect in DIALECTS),
    )


def without_entry(sql: str, first: str = "") -> tuple[object, ...]:
    """The answers with no entry for ``sql`` (the separate memos, each computed apart), the
    dialect ``first`` asked first (a text's locking answer is the first one asked, by text)."""
    clear_all()
    fingerprint(sql, first)
    is_locking(sql, first)
    found = (
        roles(sql),
        tuple(fingerprint(sql, dialect) for dialect in DIALECTS),
        tuple(is_locking(sql, dialect) for dialect in DIALECTS),
    )
    clear_all()
    return (statement_kind(sql), *found)


@pytest.mark.parametrize("first", DIALECTS, ids=lambda d: d or "unknown")
def test_entry_answers_as_the_separate_functions(first: str) -> None:
    """With an entry made first (as capture makes it), and its fingerprint and locking filled
    in under ``first``'s rules, every function answers for every dialect as it does without
    an entry."""
    for sql in CORPUS:
        expected = without_entry(sql, first)
        clear_all()
        entry = facts(sql)
        assert sql in TEXTS.data and TEXTS.data[sql] is entry
        assert (entry.kind, entry.roles) == expected[:2], sql
        fingerprint(sql, first)
        is_locking(sql, first)
        assert answers(sql) == expected, sql
        assert answers(sql) == expected, sql  # again, from what the entry holds now
    clear_all()


def test_entry_keeps_a_fingerprint_only_within_its_budget() -> None:
    """A fingerprint longer than its text (spaces added around operators) is not charged for
    (``TextFacts.cost``), so the entry does not keep it: the per-dialect memo does, within its own
    bounds. A plain one is kept for every dialect, a lexed one for its dialect only."""
    clear_all()
    longer = "SELECT a,b FROM t WHERE a=b"
    entry = facts(longer)
    assert fingerprint(longer, "sqlite") == "SELECT a, b FROM t WHERE a = b"
    assert entry.shape is None and entry.lexed == ABSENT.lexed  # "kept elsewhere"
    assert fingerprint(longer, "sqlite") == "SELECT a, b FROM t WHERE a = b"
    plain = "SELECT a FROM t WHERE id = 12345"
    facts(plain)
    assert fingerprint(plain, "sqlite") == "SELECT a FROM t WHERE id = ?"
    assert facts(plain).shape == "SELECT a FROM t WHERE id = ?"
    quoted = 'SELECT "a" FROM t WHERE id = 12345'
    facts(quoted)
    assert fingerprint(quoted, "postgresql") == 'SELECT "a" FROM t WHERE id = ?'
    assert facts(quoted).lexed == ("postgresql", 'SELECT "a" FROM t WHERE id = ?')
    assert fingerprint(quoted, "mysql") == "SELECT ? FROM t WHERE id = ?"  # a string there
    assert facts(quoted).lexed == ("postgresql", 'SELECT "a" FROM t WHERE id = ?')
    clear_all()


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_a_new_text_is_kept_once(engine: Engine) -> None:
    """A new text recorded in an audit (a SELECT with parameters in a transaction, repeated
    in a loop: grouped by fingerprint when the audit closes) is held by one memo, ``TEXTS``,
    in one entry: its kind, roles, locking answer and fingerprint."""
    sqlaudit.instrument(engine)
    clear_all()
    sql = "SELECT 12345 AS n WHERE 2 > :x ORDER BY 1 LIMIT :n"
    with (
        sqlaudit.audit("new text", on_finding="ignore", **UNTIMED) as report,
        engine.connect() as conn,
    ):
        for _ in range(3):
            conn.execute(text(sql), {"x": 1, "n": 5}).all()
        issued = report.statements[0].sql
        holders = [memo for memo in memos() if issued in memo.data]
        assert holders == [TEXTS]
        entry = TEXTS.data[issued]
        assert entry.kind == "select"
        assert entry.roles is not None and [role for _, role in entry.roles] == ["range", "limit"]
        assert entry.locking is False
    assert [f.kind for f in report.findings] == ["repeated_query"]  # grouped by fingerprint
    assert entry.shape == "SELECT ? AS n WHERE ? > ? ORDER BY ? LIMIT ?"


def test_entries_stay_bounded() -> None:
    """``TEXTS`` keeps at most ``max_entries`` entries and ``max_chars`` characters however
    many texts get entries and fingerprints, the fingerprints included (charged for when the
    entry is made)."""
    clear_all()
    for i in range(3 * TEXTS.max_entries):
        sql = f"SELECT {i} AS n, '{'x' * (i % 700)}' AS v WHERE a = {i} LIMIT 1"
        facts(sql)
        fingerprint(sql, "sqlite")
        assert len(TEXTS) <= TEXTS.max_entries
        assert TEXTS.chars <= TEXTS.max_chars
    held = sum(
        len(sql) + len(entry.shape or "") + 16 * len(entry.roles or ())
        for sql, entry in TEXTS.data.items()
    )
    assert held <= TEXTS.chars
    huge = "SELECT '" + "x" * TEXTS.max_chars + "'"
    assert facts(huge).kind == "select"  # answered, but over a quarter of the budget: not kept
    assert huge not in TEXTS.data
    clear_all()
    assert len(TEXTS) == 0 and TEXTS.chars == 0


def test_threads_filling_one_entry_agree() -> None:
    """Threads that make and fill the same entries at once all get the answers one thread
    alone gets (each slot is written whole)."""
    expected = {sql: without_entry(sql) for sql in CORPUS}
    clear_all()
    results: list[dict[str, tuple[object, ...]]] = []
    start = threading.Barrier(6)

    def work() -> None:
        start.wait()
        found = {}
        for sql in CORPUS:
            facts(sql)
            found[sql] = answers(sql)
        results.append(found)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 6
    assert all(isinstance(entry, TextFacts) for entry in TEXTS.data.values())
    assert (ABSENT.shape, ABSENT.locking, ABSENT.lexed) == (None, None, ("\x00", ""))
    clear_all()
