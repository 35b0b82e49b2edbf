"""Call sites: the application stack behind a statement.

An application frame is one whose file is not part of SQLAlchemy, sqlaudit, the standard
library or an installed package (site-packages), unless ``configure(app_paths=...)`` names the
application's directories, in which case only files under them count. Decisions are cached
per file name, so a walk costs one dict lookup per frame.

The stack of a statement is every application frame from the innermost up to the frame that
opened its unit of work (the ``with sqlaudit.audit()`` line, ``Scope.opener``) or a frame of a
function registered with ``stop_at`` (the test runner's call of the test function, the
middleware's call of the application), at most ``MAX_APP`` frames: two statements are "the
same place in a loop" only when every frame matches, so four calls of one helper from four
lines of a test are four call sites.

Async ORM code runs SQLAlchemy's sync internals in a greenlet whose frames end at
``greenlet_spawn``; when a walk runs off the end of the greenlet's stack it continues in the
parent greenlet, where the application's coroutine is suspended.

Jinja2 templates are application code at their template line: Jinja compiles a template into a
Python module whose globals hold the template (``__jinja_template__``, what Jinja's own
traceback rewriting reads, ``jinja2/debug.py``) and whose ``debug_info`` maps compiled lines to
template lines (``Template.get_corresponding_lineno``).
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Callable
from types import FrameType
from typing import Any

from sqlaudit.model.records import CallSite

__all__ = ["MAX_APP", "MAX_WALK", "capture", "configure", "is_app_file", "offsets", "stop_at"]

#: Frames examined per statement at most (deep framework stacks stop here).
MAX_WALK = 160
#: Application frames kept per statement.
MAX_APP = 32

# The sqlaudit package (this module is in its capture/ subpackage).
_SQLAUDIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Whole path components: a project directory named "my-site-packages-tool" is application code.
_SITE_PACKAGES = f"{os.sep}site-packages{os.sep}"
_DIST_PACKAGES = f"{os.sep}dist-packages{os.sep}"
_app_paths: tuple[str, ...] = ()
_ignore_paths: tuple[str, ...] = ()
_sites: dict[tuple[str, int, str, int], CallSite] = {}
# Functions whose frame ends a walk: ids of their code objects, which _stop_codes keeps alive
# (so an id is never reused while it is in the set), and the files they are in (a walk looks
# for a stop only in those: a str's hash is cached, an id() is a call).
_stops: set[int] = set()
_stop_codes: list[object] = []
_stop_files: set[str] = set()


def _library_prefixes() -> tuple[str, ...]:
    prefixes = {_SQLAUDIT_DIR}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(name)
        if path:
            prefixes.add(os.path.abspath(path) + os.sep)
    try:
        import sqlalchemy

        prefixes.add(os.path.dirname(os.path.abspath(sqlalchemy.__file__)) + os.sep)
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        pass
    return tuple(sorted(prefixes))


_LIBRARY = _library_prefixes()


def _sqlalchemy_dir() -> str:
    try:
        import sqlalchemy

        return os.path.dirname(os.path.abspath(sqlalchemy.__file__)) + os.sep
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return "\0"


_SQLALCHEMY_DIR = _sqlalchemy_dir()


def configure(
    app_paths: tuple[str, ...] | list[str] = (), ignore_paths: tuple[str, ...] | list[str] = ()
) -> None:
    """Set where application code lives (empty: anything not a library) and what to skip."""
    global _app_paths, _ignore_paths
    _app_paths = tuple(os.path.abspath(p) + os.sep for p in app_paths)
    _ignore_paths = tuple(os.path.abspath(p) + os.sep for p in ignore_paths)
    _cache.clear()
    _sites.clear()
    for recent in _all_recent:
        recent.clear()


def stop_at(*functions: Callable[..., Any]) -> None:
    """End every walk at a frame of one of ``functions`` (the frames above it are the test
    runner's or the server's, the same for every statement of a unit)."""
    for function in functions:
        code = getattr(function, "__code__", None)
        if code is not None and id(code) not in _stops:
            _stop_codes.append(code)
            _stops.add(id(code))
            _stop_files.add(code.co_filename)


def is_app_file(filename: str) -> bool:
    """True when ``filename`` is application code by the rules above."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if _ignore_paths and path.startswith(_ignore_paths):
        return False
    if _app_paths:
        return path.startswith(_app_paths)
    if _SITE_PACKAGES in path or _DIST_PACKAGES in path:
        return False
    return not path.startswith(_LIBRARY)


class _Decisions(dict[str, bool]):
    """File name -> ``is_app_file``, decided on the first lookup (``cache[filename]``: one
    subscript per frame on the walk, issue 20); ``.get`` does not decide."""

    def __missing__(self, filename: str) -> bool:
        result = is_app_file(filename)
        if len(self) > 65536:
            self.clear()
        self[filename] = result
        return result


# Keyed by file name, not code object: a str caches its hash, a code object hashes its whole
# contents on every lookup (measured: 0.1-0.5 µs per frame).
_cache: _Decisions = _Decisions()


def capture(
    depth: int = 2, opener: FrameType | None = None, recent: list[int] | None = None
) -> tuple[CallSite, ...]:
    """The application stack above the caller's ``depth``-th frame, innermost first, up to
    ``opener`` (the frame that opened the unit, included) or a ``stop_at`` function.
    ``recent``: the remembered offsets of the caller's own path (``offsets()``).

    Walking ``f_back`` materialises a frame object for every frame visited, which costs each
    SQLAlchemy function a copy of its locals when it returns (~1 µs per frame, measured). The
    number of SQLAlchemy frames between the listener and the application depends only on the
    SQLAlchemy entry point used, so the offsets where the first application frame was found
    are remembered and tried first with one ``sys._getframe`` probe and its ``f_back``
    (materialising two frames): accepted when the frame there is application code and the one
    below it is SQLAlchemy's. Frames above the first application frame are the application's
    own and stay alive across its statements: walking them costs a pointer chase each. Each
    path into ``capture`` (statements, the pool's reset, commits...) remembers its own
    offsets: the application is at a different depth on each, and a probe at another path's
    offset costs two frames for nothing.
    """
    # The remembered offsets first (see above).
    if recent is None:
        recent = _recent
    if _module_at is not None:
        # Python 3.12+: the module of the frame below, read without materialising it.
        for offset in recent:
            name = _module_at(depth + offset)
            if name is None or not name.startswith("sqlalchemy."):
                continue
            try:
                probe = _getframe(depth + offset + 1)
            except ValueError:
                continue
            if _cache[probe.f_code.co_filename]:
                return _collect(probe, None, opener)
    else:
        for offset in recent:
            try:
                below = _getframe(depth + offset)
            except ValueError:
                continue
            above = below.f_back
            if above is None:
                continue
            if _sqlalchemy_files[below.f_code.co_filename] and _cache[above.f_code.co_filename]:
                return _collect(above, None, opener)
    # Walk to the first application frame (into the parent greenlet when the greenlet's own
    # stack ends first); _collect takes the stack from there.
    cache = _cache
    frame: FrameType | None = _getframe(depth)
    crossed = False
    glet: object = None
    for offset in range(MAX_WALK):
        if frame is None:
            glet, frame = _parent_greenlet(glet)
            crossed = True
            if frame is None:
                return ()
        if cache[frame.f_code.co_filename]:
            if not crossed and offset:
                _remember(recent, offset - 1)
            return _collect(frame, glet, opener)
        frame = frame.f_back
    return ()


#: ``sys._getframemodulename`` (Python 3.12+): the ``__module__`` of the function running at a
#: depth of the stack, counted as ``sys._getframe`` counts, without making a frame object of
#: it. Else None.
_module_at: Callable[[int], str | None] | None = getattr(sys, "_getframemodulename", None)
#: Offsets (from capture's start frame to the frame just below the first application frame)
#: that recently held, most recent first: callers without a list of their own share this one.
_recent: list[int] = []
_all_recent: list[list[int]] = [_recent]
_getframe = sys._getframe


class _SQLAlchemyFiles(dict[str, bool]):
    """File name -> whether it is SQLAlchemy's, decided on the first lookup."""

    def __missing__(self, filename: str) -> bool:
        result = self[filename] = os.path.abspath(filename).startswith(_SQLALCHEMY_DIR)
        return result


_sqlalchemy_files = _SQLAlchemyFiles()


def offsets() -> list[int]:
    """A list of remembered offsets of its own, for one path into ``capture`` (its
    ``recent``)."""
    recent: list[int] = []
    _all_recent.append(recent)
    return recent


def _remember(recent: list[int], offset: int) -> None:
    if recent and recent[0] == offset:
        return
    if offset in recent:
        recent.remove(offset)
    recent.insert(0, offset)
    del recent[4:]


def _collect(frame: FrameType, glet: object, opener: FrameType | None) -> tuple[CallSite, ...]:
    """The application frames from ``frame`` (an application frame: both callers checked) up
    to the end of the walk (see ``capture``)."""
    # f_lineno decodes the line table on every access (O(position) in the code object): call
    # sites repeat, so resolve each instruction of a function once.
    code = frame.f_code
    key = (code.co_filename, code.co_firstlineno, code.co_name, frame.f_lasti)
    first = _sites.get(key) or _site(key, frame)
    # Module globals read directly until the loop: most walks end before it.
    if frame is opener:
        return (first,)
    current: FrameType | None = frame.f_back
    if current is opener and current is not None:
        # The unit was opened in the caller of the statement's frame (a ``with audit()`` block
        # around a call of the application's): the loop's one step, without the loop.
        if not _cache[current.f_code.co_filename] or MAX_APP <= 1:
            return (first,)
        code = current.f_code
        key = (code.co_filename, code.co_firstlineno, code.co_name, current.f_lasti)
        return (first, _sites.get(key) or _site(key, current))
    room = MAX_APP - 1  # application frames that may still be kept
    if room <= 0:
        return (first,)
    found = [first]
    sites = _sites
    cache = _cache
    stop_files = _stop_files
    # The loop of earlier versions, its first two frames (the first and the one above) taken
    # out of it: the same frames, the same bound.
    for _ in _REST_OF_WALK:
        if current is None:
            # The top of a greenlet's stack continues in its parent (async code); the top of
            # a thread's stack ends the walk.
            glet, current = _parent_greenlet(glet)
            if current is None:
                break
            continue
        code = current.f_code
        filename = code.co_filename
        if cache[filename]:
            key = (filename, code.co_firstlineno, code.co_name, current.f_lasti)
            found.append(sites.get(key) or _site(key, current))
            room -= 1
            if not room:
                break
        elif filename in stop_files and id(code) in _stops:
            break
        if current is opener:
            break
        current = current.f_back
    return tuple(found)


#: The frames ``_collect`` may visit after the first (made once: ``range()`` per call costs).
_REST_OF_WALK = range(MAX_WALK - 1)


def _site(key: tuple[str, int, str, int], frame: FrameType) -> CallSite:
    code = frame.f_code
    template = frame.f_globals.get("__jinja_template__")
    if template is not None:
        site = _template_site(template, code.co_filename, code.co_name, frame.f_lineno)
    else:
        site = CallSite(code.co_filename, frame.f_lineno, code.co_name)
    if len(_sites) > 65536:
        _sites.clear()
    _sites[key] = site
    return site


def _template_site(template: Any, filename: str, function: str, line: int) -> CallSite:
    """A Jinja2 template frame at its template line; the function is the template's part:
    ``<template>`` (its body), ``block <name>`` or ``macro <name>``."""
    try:
        line = int(template.get_corresponding_lineno(line))
        path = getattr(template, "filename", None) or filename
    except Exception:  # an object under that name that is not a Jinja template
        return CallSite(filename, line, function)
    if function == "root":
        part = "<template>"
    elif function.startswith("block_"):
        part = f"block {function[6:]}"
    elif function.startswith("macro"):
        part = "macro"
    else:
        part = function
    return CallSite(path, line, part)


def _parent_greenlet(glet: object) -> tuple[object, FrameType | None]:
    """The parent of ``glet`` (the current greenlet when None) and its suspended frame."""
    greenlet_module = sys.modules.get("greenlet")
    if greenlet_module is None:
        return None, None
    if glet is None:
        glet = greenlet_module.getcurrent()
    parent = getattr(glet, "parent", None)
    if parent is None:
        return None, None
    return parent, getattr(parent, "gr_frame", None)
