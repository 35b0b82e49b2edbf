"""Request names: a path's record ids collapsed (``/users/42`` -> ``/users/{id}``), bounded."""

from __future__ import annotations

import re

__all__ = ["MAX_PATH", "collapse_ids"]

#: Longest path kept in a provisional name: names must stay bounded whatever clients send.
MAX_PATH = 200
# A path segment that identifies a record rather than naming a resource: an integer, a
# dotted/dashed number (dates, versions of records), a UUID, a long hex string (object ids,
# hashes) or a token of 12+ characters mixing letters and digits (ULIDs, URL-safe base64
# ids, reset and invitation tokens: a secret in a path must not reach names and dashboards).
_ID_SEGMENT = re.compile(
    r"\d+(?:[-_.:]\d+)*"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}"
    r"|(?=[A-Za-z_-]*\d)(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{12,}"
    # An e-mail address, or anything not ASCII (route names are written in code; a path's
    # non-ASCII segment is a name or a value the client sent): issue 14.
    r"|[^@]*@.*|.*[^\x00-\x7f].*"
).fullmatch
#: What makes a path worth splitting into segments at all.
_MAY_HOLD_ID = re.compile(r"[\d@]|[^\x00-\x7f]").search


def collapse_ids(path: str) -> str:
    """``/users/42/posts/7f3c...`` -> ``/users/{id}/posts/{id}``; bounded in length.

    Collapsed: numbers, dates, UUIDs, long hex, tokens mixing letters and digits, e-mail
    addresses and non-ASCII segments. Other segments stay (``/users/alice``, slugs, a token
    without digits): name such routes after the framework's route template, or exclude them.
    """
    if len(path) > MAX_PATH:
        path = path[:MAX_PATH] + "..."
    if _MAY_HOLD_ID(path) is None:
        return path
    return "/".join("{id}" if _ID_SEGMENT(part) else part for part in path.split("/"))
