"""Statement fingerprints and kinds: one shape per query, whatever its values.

A fingerprint is the SQL with literals and every placeholder style (``?``, ``%s``,
``%(name)s``, ``:name``, ``$1``) replaced by ``?``, comments dropped, whitespace folded, and
``IN (...)`` and multi-row ``VALUES`` lists collapsed (PostgreSQL drivers' bind casts
included: ``IN (%(a)s::INTEGER, ...)``). Where literals and comments are is decided by the
dialect's own quoting rules (``sqlaudit.sql.lexer``): pass the statement's dialect; without
one, every known dialect's rules apply at once (nothing any of them reads as a literal is
kept); the rest is folded by ``sqlaudit.sql.folding``, which also fingerprints "plain" text
(no quoting that two dialects read differently) without a lexer. One compiled statement
repeats the same text, so results are memoised per text in bounded memos
(``sqlaudit.sql.cache``); the per-statement path only ever does a dict lookup for repeated
text. sqlparse is used only where its cost is paid once per distinct statement
shown to a person (``readable``, ``tables``).
"""

from __future__ import annotations

import re

from sqlaudit.model.records import StatementKind
from sqlaudit.sql.cache import ABSENT, TEXTS, Memo, TextFacts
from sqlaudit.sql.folding import MARK, folded, plain
from sqlaudit.sql.lexer import SPACE, VALUE, lex
from sqlaudit.sql.params import _roles
from sqlaudit.sql.parsed import table_names

__all__ = [
    "elide",
    "facts",
    "fingerprint",
    "new_facts",
    "readable",
    "short",
    "statement_kind",
    "tables",
]

#: Statements longer than this are fingerprinted on their first MAX_SQL characters only (the
#: rest is dropped, never shown), so one pathological statement costs a bounded, linear pass.
MAX_SQL = 1 << 20
#: Fingerprints longer than this are not handed to sqlparse (``tables``, ``readable``): its
#: grouping refuses more than 10,000 tokens, and its cost grows faster than the text.
MAX_PARSE = 16 * 1024

#: ``printable.UNPRINTABLE`` but the whitespace a lexer reads (``\t\n\v\f\r``, ``\x1c``-``\x1f``).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACE = r"(?:[\s\x00]|--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))"
_LEADING = re.compile(rf"(?:{_SPACE}|\()*", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
#: For ``WITH``: quoted identifiers (skipped), parentheses and words.
_WITH_TOKENS = re.compile(r'"(?:[^"]|"")*"?|`[^`]*`?|(\()|(\))|([^\W\d][\w$]*)')

_KINDS = {
    "SELECT": StatementKind.SELECT,
    "WITH": StatementKind.SELECT,
    "VALUES": StatementKind.SELECT,
    "TABLE": StatementKind.SELECT,
    "SHOW": StatementKind.OTHER,
    "INSERT": StatementKind.INSERT,
    "REPLACE": StatementKind.INSERT,
    "UPSERT": StatementKind.INSERT,
    "UPDATE": StatementKind.UPDATE,
    "MERGE": StatementKind.UPDATE,
    "DELETE": StatementKind.DELETE,
    "CREATE": StatementKind.DDL,
    "ALTER": StatementKind.DDL,
    "DROP": StatementKind.DDL,
    "TRUNCATE": StatementKind.DDL,
    "RENAME": StatementKind.DDL,
    "COMMENT": StatementKind.DDL,
    "GRANT": StatementKind.DDL,
    "REVOKE": StatementKind.DDL,
    "BEGIN": StatementKind.TRANSACTION,
    "START": StatementKind.TRANSACTION,
    "COMMIT": StatementKind.TRANSACTION,
    "END": StatementKind.TRANSACTION,
    "ROLLBACK": StatementKind.TRANSACTION,
    "SAVEPOINT": StatementKind.TRANSACTION,
    "RELEASE": StatementKind.TRANSACTION,
    "XA": StatementKind.TRANSACTION,
}
#: Read directly on the per-statement path (``capture.statements``): a dict lookup.
known = TEXTS.data
_FINGERPRINTS: dict[str, Memo[str]] = {
    name: Memo(len) for name in ("", "sqlite", "mysql", "postgresql", "mssql", "oracle")
}
#: Each dialect name's memo, ``family`` applied (one dict lookup at close, per text).
_MEMO_OF = {**_FINGERPRINTS, "mariadb": _FINGERPRINTS["mysql"]}
_UNKNOWN = _FINGERPRINTS[""]


def fingerprint(sql: str, dialect: str = "") -> str:
    """Return the shape of ``sql``: literals and placeholders as ``?``, lists collapsed.

    ``dialect`` is SQLAlchemy's dialect name (``QueryRecord.dialect``); literals and comments
    are found by its quoting rules, or by every known dialect's if it is empty or unknown.
    Never raises for any ``str``; one call costs a linear pass over at most ``MAX_SQL``
    characters. Idempotent: ``fingerprint(fingerprint(s, d), d) == fingerprint(s, d)``.
    Quoted identifiers are kept verbatim.
    """
    entry = known.get(sql, ABSENT)  # a text capture recorded has one
    shape = entry.shape
    if shape is not None:
        return shape
    lexed = entry.lexed
    if lexed is None:
        return _fill(entry, sql, dialect)
    if lexed[0] == dialect:
        return lexed[1]
    memo = _MEMO_OF.get(dialect, _UNKNOWN)  # _FINGERPRINTS[family(dialect)], in one lookup
    found = memo.data.get(sql)
    if found is None:
        found = memo.put(sql, _fingerprint(sql, dialect))
    return found


#: ``TextFacts.lexed`` of a text whose fingerprint is longer than itself: kept in the memo.
_ELSEWHERE = ABSENT.lexed


def _fill(entry: TextFacts, sql: str, dialect: str) -> str:
    """The fingerprint of a text with an entry, kept in it if it fits (``TextFacts.cost``)."""
    text = sql[:MAX_SQL]  # as _fingerprint does
    if not (text.isascii() and text.isprintable()):
        text = _CONTROL.sub(" ", text)
    shape = plain(text)
    if shape is None:
        shape = _lexed(text, dialect)
        if len(shape) <= len(sql):
            entry.lexed = (dialect, shape)
            return shape
    elif len(shape) <= len(sql):
        entry.shape = shape
        return shape
    # Longer than its text, so not charged for: kept in the memo, as without an entry.
    entry.lexed = _ELSEWHERE
    return _MEMO_OF.get(dialect, _UNKNOWN).put(sql, shape)


def _fingerprint(sql: str, dialect: str) -> str:
    # Control characters are whitespace here (one fingerprint, one line: ``printable``), NUL
    # included, so that it can mark the quoted identifiers held aside below. Line breaks stay
    # until the lexer ran: they end ``--`` comments (all whitespace is folded after it).
    text = sql[:MAX_SQL]
    if not (text.isascii() and text.isprintable()):  # else no control character is there
        text = _CONTROL.sub(" ", text)
    shape = plain(text)
    return _lexed(text, dialect) if shape is None else shape


def _lexed(text: str, dialect: str) -> str:
    """The fingerprint of any text (control characters replaced), by ``dialect``'s lexers."""
    (starts, ends, classes), safe = lex(text, dialect)
    parts: list[str] = []
    idents: list[str] = []
    pos = 0
    for start, end, cls in zip(starts, ends, classes, strict=True):
        if start >= safe:
            break
        if start > pos:
            parts.append(text[pos:start])
        if cls == VALUE:
            parts.append("?")
        elif cls == SPACE:
            parts.append(" ")
        else:
            # Held aside so that the folding patterns below never reach inside one.
            idents.append(text[start:end])
            parts.append(MARK)
        pos = end
    parts.append(text[pos:safe])
    if safe < len(text):
        # Where the dialect's settings disagree: all of it a literal. After a space, so that
        # a minus before it stays an operator (``-?`` would read as one signed value).
        parts.append(" ?")
    text = folded("".join(parts))
    if idents:
        restore = iter(idents)
        text = re.sub(MARK, lambda _: next(restore), text)
    return text


def statement_kind(sql: str) -> str:
    """Classify ``sql`` by its first keyword (memoised by text; bounded).

    Leading comments and parentheses are skipped; ``WITH`` statements take the kind of their
    main statement, or of a data-modifying CTE (PostgreSQL ``WITH d AS (DELETE ...)``).
    """
    return facts(sql).kind


def facts(sql: str) -> TextFacts:
    """The text's memo entry (``cache.TextFacts``): its kind and parameter roles, made and kept
    (if it fits the budget) at its first statement, the rest filled in when asked."""
    return known.get(sql) or new_facts(sql)


def new_facts(sql: str) -> TextFacts:
    """``facts`` of a text without an entry (``known.get(sql)`` was None): made and kept."""
    # No mention of UPDATE or SHARE: no locking read under any dialect (``locking``).
    mentions = "PDATE" in sql or "pdate" in sql or "HARE" in sql or "hare" in sql
    kind = _STARTS.get(sql[:7]) or _kind(sql)
    return TEXTS.put(sql, TextFacts(kind, _roles(sql), None if mentions else False, len(sql)))


#: ``_kind`` of a text by its first seven characters, where they are a six-letter verb and a
#: space or line break: that verb is its first word (a dict lookup, not a pattern, issue 20).
_STARTS = {
    f"{verb}{space}": _KINDS[verb.upper()]
    for word in ("SELECT", "INSERT", "UPDATE", "DELETE")
    for verb in (word, word.lower())
    for space in " \n"
}


def _kind(sql: str) -> str:
    # A text that starts with its word has nothing to skip (no skipped run starts with a letter)
    match = _FIRST_WORD.match(sql)
    if match is None:
        leading = _LEADING.match(sql, 0, 4096)  # always matches, possibly empty
        match = _FIRST_WORD.match(sql, leading.end() if leading else 0)
    word = match.group().upper() if match else ""
    kind = _KINDS.get(word, StatementKind.OTHER)
    return _with_kind(sql) if word == "WITH" else kind


_WRITE_VERBS = {
    "INSERT": StatementKind.INSERT,
    "UPDATE": StatementKind.UPDATE,
    "DELETE": StatementKind.DELETE,
    "MERGE": StatementKind.UPDATE,
}
_READ_VERBS = frozenset({"SELECT", "VALUES", "TABLE"})


def _with_kind(sql: str) -> str:
    """The kind of a ``WITH`` statement: its main (top-level) verb, else a data-modifying CTE.

    Only words outside quoted identifiers count, and only a verb at depth 0 or right after an
    opening parenthesis, so ``last_update``, ``"insert"`` or ``FOR UPDATE`` are not writes.
    """
    depth = 0
    after_open = False
    cte_write: str | None = None
    # The kind is no export: PostgreSQL's rules (one lexer, not every dialect's) find verbs.
    for match in _WITH_TOKENS.finditer(fingerprint(sql, "postgresql")):
        opening, closing, word = match.groups()
        if opening:
            depth += 1
            after_open = True
            continue
        if closing:
            depth = max(depth - 1, 0)
        elif word:
            upper = word.upper()
            if depth == 0:
                if upper in _WRITE_VERBS:
                    return _WRITE_VERBS[upper]
                if upper in _READ_VERBS:
                    break
            elif after_open and upper in _WRITE_VERBS and cte_write is None:
                cte_write = _WRITE_VERBS[upper]
        after_open = False
    return cte_write or StatementKind.SELECT


_SELECT_LIST = re.compile(r"^(SELECT (?:DISTINCT )?)(.+?)( FROM .*)$", re.IGNORECASE | re.DOTALL)


def short(sql: str, width: int = 100, dialect: str = "") -> str:
    """One-line summary of a statement's fingerprint for reports: column lists elided."""
    return elide(fingerprint(sql, dialect), width)


def elide(shape: str, width: int = 100) -> str:
    """A fingerprint (already one: not fingerprinted again) shortened for reports."""
    match = _SELECT_LIST.match(shape)
    if match and "(" not in match.group(2):
        shape = f"{match.group(1)}…{match.group(3)}"
    if len(shape) > width:
        shape = shape[: width - 1] + "…"
    return shape


_READABLE: Memo[str] = Memo(len, max_entries=1024)
_TABLES: Memo[tuple[str, ...]] = Memo(lambda found: sum(map(len, found)), max_entries=1024)


def readable(sql: str, dialect: str = "") -> str:
    """The fingerprint, reindented by sqlparse for people (paid once per distinct shape)."""
    shape = fingerprint(sql, dialect)
    found = _READABLE.data.get(shape)
    if found is None:
        found = shape
        if len(shape) <= MAX_PARSE:
            try:
                import sqlparse

                found = str(sqlparse.format(shape, reindent=True, keyword_case="upper")).strip()
            except Exception:  # a third-party parser on any text: then the flat fingerprint
                found = shape
        found = _READABLE.put(shape, found)
    return found


def tables(sql: str, dialect: str = "") -> tuple[str, ...]:
    """Table names a statement reads or writes, in order of appearance (via sqlparse).

    Empty when sqlparse cannot tell: fingerprints longer than ``MAX_PARSE``, or text sqlparse
    refuses (its grouping raises past 10,000 tokens): table names are optional metadata, and a
    failure here must not cost the unit's findings (issue 14).
    """
    shape = fingerprint(sql, dialect)
    found = _TABLES.data.get(shape)
    if found is None:
        try:
            found = table_names(shape) if len(shape) <= MAX_PARSE else ()
        except Exception:
            found = ()
        found = _TABLES.put(shape, found)
    return found
