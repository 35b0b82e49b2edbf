"""Locking reads: ``SELECT ... FOR UPDATE`` and its relatives, told from the SQL text.

Capture asks for every SELECT in a scope, so the answer is kept by text (bounded, like the
statement kinds): in a recorded text's entry (``cache.TextFacts``, read by ``capture.hazards``),
else in this module's memo; a repeated statement costs one dict lookup. A text seen for the
first time costs four substring searches (made when its entry is made); only a text that
passes them (it mentions UPDATE or SHARE somewhere) is fingerprinted, so that a literal
(``WHERE note = 'for update'``) or a comment is never taken for a lock clause.

What SQLAlchemy renders for ``with_for_update()``: ``FOR UPDATE`` (``NOWAIT``, ``SKIP
LOCKED``, ``OF ...``), PostgreSQL's ``FOR NO KEY UPDATE`` / ``FOR SHARE`` / ``FOR KEY SHARE``,
MySQL's ``LOCK IN SHARE MODE`` (``read=True``; ``FOR SHARE`` on MySQL 8). SQLite renders
nothing (it has no row locks), so a ``with_for_update()`` there is no locking read.
"""

from __future__ import annotations

import re

from sqlaudit.sql.cache import TEXTS, Memo
from sqlaudit.sql.fingerprint import fingerprint

__all__ = ["is_locking"]

_CACHE_SIZE = 4096
_LOCK = re.compile(
    r"\bFOR (?:NO KEY )?UPDATE\b|\bFOR (?:KEY )?SHARE\b|\bLOCK IN SHARE MODE\b", re.IGNORECASE
)
#: Bounded, and emptied when the last audit ends (``sql.cache``): texts are not kept alive.
_cache: Memo[bool] = Memo(max_entries=_CACHE_SIZE)
#: The entries of recorded texts (``cache.TextFacts``): the answer is kept in a text's entry.
_known = TEXTS.data


def is_locking(sql: str, dialect: str = "") -> bool:
    """True when the SELECT ``sql`` takes row locks (``FOR UPDATE``, ``FOR SHARE``...);
    ``dialect`` names the rules its text is read with (``fingerprint``)."""
    entry = _known.get(sql)
    if entry is not None:
        locking = entry.locking
        if locking is None:
            locking = entry.locking = _locking(sql, dialect)
        return locking
    known = _cache.data.get(sql)
    if known is not None:
        return known
    return _cache.put(sql, _locking(sql, dialect))


def _locking(sql: str, dialect: str) -> bool:
    # The same test as ``fingerprint.facts`` makes when it sets an entry's ``locking``.
    mentions = "PDATE" in sql or "pdate" in sql or "HARE" in sql or "hare" in sql
    return mentions and _LOCK.search(fingerprint(sql, dialect)) is not None
