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

from sqlaudit._records import StatementKind

__all__ = ["fingerprint", "readable", "short", "statement_kind", "tables"]

#: Statements longer than this are fingerprinted on their first MAX_SQL characters only, so
#: one pathological statement cannot cost more than a bounded regex pass.
MAX_SQL = 64 * 1024
_CACHE_SIZE = 4096

_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$.*?(?:\$(?P=tag)?\$|\Z))
    | (?P<string>(?:\b[NnEeBbXxUu]&?)?'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z)|`[^`]*(?:`|\Z))
    | (?P<param>%\([^)\s]{1,128}\)s|%s|\?|(?<!:):[A-Za-z_][A-Za-z_0-9]*|\$\d+)
    | (?P<number>(?<![\w.])-?(?:0[xX][0-9A-Fa-f]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+)(?![\w.]))
    | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
    | (?P<space>\s+)
    """,
    re.VERBOSE | re.DOTALL,
)
_LITERAL_WORDS = frozenset({"TRUE", "FALSE"})
_IN_LIST = re.compile(r"\bIN \(\?(?:, \?)+\)", re.IGNORECASE)
_ROW = r"\((?:\?|\w+)(?:, (?:\?|\w+))*\)"
_VALUES_LIST = re.compile(rf"\b(VALUES) ({_ROW})(?:, {_ROW})+", re.IGNORECASE)
_COMMA = re.compile(r" ?, ?")
_OPERATOR = re.compile(r" ?(<=|>=|<>|!=|=|<|>) ?")
_PAREN_OPEN = re.compile(r"\( ")
_PAREN_CLOSE = re.compile(r" \)")
_FIRST_WORDS = re.compile(r"[A-Za-z]+")

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


def _replace(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group == "word":
        word = match.group()
        return "?" if word.upper() in _LITERAL_WORDS else word
    if group == "ident":
        return match.group()
    if group in ("space", "comment"):
        return " "
    return "?"


@lru_cache(maxsize=_CACHE_SIZE)
def fingerprint(sql: str) -> str:
    """Return the shape of ``sql``: literals and placeholders as ``?``, lists collapsed.

    Never raises for any ``str``; the cost of one call is bounded by ``MAX_SQL``.
    """
    text = _TOKEN.sub(_replace, sql[:MAX_SQL]).strip()
    text = _COMMA.sub(", ", text)
    text = _OPERATOR.sub(r" \1 ", text)
    text = _PAREN_CLOSE.sub(")", _PAREN_OPEN.sub("(", text))
    text = _IN_LIST.sub("IN (?)", text)
    text = _VALUES_LIST.sub(r"\1 \2", text)
    if text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def statement_kind(sql: str) -> str:
    """Classify ``sql`` by its first keyword (cached by text; bounded cache)."""
    kind = _kind_cache.get(sql)
    if kind is not None:
        return kind
    head = sql[:256].lstrip(" \t\r\n(")
    if head.startswith(("/*", "--", "#")):
        head = _TOKEN.sub(_replace, sql[:4096]).lstrip(" (")
    match = _FIRST_WORDS.match(head)
    kind = _KINDS.get(match.group().upper(), StatementKind.OTHER) if match else StatementKind.OTHER
    if kind == StatementKind.SELECT and head[:4].upper() == "WITH":
        kind = _with_kind(sql)
    if len(_kind_cache) >= _CACHE_SIZE:
        _kind_cache.clear()
    _kind_cache[sql] = kind
    return kind


def _with_kind(sql: str) -> str:
    """A ``WITH`` statement is a write when its main statement is (last top-level verb)."""
    words = [w.upper() for w in _FIRST_WORDS.findall(fingerprint(sql))]
    for word in reversed(words):
        if word in ("INSERT", "UPDATE", "DELETE"):
            return _KINDS[word]
    return StatementKind.SELECT


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
