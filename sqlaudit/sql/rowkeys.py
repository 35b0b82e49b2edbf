"""Which row a simple statement reads or writes, and how an UPDATE sets its columns.

For ``autocommit_read_modify_write`` capture compares an UPDATE on an autocommit connection
with the SELECT issued just before it on that connection: the same table, the same values
for the UPDATE's ``WHERE col = ?`` keys (compared in the process, never stored), and a
column that the SELECT returned being set to a plain placeholder (``SET col = ?``, an
absolute value) rather than from itself (``SET col = col + ?``, atomic). Only simple shapes
are understood, and anything else is None (never a finding): one table (no JOIN, no
``UPDATE ... FROM``), conditions joined by AND only.

Both shapes are parsed once per distinct SQL text (bounded cache), and only for UPDATEs on
autocommit connections (the SELECT's shape is parsed when such an UPDATE follows it).
Placeholders are keyed as the driver receives them: by position for ``?``, ``%s`` and
``$n``, by name for ``%(name)s`` and ``:name``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from sqlaudit.sql.cache import Memo

__all__ = ["SelectShape", "UpdateShape", "param", "select_shape", "update_shape"]

_CACHE_SIZE = 1024
#: Statements longer than this are not parsed (a bounded cost per distinct text).
MAX_SQL = 8192

_TOKEN = re.compile(
    r"""
      (?P<space>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>'(?:[^']|'')*(?:'|\Z))
    | (?P<name>(?:"(?:[^"]|"")*"|`[^`]*`|[A-Za-z_][\w$]*)
               (?:\s*\.\s*(?:"(?:[^"]|"")*"|`[^`]*`|[A-Za-z_][\w$]*|\*))*)
    | (?P<pyformat>%\((?P<pyname>[^)\s]{1,128})\)s)
    | (?P<format>%s) | (?P<qmark>\?) | (?<!:):(?P<named>[A-Za-z_]\w*) | \$(?P<numeric>\d+)
    | (?P<number>\d+(?:\.\d*)?)
    | (?P<op>::|<=|>=|<>|!=|.)
    """,
    re.VERBOSE | re.DOTALL,
)

Key = Any  # int (position) or str (name)
S = TypeVar("S")


class UpdateShape(NamedTuple):
    #: The table written, unquoted, lower case, without schema.
    table: str
    #: ``(column, placeholder key)`` of each ``SET column = <one placeholder>``.
    absolute: tuple[tuple[str, Key], ...]
    #: ``(column, placeholder key)`` of each ``WHERE column = <placeholder>``.
    keys: tuple[tuple[str, Key], ...]


class SelectShape(NamedTuple):
    table: str
    #: Columns it returns (``("*",)`` for all).
    columns: frozenset[str]
    keys: tuple[tuple[str, Key], ...]


_Token = tuple[str, str, Key]  # (type, upper-case text or column name, placeholder key)


def _tokens(sql: str) -> list[_Token]:
    out: list[_Token] = []
    position = 0
    for match in _TOKEN.finditer(sql):
        group = match.lastgroup
        if group == "space":
            continue
        if group == "name":
            out.append(("name", match.group("name"), None))
        elif group in ("pyformat", "named"):
            name = match.group("pyname") if group == "pyformat" else match.group("named")
            out.append(("param", "", name))
            position += 1
        elif group in ("format", "qmark"):
            out.append(("param", "", position))
            position += 1
        elif group == "numeric":
            out.append(("param", "", int(match.group("numeric")) - 1))
            position += 1
        else:
            out.append((group or "op", match.group(), None))
    return _uncast(out)


def _uncast(tokens: list[_Token]) -> list[_Token]:
    """Without PostgreSQL casts (``%(id_1)s::INTEGER``, ``::NUMERIC(10, 2)``), which psycopg's
    dialect adds after placeholders: the value is the placeholder's."""
    out: list[_Token] = []
    i = 0
    while i < len(tokens):
        if tokens[i][:2] == ("op", "::") and i + 1 < len(tokens) and tokens[i + 1][0] == "name":
            i += 2
            if i < len(tokens) and tokens[i][:2] == ("op", "("):
                while i < len(tokens) and tokens[i][:2] != ("op", ")"):
                    i += 1
                i += 1
            continue
        out.append(tokens[i])
        i += 1
    return out


def _column(name: str) -> str:
    """``"Wallets"."Points"`` / ``wallets.points`` -> ``points``."""
    last = re.split(r"\s*\.\s*", name)[-1]
    return last.strip('"`').replace('""', '"').lower()


def _word(token: _Token) -> str:
    return token[1].upper() if token[0] == "name" else token[1]


def _split(tokens: list[_Token], separator: str) -> list[list[_Token]] | None:
    """``tokens`` split at depth-0 ``separator`` (a keyword or a comma); None if unbalanced."""
    parts: list[list[_Token]] = [[]]
    depth = 0
    for token in tokens:
        text = token[1]
        if token[0] == "op" and text == "(":
            depth += 1
        elif token[0] == "op" and text == ")":
            depth -= 1
            if depth < 0:
                return None
        elif depth == 0 and _word(token) == separator:
            parts.append([])
            continue
        parts[-1].append(token)
    return parts if depth == 0 else None


def _keys(where: list[_Token]) -> tuple[tuple[str, Key], ...] | None:
    """``col = <placeholder>`` conjuncts; None when the condition has a depth-0 OR."""
    conjuncts = _split(where, "AND")
    if conjuncts is None or any(_word(t) == "OR" for c in conjuncts for t in c):
        return None
    keys = []
    for c in conjuncts:
        if len(c) == 3 and c[1][:2] == ("op", "="):
            if c[0][0] == "name" and c[2][0] == "param":
                keys.append((_column(c[0][1]), c[2][2]))
            elif c[2][0] == "name" and c[0][0] == "param":
                keys.append((_column(c[2][1]), c[0][2]))
    return tuple(keys) or None


def _clauses(tokens: list[_Token], names: tuple[str, ...]) -> dict[str, list[_Token]]:
    """Depth-0 clauses keyed by their opening keyword (the first of ``names`` seen)."""
    clauses: dict[str, list[_Token]] = {}
    current: list[_Token] | None = None
    depth = 0
    for token in tokens:
        if token[0] == "op" and token[1] in "()":
            depth += 1 if token[1] == "(" else -1
        word = _word(token)
        if depth == 0 and word in names and word not in clauses:
            current = clauses[word] = []
            continue
        if current is not None:
            current.append(token)
    return clauses


#: Bounded, and emptied when the last audit ends (``sql.cache``): texts are not kept alive.
_update_cache: Memo[UpdateShape | None] = Memo(max_entries=_CACHE_SIZE)
_select_cache: Memo[SelectShape | None] = Memo(max_entries=_CACHE_SIZE)
_UPDATE_CLAUSES = ("UPDATE", "SET", "FROM", "WHERE", "RETURNING", "ORDER", "LIMIT")
_SELECT_CLAUSES = (
    "SELECT", "FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FETCH", "FOR",
    "UNION", "LOCK",
)  # fmt: skip


def _cached(cache: Memo[S | None], sql: str, parse: Callable[[str], S | None]) -> S | None:
    """``parse(sql)``, once per distinct text (bounded memo); None past ``MAX_SQL``."""
    try:
        return cache.data[sql]
    except KeyError:
        pass
    return cache.put(sql, parse(sql) if len(sql) <= MAX_SQL else None)


def update_shape(sql: str) -> UpdateShape | None:
    """The shape of a single-table ``UPDATE t SET ... WHERE k = ? [AND ...]``, else None."""
    return _cached(_update_cache, sql, _parse_update)


def _parse_update(sql: str) -> UpdateShape | None:
    tokens = _tokens(sql)
    if not tokens or _word(tokens[0]) != "UPDATE":
        return None
    clauses = _clauses(tokens, _UPDATE_CLAUSES)
    target = [t for t in clauses.get("UPDATE", []) if _word(t) != "ONLY"]
    if "FROM" in clauses or len(target) != 1 or target[0][0] != "name":
        return None  # UPDATE ... FROM, a join, an alias: not one plain table
    assignments = _split(clauses.get("SET", []), ",")
    keys = _keys(clauses.get("WHERE", []))
    if assignments is None or keys is None:
        return None
    absolute = []
    for assignment in assignments:
        if len(assignment) == 3 and (assignment[0][0], assignment[1][1], assignment[2][0]) == (
            "name",
            "=",
            "param",
        ):
            absolute.append((_column(assignment[0][1]), assignment[2][2]))
    if not absolute:
        return None
    return UpdateShape(_column(target[0][1]), tuple(absolute), keys)


def select_shape(sql: str) -> SelectShape | None:
    """The shape of a single-table ``SELECT cols FROM t WHERE k = ? [AND ...]``, else None."""
    return _cached(_select_cache, sql, _parse_select)


def _parse_select(sql: str) -> SelectShape | None:
    tokens = _tokens(sql)
    if not tokens or _word(tokens[0]) != "SELECT":
        return None
    clauses = _clauses(tokens, _SELECT_CLAUSES)
    if {"GROUP", "HAVING", "UNION"} & clauses.keys():
        return None
    source = clauses.get("FROM", [])
    # One table, optionally aliased (``FROM t``, ``FROM t AS a``, ``FROM t a``).
    if not source or source[0][0] != "name" or any(t[0] != "name" for t in source):
        return None
    if len(source) > 3 or (len(source) == 3 and _word(source[1]) != "AS"):
        return None
    keys = _keys(clauses.get("WHERE", []))
    items = _split(clauses.get("SELECT", []), ",")
    if keys is None or items is None:
        return None
    columns = set()
    for part in items:
        item = part[1:] if part and _word(part[0]) == "DISTINCT" else part
        if len(item) == 1 and item[0][1] == "*":
            columns.add("*")
        elif item and item[0][0] == "name" and (len(item) == 1 or _word(item[1]) == "AS"):
            column = _column(item[0][1])
            columns.add("*" if column == "*" else column)
    if not columns:
        return None
    return SelectShape(_column(source[0][1]), frozenset(columns), keys)


def param(parameters: Any, key: Key) -> tuple[bool, Any]:
    """``(found, value)`` of the placeholder ``key`` in one execute's ``parameters``."""
    try:
        return True, parameters[key]
    except (LookupError, TypeError):
        return False, None
