"""Helpers for the transaction detectors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, TransactionRecord, UnitRecord


def own_transactions(unit: UnitRecord, kind: str) -> Iterator[TransactionRecord]:
    """Transactions the audited code began itself, not suppressed for ``kind``."""
    for tx in unit.own_transactions:
        if not tx.external and kind not in tx.suppressed:
            yield tx


def first(stack: tuple[CallSite, ...]) -> CallSite | None:
    return stack[0] if stack else None


def unit_of(tx: TransactionRecord) -> str:
    """How the code opened the transaction, for messages."""
    return "one Session transaction" if tx.source == "orm" else "one connection checkout"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def where(site: CallSite | None) -> str:
    """``file:line`` for messages, the file relative to the working directory when inside it."""
    if site is None:
        return "(unknown line)"
    return f"{_shown(site.file, os.getcwd())}:{site.line}"


@lru_cache(maxsize=4096)
def _shown(file: str, cwd: str) -> str:
    # Cached per (file, working directory), as ``model.paths.relative``: findings name a few
    # files over and over, and ``relpath`` walks both paths (issue 20). The working directory
    # is part of the key, so a process that changes it stays right.
    try:
        rel = os.path.relpath(file, cwd)
    except ValueError:  # another drive on Windows
        return file
    return rel if not rel.startswith("..") else file
