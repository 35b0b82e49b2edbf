"""Statement fingerprints and kinds: one shape per query, whatever its values.

A fingerprint is the SQL with literals and every placeholder style (``?``, ``%s``,
``%(name)s``, ``:name``, ``$1``) replaced by ``?``, comments dropped, whitespace folded, and
``IN (...)`` and multi-row ``VALUES`` lists collapsed (PostgreSQL drivers' bind casts
included: ``IN (%(a)s::INTEGER, ...)``). Where literals and comments are is decided by the
dialect's own quoting rules (``sqlaudit.sql.lexer``): pass the statement's dialect; without
one, every known dialect's rules apply at once (nothing any of them reads as a literal is
kept). One compiled statement repeats the same text, so results are memoised per text in
bounded memos (``sqlaudit.sql.cache``); the per-statement path only ever does a dict lookup
for repeated text. sqlparse is used only where its cost is paid once per distinct statement
shown to a person (``readable``, ``tables``).
"""

from __future__ import annotations

import re

from sqlaudit.model.records import StatementKind
from sqlaudit.sql.cache import ABSENT, TEXTS, Memo, TextFacts
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

_COMMA = re.compile(r" ?, ?")
_OPERATOR = re.compile(r" ?(<=|>=|<>|!=|=|<|>) ?")
# Not after "%" / before "s": folding "%( a)s" or "%(a )s" would make a pyformat placeholder.
_PAREN_OPEN = re.compile(r"(?<!%)\( ")
_PAREN_CLOSE = re.compile(r" \)(?!s)")
_SPACES = re.compile(r"  +")
#: Where the five foldings above would change a text whose whitespace is already folded (one
#: space between words, none at either end): a space before ``,`` or ``)``, ``,`` without a
#: space after it, ``(`` with one; an operator run that does not start after a space, is not
#: one operator, or is not followed by a space and then something other than an operator.
#: Where none is found, each folding leaves the text unchanged, so they are not run. (The
#: space before ``,`` or ``)`` is looked behind for: a space is no candidate to start at.)
_UNFOLDED = re.compile(
    r",(?:(?<= ,)|(?! ))|\)(?<= \))|\( "
    r"|<(?:(?<![ <>=!].)|(?<![<>=!].)(?![=>]? (?![<>=!])))"
    r"|>(?:(?<![ <>=!].)|(?<![<>=!].)(?!=? (?![<>=!])))"
    r"|=(?:(?<![ <>=!].)|(?<![<>=!].)(?! (?![<>=!])))"
    r"|!(?:(?<![ <>=!].)|(?<![<>=!].)(?!= (?![<>=!])))"
)
#: ``printable.UNPRINTABLE`` but the whitespace a lexer reads (``\t\n\v\f\r``, ``\x1c``-``\x1f``).
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
#: Quoted identifiers are held aside as NUL while the patterns below run (a NUL in the input
#: is whitespace to the lexer, so it never reaches this point otherwise).
_MARK = "\x00"
_NAME = r"(?:[A-Za-z_][\w$]*|\x00)"
#: One value of a list: ``?``, with the bind cast PostgreSQL drivers add (``?::INTEGER``,
#: ``?::VARCHAR(?)``, ``?::TIMESTAMP WITHOUT TIME ZONE``, ``?::INTEGER[]``, ``?::"Enum"``).
_ITEM = rf"\?(?:::{_NAME}(?:\.{_NAME})?(?: [A-Za-z_][\w$]*)*(?:\(\?(?:, \?)*\))?(?:\[\])*)?"
_IN_LIST = re.compile(rf"\bIN \({_ITEM}(?:, {_ITEM})*\)", re.IGNORECASE)
_ROW = rf"\((?:{_ITEM}|\w+)(?:, (?:{_ITEM}|\w+))*\)"
_VALUES_LIST = re.compile(rf"\b(VALUES) ({_ROW})(?:, {_ROW})+", re.IGNORECASE)
_SPACE = r"(?:[\s\x00]|--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))"
_LEADING = re.compile(rf"(?:{_SPACE}|\()*", re.DOTALL)
_FIRST_WORD = re.compile(r"[A-Za-z]+")
#: For ``WITH``: quoted identifiers (skipped), parentheses and words.
_WITH_TOKENS = re.compile(r'"(?:[^"]|"")*"?|`[^`]*`?|(\()|(\))|([^\W\d][\w$]*)')

#: The fast path for "plain" text (issue 20): ASCII, and none of what some dialect reads
#: differently from another (``lexer._DISAGREE``: ``"``, `````, ``[``, ``#``, ``\``, ``$``,
#: ``/*``; ``q'`` is a quote after a letter, see below), nor ``--`` comments. Every dialect's
#: lexer then finds only values: ``'...'`` strings, numbers, placeholders, a sign before
#: them, and three kinds this pattern leaves to the full path: prefixed strings (``N'..'``,
#: ``X'..'``, ``E'..'``, ``U&'..'``: here a quote after a letter or ``&`` is not opened, and
#: is seen left in the result), ``TRUE`` and ``FALSE``. Written as the lexer's tokens are
#: (same rest for each first character, same lookbehinds), but no letter is a candidate to
#: start at: ``lex`` tries every letter that could start a prefix or ``TRUE``.
#: One search for all of them: a ``-`` or ``/`` is no match unless ``-`` or ``*`` follows.
_UNPLAIN = re.compile(r"[\"`\[#\\$/-](?:(?<=-)-|(?<=/)\*|(?<![-/]))")
_NUMBER = r"\w*(?:\.(?!\.)\w*)?(?:(?<=[eE])[-+]\d\w*)?"
_FRACTION = r"\d\w*(?:(?<=[eE])[-+]\d\w*)?"
_STRING = r"(?:[^']+|'')*(?:'|\Z)"
_PYFORMAT = r"(?:\([^()\s'?]{1,128}\)s|s)"
_COLON = r"(?<!::)[A-Za-z_]\w*"
_PLAIN = re.compile(
    r"[-'%?:.0-9](?:"
    rf"(?<=')(?<![A-Za-z&].){_STRING}"
    rf"|(?<=%){_PYFORMAT}"
    r"|(?<=\?)"
    rf"|(?<=:){_COLON}"
    rf"|(?<=[0-9])(?<![\w$?].){_NUMBER}"
    rf"|(?<=\.)(?<![\w$?].){_FRACTION}"
    r"|(?<=-)(?<![\w.?'$\"`)\]].)"
    rf"(?:'{_STRING}|%{_PYFORMAT}|\?|:{_COLON}|\d{_NUMBER}|\.{_FRACTION})"
    r")"
)
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
#: ``_plain_shape`` by skeleton (a plain text, its values replaced); ``_UNSEEN`` if not known.
_SKELETON: Memo[str | None] = Memo(lambda shape: 0 if shape is None else len(shape))
_SKELETONS = _SKELETON.data
_UNSEEN = "\x00unseen"


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
    shape = _plain(text)
    plain = shape is not None
    if shape is None:
        shape = _lexed(text, dialect)
    if len(shape) > len(sql):  # not charged for: kept in the memo, as without an entry
        entry.lexed = _ELSEWHERE
        return _MEMO_OF.get(dialect, _UNKNOWN).put(sql, shape)
    if plain:
        entry.shape = shape
    else:
        entry.lexed = (dialect, shape)
    return shape


def _fingerprint(sql: str, dialect: str) -> str:
    # Control characters are whitespace here (one fingerprint, one line: ``printable``), NUL
    # included, so that it can mark the quoted identifiers held aside below. Line breaks stay
    # until the lexer ran: they end ``--`` comments (all whitespace is folded after it).
    text = sql[:MAX_SQL]
    if not (text.isascii() and text.isprintable()):  # else no control character is there
        text = _CONTROL.sub(" ", text)
    shape = _plain(text)
    return _lexed(text, dialect) if shape is None else shape


def _plain(text: str) -> str | None:
    """The fingerprint of a "plain" text (``_PLAIN``), the same under every dialect's rules;
    None for any other text."""
    if text.isascii() and _UNPLAIN.search(text) is None:
        # Texts that differ only in their values (inlined literals: a new text each time)
        # have one skeleton: what follows is a function of it, kept (issue 20).
        skeleton = _PLAIN.sub("?", text)
        shape = _SKELETONS.get(skeleton, _UNSEEN)
        if shape is _UNSEEN:
            shape = _SKELETON.put(skeleton, _plain_shape(skeleton))
        return shape
    return None


def _plain_shape(skeleton: str) -> str | None:
    """``_plain`` of a text whose values ``_PLAIN`` replaced in ``skeleton``."""
    shape = _shape(skeleton)
    # A quote left over is one _PLAIN did not open (after a letter or "&": maybe a prefixed
    # string); TRUE and FALSE are literals it does not look for.
    upper = shape.upper()
    if "'" not in shape and "TRUE" not in upper and "FALSE" not in upper:
        return shape
    return None


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
            parts.append(_MARK)
        pos = end
    parts.append(text[pos:safe])
    if safe < len(text):
        # Where the dialect's settings disagree: all of it a literal. After a space, so that
        # a minus before it stays an operator (``-?`` would read as one signed value).
        parts.append(" ?")
    text = _shape("".join(parts))
    if idents:
        restore = iter(idents)
        text = re.sub(_MARK, lambda _: next(restore), text)
    return text


def _shape(text: str) -> str:
    """Literals already replaced: whitespace folded, lists collapsed, ``;`` dropped."""
    text = " ".join(text.split())  # whitespace folded, as str.split() reads it
    if _UNFOLDED.search(text) is not None:
        text = _fold(text)
    upper = text.upper()  # the list patterns run only where they can match
    if "IN (?" in upper:
        text = _IN_LIST.sub("IN (?)", text)
    if "VALUES (" in upper:
        text = _VALUES_LIST.sub(r"\1 \2", text)
    return text.rstrip("; ")


def _fold(text: str) -> str:
    """One space after a comma and around an operator, none inside parentheses."""
    text = _COMMA.sub(", ", text)
    text = _OPERATOR.sub(r" \1 ", text)
    text = _PAREN_CLOSE.sub(")", _PAREN_OPEN.sub("(", text))
    return _SPACES.sub(" ", text)


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
#: space: that verb is its first word (one dict lookup instead of a pattern, issue 20).
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
