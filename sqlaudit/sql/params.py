"""Parameter signatures: tell a page walk or an IN-list chunk walk from a loop of queries.

The same statement issued from one line three times is a repeated query, unless only its
LIMIT/OFFSET or range bounds change (pagination) or only its IN-list values change, with no
value in two chunks (hand-written chunking). Telling them apart needs to know which bind
values changed, so for statements with a LIMIT, OFFSET, FETCH or IN list (decided once per
distinct SQL text, cached) sqlaudit keeps a *signature*: one salted hash per bind value, in
placeholder order, with each placeholder's role (``in``, ``limit``, ``offset``, ``range``,
``eq``, ``other``). The values themselves are never stored; the salt is random per process.

Hashing a value calls the application's code (its ``__hash__``, and ``__repr__`` for values
that are not hashable), on a statement that has already run: whatever that code raises is
contained here and the value hashes to 0, ``BaseException`` subclasses included (a value
raising one made a successful statement fail, issue 14 row 9), except ``KeyboardInterrupt``
and ``SystemExit``: those ask the process to stop, whoever raised them (a signal handler may
raise ``KeyboardInterrupt`` in whatever code runs), and are never swallowed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlaudit.sql.cache import TEXTS, Memo

__all__ = ["hashes", "roles", "signature", "walk"]

_SALT = os.urandom(16)
_INTERESTING = re.compile(r"\b(LIMIT|OFFSET|FETCH)\b|\bIN\s*\(", re.IGNORECASE)
_PLACEHOLDER = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""  # quoted text: skipped
    r"|%\((?P<pyformat>[^)\s]{1,128})\)s|(?P<format>%s)|(?P<qmark>\?)"
    r"|(?<!:):(?P<named>[A-Za-z_][A-Za-z_0-9]*)|\$(?P<numeric>\d+)"
)
_BEFORE = re.compile(
    r"(?P<kw>LIMIT|OFFSET|FETCH\s+(?:FIRST|NEXT))\s*$|(?P<op><=|>=|<>|!=|<|>|=)\s*$"
    r"|(?P<limit_comma>LIMIT\s+\S+\s*,\s*)$",
    re.IGNORECASE,
)
_IN_OPEN = re.compile(r"\bIN\s*\($", re.IGNORECASE)
_ROLES: Memo[tuple[tuple[Any, str], ...] | None] = Memo(
    lambda found: 0 if found is None else 16 * len(found)
)
_cache = _ROLES.data
#: The entries of recorded texts (``cache.TextFacts``, made by ``fingerprint.facts``).
_known = TEXTS.data


def roles(sql: str) -> tuple[tuple[Any, str], ...] | None:
    """``(parameter key, role)`` per placeholder of ``sql``; None if no signature is needed."""
    entry = _known.get(sql)
    if entry is not None:
        return entry.roles
    cached = _cache.get(sql, False)
    if cached is not False:
        return cached  # type: ignore[return-value]  # the False sentinel was excluded
    return _ROLES.put(sql, _roles(sql))


def _roles(sql: str) -> tuple[tuple[Any, str], ...] | None:
    """``roles``, computed (once per new text: its first test made here, issue 20)."""
    # No signature where ``_INTERESTING`` cannot match: an ASCII text (its upper case is then
    # what the case-insensitive pattern reads) naming none of its words, or ``IN`` without a
    # ``(``. Substring searches cost less than the pattern, which is tried at every position.
    if sql.isascii():
        upper = sql.upper()
        if not (
            "LIMIT" in upper
            or "OFFSET" in upper
            or "FETCH" in upper
            or ("IN" in upper and "(" in sql)
        ):
            return None
    if _INTERESTING.search(sql):
        return tuple(_scan(sql))
    return None


def _scan(sql: str) -> list[tuple[Any, str]]:
    found: list[tuple[Any, str]] = []
    in_list = False
    position = 0
    for match in _PLACEHOLDER.finditer(sql):
        kind = match.lastgroup
        if kind is None:
            continue  # a quoted literal
        before = sql[max(0, match.start() - 40) : match.start()]
        stripped = before.rstrip()
        if in_list and not stripped.endswith(","):
            in_list = False
        if _IN_OPEN.search(stripped):
            in_list = True
        if kind in ("pyformat", "named"):
            key: Any = match.group(kind)
        elif kind == "numeric":
            key = int(match.group(kind)) - 1
        else:
            key = position
        position += 1
        role = "in" if in_list else _role(stripped)
        if role == "limit" and sql[match.end() : match.end() + 8].lstrip().startswith(","):
            role = "offset"  # MySQL "LIMIT offset, count"
        found.append((key, role))
    return found


def _role(before: str) -> str:
    match = _BEFORE.search(before)
    if match is None:
        return "other"
    if match.group("limit_comma"):
        return "limit"  # MySQL "LIMIT offset, count": the count
    keyword = match.group("kw")
    if keyword:
        upper = keyword.upper()
        return "offset" if upper == "OFFSET" else "limit"
    op = match.group("op")
    if op in ("<", ">", "<=", ">="):
        return "range"
    return "eq" if op == "=" else "other"


#: Never contained: they ask the process to stop (see the module's docstring).
_STOP = (KeyboardInterrupt, SystemExit)


def _hash(value: Any) -> int:
    """A salted hash of a bind value; raises nothing but ``_STOP`` (unhashable values, e.g.
    lists or a writable ``memoryview``, hash by their bytes or repr; anything else is 0)."""
    try:
        return hash((_SALT, value))
    except _STOP:
        raise
    except BaseException:  # the application's __hash__: see the docstring
        pass
    try:
        if isinstance(value, (memoryview, bytearray)):
            return hash((_SALT, bytes(value)))
        return hash((_SALT, repr(value)[:256]))
    except _STOP:
        raise
    except BaseException:
        return 0


def signature(sql: str, parameters: Any) -> tuple[int, ...] | None:
    """Salted hashes of the bind values in placeholder order (None if not needed, or if the
    parameters cannot be read: they are the application's objects)."""
    placeholders = roles(sql)
    if not placeholders or parameters is None:
        return None
    return hashes(placeholders, parameters)


def hashes(placeholders: tuple[tuple[Any, str], ...], parameters: Any) -> tuple[int, ...] | None:
    """``signature`` of a text whose ``roles`` are ``placeholders`` (not empty), ``parameters``
    not None."""
    # Fast path (the per-statement path): what drivers get from SQLAlchemy, a dict or a tuple
    # of hashable values; anything else (unhashable values, a key out of range, other
    # containers) takes the general path below, which gives the same hashes.
    salt = _SALT
    try:
        kind = type(parameters)
        if kind is dict:
            get = parameters.get
            return tuple([hash((salt, get(key))) for key, _ in placeholders])
        if kind is tuple or kind is list:
            return tuple([hash((salt, parameters[key])) for key, _ in placeholders])
    except _STOP:
        raise
    except BaseException:  # a value's __hash__ failed: the general path below contains it
        pass
    try:
        return _general(placeholders, parameters)
    except _STOP:
        raise
    except BaseException:  # a Mapping or Sequence of the application's own that fails
        return None


def _general(placeholders: tuple[tuple[Any, str], ...], parameters: Any) -> tuple[int, ...] | None:
    if isinstance(parameters, Mapping):
        return tuple(_hash(parameters.get(key)) for key, _ in placeholders)
    if isinstance(parameters, Sequence) and not isinstance(parameters, (str, bytes)):
        size = len(parameters)
        return tuple(
            _hash(parameters[key]) if isinstance(key, int) and key < size else 0
            for key, _ in placeholders
        )
    return None


def walk(items: Sequence[tuple[str, tuple[int, ...] | None]]) -> str | None:
    """``"pages"``, ``"chunks"`` or None for one statement shape issued several times, from
    each issue's ``(sql, signature)``."""
    parts = []
    for sql, sig in items:
        placeholders = roles(sql)
        if not placeholders or sig is None or len(sig) != len(placeholders):
            return None
        parts.append((placeholders, sig))
    if len(parts) < 2:
        return None
    if _is_chunks(parts):
        return "chunks"
    if len({placeholders for placeholders, _ in parts}) == 1:
        placeholders = parts[0][0]
        sigs = [sig for _, sig in parts]
        varying = [i for i in range(len(placeholders)) if len({s[i] for s in sigs}) > 1]
        kinds = {placeholders[i][1] for i in varying}
        if kinds and kinds <= {"limit", "offset", "range"} and kinds & {"offset", "range"}:
            return "pages"
    return None


def _is_chunks(parts: list[tuple[tuple[tuple[Any, str], ...], tuple[int, ...]]]) -> bool:
    """IN lists of >= 2 values, one size but for one chunk, no value twice, all else equal."""
    others = set()
    chunks = []
    for placeholders, sig in parts:
        pairs = list(zip(placeholders, sig, strict=True))
        others.add(tuple(h for (_, role), h in pairs if role != "in"))
        chunks.append({h for (_, role), h in pairs if role == "in"})
    sizes = [len(chunk) for chunk in chunks]
    if len(others) != 1 or min(sizes) < 1 or max(sizes) < 2:
        return False
    if sum(1 for size in sizes if size != max(sizes)) > 1:
        return False
    seen: set[int] = set()
    for chunk in chunks:
        if seen & chunk:
            return False
        seen |= chunk
    return True
