"""Statement fingerprints and kinds: one shape per query, whatever its values.

A fingerprint is the SQL with literals and every placeholder style (``?``, ``%s``,
``%(name)s``, ``:name``, ``$1``) replaced by ``?``, comments dropped, whitespace folded, and
``IN (...)`` and multi-row ``VALUES`` lists collapsed. One compiled statement repeats the same
text, so results are cached by text in bounded dicts; the per-statement path only ever does a
dict lookup for repeated text. sqlparse is used only where its cost is paid once per distinct
statement shown to a person (``readable``, ``tables``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from sqlaudit.model.records import StatementKind

__all__ = ["fingerprint", "readable", "short", "statement_kind", "tables"]

#: Statements longer than this are fingerprinted on their first MAX_SQL characters only, so
#: one pathological statement cannot cost more than a bounded regex pass.
MAX_SQL = 64 * 1024
_CACHE_SIZE = 4096

#: Whitespace and comments: folded into one space. NUL is included so that it can mark quoted
#: identifiers while the list patterns below run (a NUL in the input is whitespace here).
_SPACE = r"(?:[\s\x00]|--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))"
#: A unary minus belongs to the value it negates, unless the character before it can end an
#: operand (``a-1`` and ``f(x) - ?`` keep their minus).
_SIGN = r"(?:(?<![\w.?'$\"`)\]])-)?"
#: One left-to-right pass. Every alternative always matches once it starts (unterminated quotes
#: and comments run to the end), so there is no backtracking across tokens. ``%(name)s`` names
#: exclude ``'``, ``?`` and parentheses: a name that is not one must not become one once its
#: literals are replaced or its parentheses folded (fingerprints are idempotent).
_TOKEN = re.compile(
    rf"""
      (?P<space>{_SPACE}+)
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z)|`[^`]*(?:`|\Z))
    | (?P<value>{_SIGN}(?:
          \$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$.*?(?:(?(tag)\$(?P=tag)\$|\$\$)|\Z)
        | (?:\b[NnEeBbXxUu]&?)?'(?:[^'\\]|''|\\.?)*(?:'|\Z)
        | %\([^()\s'?]{{1,128}}\)s | %s | \? | (?<!:):[A-Za-z_]\w* | \$\d+
        | 0[xX][0-9A-Fa-f]+ | \d+(?:\.\d*)?(?:[eE][-+]?\d+)? | \.\d+
        | (?i:TRUE|FALSE)(?![\w$])
      ))
    | (?P<word>[^\W\d][\w$]*)
    """,
    re.VERBOSE | re.DOTALL,
)
_IN_LIST = re.compile(r"\bIN \(\?(?:, \?)+\)", re.IGNORECASE)
_ROW = r"\((?:\?|\w+)(?:, (?:\?|\w+))*\)"
_VALUES_LIST = re.compile(rf"\b(VALUES) ({_ROW})(?:, {_ROW})+", re.IGNORECASE)
_COMMA = re.compile(r" ?, ?")
_OPERATOR = re.compile(r" ?(<=|>=|<>|!=|=|<|>) ?")
# Not after "%" / before "s": folding "%( a)s" or "%(a )s" would make a pyformat placeholder.
_PAREN_OPEN = re.compile(r"(?<!%)\( ")
_PAREN_CLOSE = re.compile(r" \)(?!s)")
_SPACES = re.compile(r"  +")
_MARK = "\x00"
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
_kind_cache: dict[str, str] = {}


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint(sql: str) -> str:
    """Return the shape of ``sql``: literals and placeholders as ``?``, lists collapsed.

    Never raises for any ``str``; the cost of one call is bounded by ``MAX_SQL``. Idempotent:
    ``fingerprint(fingerprint(s)) == fingerprint(s)``. Quoted identifiers are kept verbatim.
    """
    idents: list[str] = []

    def replace(match: re.Match[str]) -> str:
        group = match.lastgroup
        if group == "value":
            return "?"
        if group == "space":
            return " "
        if group == "ident":
            # Held aside so that the folding patterns below never reach inside one.
            idents.append(match.group())
            return _MARK
        return match.group()

    text = _TOKEN.sub(replace, sql[:MAX_SQL]).strip()
    text = _COMMA.sub(", ", text)
    text = _OPERATOR.sub(r" \1 ", text)
    text = _PAREN_CLOSE.sub(")", _PAREN_OPEN.sub("(", text))
    text = _SPACES.sub(" ", text)
    text = _IN_LIST.sub("IN (?)", text)
    text = _VALUES_LIST.sub(r"\1 \2", text)
    text = text.rstrip("; ")
    if idents:
        restore = iter(idents)
        text = re.sub(_MARK, lambda _: next(restore), text)
    return text


def statement_kind(sql: str) -> str:
    """Classify ``sql`` by its first keyword (cached by text; bounded cache).

    Leading comments and parentheses are skipped; ``WITH`` statements take the kind of their
    main statement, or of a data-modifying CTE (PostgreSQL ``WITH d AS (DELETE ...)``).
    """
    kind = _kind_cache.get(sql)
    if kind is not None:
        return kind
    leading = _LEADING.match(sql, 0, 4096)  # always matches, possibly empty
    match = _FIRST_WORD.match(sql, leading.end() if leading else 0)
    word = match.group().upper() if match else ""
    kind = _KINDS.get(word, StatementKind.OTHER)
    if word == "WITH":
        kind = _with_kind(sql)
    if len(_kind_cache) >= _CACHE_SIZE:
        _kind_cache.clear()
    _kind_cache[sql] = kind
    return kind


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
    for match in _WITH_TOKENS.finditer(fingerprint(sql)):
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


def short(sql: str, width: int = 100) -> str:
    """One-line summary of a statement's fingerprint for reports: column lists elided."""
    text = fingerprint(sql)
    match = _SELECT_LIST.match(text)
    if match and "(" not in match.group(2):
        text = f"{match.group(1)}…{match.group(3)}"
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text


@lru_cache(maxsize=1024)
def readable(sql: str) -> str:
    """The fingerprint, reindented by sqlparse for people (paid once per distinct shape)."""
    import sqlparse

    return str(sqlparse.format(fingerprint(sql), reindent=True, keyword_case="upper")).strip()


@lru_cache(maxsize=1024)
def tables(sql: str) -> tuple[str, ...]:
    """Table names a statement reads or writes, in order of appearance (via sqlparse)."""
    import sqlparse
    from sqlparse.sql import Function, Identifier, IdentifierList
    from sqlparse.tokens import DML, Keyword

    found: list[str] = []
    for statement in sqlparse.parse(fingerprint(sql)):
        expect_table = False
        for token in statement.tokens:
            if token.is_whitespace:
                continue
            if token.ttype in Keyword and token.normalized in (
                "FROM",
                "JOIN",
                "INTO",
                "UPDATE",
                "TABLE",
                "INNER JOIN",
                "LEFT OUTER JOIN",
                "LEFT JOIN",
                "RIGHT JOIN",
                "RIGHT OUTER JOIN",
                "FULL OUTER JOIN",
                "CROSS JOIN",
            ):
                expect_table = True
                continue
            if token.ttype in DML and token.normalized == "UPDATE":
                expect_table = True
                continue
            if expect_table:
                items = (
                    token.get_identifiers()  # type: ignore[no-untyped-call]  # sqlparse is untyped
                    if isinstance(token, IdentifierList)
                    else [token]
                )
                for item in items:
                    if isinstance(item, (Identifier, Function)):
                        name = item.get_real_name()  # type: ignore[no-untyped-call]  # untyped
                        if name and name not in found:
                            found.append(name.strip('"`'))
                expect_table = False
    return tuple(found)
