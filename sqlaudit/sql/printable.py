"""Text that reaches logs, terminals, spans and pages: one line, nothing hidden.

Line breaks and other control characters (C0, DEL, C1, the Unicode line and paragraph
separators, bidirectional overrides) can forge a log line or hide text in a terminal. A unit's
name may come from a request's path (``GET /a%0AWARNING ...``, issue 14 row 11), so names are
written with those characters escaped; fingerprints read them as whitespace.
"""

from __future__ import annotations

import re

__all__ = ["UNPRINTABLE", "printable"]

UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\u202e``)."""
    if UNPRINTABLE.search(text) is None:
        return text
    return UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
