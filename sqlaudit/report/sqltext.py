"""SQL as people read it on pages and in reports: the whole statement, indented, no values.

Shared by the development page and ``sqlaudit report``. The statement is first reduced to its
fingerprint (``sqlaudit.sql.fingerprint``: literals and every placeholder style as ``?``,
``IN`` lists collapsed), so an inlined literal never reaches a page, then reindented by
sqlparse once per distinct shape (memoised, bounded: sqlparse costs about a millisecond per
statement). Keyword case is left as it is: sqlparse would upper-case column names that are
also keywords (``body``, ``name``, ``value``).
"""

from __future__ import annotations

from sqlaudit.sql.cache import Memo
from sqlaudit.sql.fingerprint import MAX_PARSE, fingerprint

__all__ = ["format_sql"]

_FORMATTED: Memo[str] = Memo(len, max_entries=1024)


def format_sql(sql: str, dialect: str = "") -> str:
    """``sql`` with placeholders only, never values, indented one clause per line.

    ``dialect`` (``QueryRecord.dialect``) tells quoted identifiers from literals: without it
    every dialect's quoting applies at once, so a PostgreSQL ``"order"`` or a MySQL
    ```order``` reads as a literal and shows as ``?``. Falls back to the unindented
    fingerprint when sqlparse is missing, fails, or the statement is too long to parse
    (``MAX_PARSE``); never raises for any ``str``.
    """
    try:
        shape = fingerprint(sql, dialect)
    except Exception:  # fingerprint() guards itself: this is the last line of defence
        return sql if not sql else "(statement not shown: it could not be normalised)"
    found = _FORMATTED.data.get(shape)
    if found is None:
        found = shape
        if len(shape) <= MAX_PARSE:
            try:
                import sqlparse

                found = str(sqlparse.format(shape, reindent=True)).strip() or shape
            except Exception:  # a third-party parser on any text: then the flat fingerprint
                found = shape
        found = _FORMATTED.put(shape, found)
    return found
