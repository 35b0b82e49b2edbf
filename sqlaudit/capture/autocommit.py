"""Whether a DBAPI connection autocommits, read without a round trip (DESIGN "Transactions":
autocommit is detected, not guessed, and never with ``get_isolation_level()``).

``dialect.detect_autocommit_setting()`` (SQLAlchemy >= 2.0.43), else the driver's own flag
(``get_autocommit()``, ``autocommit``, sqlite3's ``isolation_level is None``), else the
``isolation_level`` execution option. Asked once per transaction: at its first write
(``transactions``) or first locking read (``hazards``), and when an ORM session begins one
(``identity``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import Dialect

__all__ = ["dbapi_of", "detect_autocommit"]


def detect_autocommit(dialect: Dialect, dbapi: Any, options: Mapping[str, Any]) -> bool | None:
    """Whether the DBAPI connection is in autocommit mode, without a round trip."""
    if dbapi is not None:
        # Dialect.detect_autocommit_setting exists from SQLAlchemy 2.0.43 on: feature-detect.
        detect = getattr(dialect, "detect_autocommit_setting", None)
        if detect is not None:
            try:
                return bool(detect(dbapi))
            except (NotImplementedError, AttributeError):
                pass
        getter = getattr(dbapi, "get_autocommit", None)
        if callable(getter):
            return bool(getter())
        flag = getattr(dbapi, "autocommit", None)
        if isinstance(flag, bool):
            return flag
        if type(dbapi).__module__.startswith("sqlite3"):
            return getattr(dbapi, "isolation_level", "") is None
    level = options.get("isolation_level")
    if level is None:
        level = getattr(dialect, "_on_connect_isolation_level", None)
    return None if level is None else level == "AUTOCOMMIT"


def dbapi_of(conn: Any) -> Any:
    """The DBAPI connection behind a SQLAlchemy ``Connection``, or None."""
    try:
        return conn.connection.dbapi_connection
    except Exception:  # closed or invalidated: autocommit then comes from the options
        return None
