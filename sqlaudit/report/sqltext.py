"""SQL as people read it on pages and in reports: the whole statement, indented, no values.

Shared by the development page and ``sqlaudit report``. The statement is first reduced to its
fingerprint (``sqlaudit.sql.fingerprint``: literals and every placeholder style as ``?``,
``IN`` lists collapsed), so an inlined literal never reaches a page, then reindented by
sqlparse once per distinct shape (memoised: sqlparse costs about a millisecond per statement).
"""

from __future__ import annotations

from sqlaudit.sql.fingerprint import readable

__all__ = ["format_sql"]


def format_sql(sql: str) -> str:
    """``sql`` with placeholders only, never values, indented one clause per line.

    Falls back to the unindented fingerprint when sqlparse is missing, fails, or the statement
    is too long to parse; never raises for any ``str``.
    """
    try:
        return readable(sql)
    except Exception:  # readable() already guards sqlparse: this is the last line of defence
        return sql if not sql else "(statement not shown: it could not be normalised)"
