"""Memos of what sqlaudit derives from statement texts: bounded, and dropped with the last audit.

Compiled statements repeat their text, so a statement's kind, parameter roles, fingerprint and
tables are computed once per distinct text. The keys are the texts themselves: an IN list of
1,500 values, or a statement with inlined literals, is a new text each time, and module-level
dicts kept every one of them after every audit had closed (issue 14, row 4: 100 distinct 1 MB
statements retained 95 MiB, IN lists of 1 to 1,500 values 96 MiB). So:

* each memo is bounded twice while audits are open, in entries (``MAX_ENTRIES``) and in
  characters held (``MAX_CHARS``, keys and values): the oldest half is dropped when either
  bound is reached, and a text over a quarter of the budget is not kept at all;
* when the last open audit ends (``release``), every memo holding more than ``RESIDUAL``
  characters is emptied. A smaller one is kept: a service's few hundred compiled statements,
  which SQLAlchemy's own compiled cache holds anyway, are then not fingerprinted again for
  every request a service handles alone (measured: dropping everything costs ~15 µs per
  distinct statement per request, and ~1 ms per finding for sqlparse's table names).
  ``RESIDUAL = 0`` drops everything.

Reading a closed report later (rendering it) may fill them again, within the same bounds,
until the next audit ends. The hot path reads ``Memo.data`` (a plain dict) directly; writes
take a lock.

What capture derives from a text it records (its kind, parameter roles, whether it locks, its
fingerprint) is one ``TextFacts`` entry of one memo, ``TEXTS``: a new text costs one ``put``, not
one per memo (issue 20). The other memos hold what is asked about texts without an entry, and
the shapes of plain texts' skeletons (``folding``: one per set of texts differing in values).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from itertools import islice
from operator import attrgetter
from typing import Any, Generic, TypeVar

from sqlaudit._internal import fork_safe

__all__ = [
    "ABSENT",
    "MAX_CHARS",
    "MAX_ENTRIES",
    "RESIDUAL",
    "TEXTS",
    "Memo",
    "TextFacts",
    "clear_all",
    "hold",
    "memos",
    "open_owners",
    "release",
]

V = TypeVar("V")

#: Characters a memo holds at most by default (keys and values), and entries.
MAX_CHARS = 4 << 20
MAX_ENTRIES = 4096
#: Characters a memo may keep once no audit is open; a larger one is emptied.
RESIDUAL = 64 * 1024
#: What one entry costs besides its text (dict slot, tuple, small value), in characters.
_ENTRY_COST = 64

_memos: list[Memo[object]] = []
_CHARS = attrgetter("chars")
#: The audits open now, as weak references (keys; a dead one is equal to none but itself and
#: hashes as its referent did). A dict, not a WeakSet: held and released once per unit
#: (issue 20), and a WeakSet's methods are Python code.
_open: dict[weakref.ref[object], None] = {}
_lock = threading.Lock()
fork_safe(sys.modules[__name__], "_lock")


class Memo(Generic[V]):
    """A dict from statement text to a derived value, bounded in entries and characters."""

    __slots__ = ("__weakref__", "_lock", "_measure", "chars", "data", "max_chars", "max_entries")

    def __init__(
        self,
        measure: Callable[[V], int] | None = None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_chars: int = MAX_CHARS,
    ) -> None:
        #: The entries; read it directly on the per-statement path (``data.get(text)``).
        self.data: dict[str, V] = {}
        #: Characters held now (keys, values and a fixed cost per entry).
        self.chars = 0
        self.max_entries = max_entries
        self.max_chars = max_chars
        #: What a value costs in characters (None: nothing but ``_ENTRY_COST``).
        self._measure = measure
        self._lock = threading.Lock()
        fork_safe(self, "_lock")
        _memos.append(self)  # type: ignore[arg-type]  # only cleared, never read through

    def put(self, key: str, value: V) -> V:
        """Remember ``value`` for ``key`` (if it fits the budget); return ``value``."""
        measure = self._measure  # None for most memos: spares a call per new text
        size = (
            len(key) + _ENTRY_COST if measure is None else len(key) + measure(value) + _ENTRY_COST
        )
        if size > self.max_chars // 4:
            return value
        # acquire() and release(), not ``with``: ~100 ns of ~350 per new key on 3.11 (the
        # ``with`` statement looks up and calls the lock's __enter__ and __exit__).
        lock = self._lock
        lock.acquire()
        try:
            data = self.data
            if key not in data:
                chars = self.chars + size
                if chars > self.max_chars or len(data) >= self.max_entries:
                    chars = self._make_room(size)
                data[key] = value
                self.chars = chars
        finally:
            lock.release()
        return value

    def _make_room(self, size: int) -> int:
        """Drop the oldest entries until one of ``size`` fits (the lock held); the characters
        held with it."""
        data = self.data
        while data and (len(data) >= self.max_entries or self.chars + size > self.max_chars):
            self._drop_oldest_half()
        return self.chars + size

    def _drop_oldest_half(self) -> None:
        # In bulk: dropping one entry at a time from the front of a dict is quadratic.
        data = self.data
        measure = self._measure
        for key in list(islice(data, max(1, len(data) // 2))):
            value = data.pop(key)
            self.chars -= len(key) + (0 if measure is None else measure(value)) + _ENTRY_COST

    def clear(self) -> None:
        with self._lock:
            self.data.clear()
            self.chars = 0

    def __len__(self) -> int:
        return len(self.data)


def open_owners() -> list[object]:
    """The audits open now (their reports), e.g. to re-create their locks after a fork."""
    return [owner for owner in (ref() for ref in list(_open)) if owner is not None]


def memos() -> tuple[Memo[object], ...]:
    """Every memo (for measurements and tests)."""
    return tuple(_memos)


def clear_all() -> None:
    """Empty every memo."""
    for memo in _memos:
        memo.clear()


def hold(owner: object) -> None:
    """An audit opened: memos are kept while it is open (``owner`` is held weakly, so an audit
    that is dropped without being closed does not keep them forever)."""
    with _lock:
        _open[weakref.ref(owner, _dropped)] = None


def _dropped(ref: weakref.ref[object]) -> None:
    """An audit was dropped without being released: it holds the memos no more. (Without the
    lock: the garbage collector may call this while this thread holds it; ``dict.pop`` is
    atomic.)"""
    _open.pop(ref, None)


def release(owner: object) -> None:
    """An audit ended: when it was the last one open, empty every memo over ``RESIDUAL``."""
    with _lock:
        _open.pop(weakref.ref(owner), None)
        last = not _open
    # Most ends find every memo small: told in C, not by a loop over them (issue 20).
    if last and max(map(_CHARS, _memos), default=0) > RESIDUAL:
        for memo in _memos:
            if memo.chars > RESIDUAL:
                memo.clear()


class TextFacts:
    """What sqlaudit derives from one statement text, held once (``TEXTS``, issue 20).

    ``kind`` and ``roles`` are set when it is made (``fingerprint.facts``), and ``locking``
    (whether it is a locking read, ``locking.is_locking``) when the text cannot be one; the
    rest is filled in when first asked: ``shape``, the fingerprint when every dialect's rules
    give the same one, else ``lexed``, ``(dialect, fingerprint)``; ``locking``. Each slot is
    written whole, once a value is computed, so threads that race to fill one write equal
    values. ``cost``, the characters charged besides the key, leaves room for a fingerprint as
    long as the text: a longer one is kept in the memos instead (``lexed`` says so).
    """

    __slots__ = ("cost", "kind", "lexed", "locking", "roles", "shape")

    def __init__(
        self,
        kind: str,
        roles: tuple[tuple[Any, str], ...] | None,
        locking: bool | None,
        text: int,
    ) -> None:
        self.kind = kind
        #: ``params.roles``: ``(parameter key, role)`` per placeholder, or None.
        self.roles = roles
        self.locking = locking
        self.shape: str | None = None
        self.lexed: tuple[str, str] | None = None
        self.cost = text if roles is None else text + 16 * len(roles)


#: The ``TextFacts`` of every text capture recorded (bounded as every memo is).
TEXTS: Memo[TextFacts] = Memo(attrgetter("cost"))
#: ``TEXTS.data.get(sql, ABSENT)``: a text without an entry reads as one with nothing known,
#: and a fingerprint kept elsewhere (the memos), so readers need no ``is None`` test first.
#: Never written.
ABSENT = TextFacts("", None, None, 0)
ABSENT.lexed = ("\x00", "")
