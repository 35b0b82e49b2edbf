"""Call sites: the first application frames behind a statement.

An application frame is one whose file is not part of SQLAlchemy, sqlaudit, the standard
library or an installed package (site-packages), unless ``configure(app_paths=...)`` names the
application's directories, in which case only files under them count. Decisions are cached
per code object, so a walk costs one dict lookup per frame.

Async ORM code runs SQLAlchemy's sync internals in a greenlet whose frames end at
``greenlet_spawn``; when a walk runs off the end of the greenlet's stack it continues in the
parent greenlet, where the application's coroutine is suspended.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from types import FrameType

from sqlaudit.model.records import CallSite

__all__ = ["capture", "configure", "is_app_file"]

#: Frames examined per statement at most (deep framework stacks stop here).
MAX_WALK = 96
#: Application frames kept per statement.
DEPTH = 2
#: Frames examined above the first application frame for its caller.
NEAR = 4

# The sqlaudit package (this module is in its capture/ subpackage).
_SQLAUDIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Whole path components: a project directory named "my-site-packages-tool" is application code.
_SITE_PACKAGES = f"{os.sep}site-packages{os.sep}"
_DIST_PACKAGES = f"{os.sep}dist-packages{os.sep}"
_app_paths: tuple[str, ...] = ()
_ignore_paths: tuple[str, ...] = ()
# Keyed by file name, not code object: a str caches its hash, a code object hashes its whole
# contents on every lookup (measured: 0.1-0.5 µs per frame).
_cache: dict[str, bool] = {}
_sites: dict[tuple[str, int, str, int], CallSite] = {}


def _site(key: tuple[str, int, str, int], frame: FrameType) -> CallSite:
    code = frame.f_code
    site = CallSite(code.co_filename, frame.f_lineno, code.co_name)
    if len(_sites) > 65536:
        _sites.clear()
    _sites[key] = site
    return site


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
    _recent.clear()
    _frames.clear()


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


def _is_app(filename: str) -> bool:
    result = _cache.get(filename)
    if result is None:
        result = is_app_file(filename)
        if len(_cache) > 65536:
            _cache.clear()
        _cache[filename] = result
    return result


def capture(depth: int = 2) -> tuple[CallSite, ...]:
    """The first ``DEPTH`` application frames above the caller's ``depth``-th frame.

    Callers of the first application frame are looked for only ``NEAR`` frames further up:
    a framework's deep stack above the view is not walked for every statement.

    Walking ``f_back`` materialises a frame object for every frame visited, which costs each
    SQLAlchemy function a copy of its locals when it returns (~1 µs per frame, measured). The
    number of SQLAlchemy frames between the listener and the application depends only on the
    SQLAlchemy entry point used, so the offsets where the first application frame was found
    are remembered and tried first with two ``sys._getframe`` probes (materialising two
    frames): accepted when the frame there is application code and the one below it is
    SQLAlchemy's.
    """
    known = _probe(depth + 1)
    if known is not None:
        return known
    # Walk to the first application frame (into the parent greenlet when the greenlet's own
    # stack ends first); _collect takes the stack from there.
    frame: FrameType | None = sys._getframe(depth)
    cache = _cache
    crossed = False
    glet: object = None
    for offset in range(MAX_WALK):
        if frame is None:
            glet, frame = _parent_greenlet(glet)
            crossed = True
            if frame is None:
                return ()
        filename = frame.f_code.co_filename
        app = cache.get(filename)
        if app is None:
            app = _is_app(filename)
        if app:
            if not crossed and offset:
                _remember(offset - 1)
            return _collect(frame)
        frame = frame.f_back
    return ()


def _probe(depth: int) -> tuple[CallSite, ...] | None:
    """The stack found at a remembered offset (see ``capture``), or None."""
    for offset in _recent:
        try:
            probe = sys._getframe(depth + offset + 1)
        except ValueError:
            continue
        # A loop issuing statements from one line runs in one frame object: its stack is
        # remembered by the frame's id and checked against its code, instruction and caller.
        entry = _frames.get(id(probe))
        if entry is not None and entry[0] is probe.f_code and entry[1] == probe.f_lasti:
            back = probe.f_back
            if back is None:
                if entry[2] is None:
                    return entry[4]
            elif entry[2] is back.f_code and entry[3] == back.f_lasti and entry[5] == id(back):
                return entry[4]
        try:
            below = sys._getframe(depth + offset).f_code.co_filename
        except ValueError:
            continue
        filename = probe.f_code.co_filename
        if _is_sqlalchemy(below) and _cache.get(filename, False):
            found = _collect(probe)
            _remember_frame(probe, found)
            return found
    return None


#: First application frames seen lately, by id: (code, instruction offset, the calling
#: frame's code and instruction offset, the stack found, the calling frame's id). Ids only:
#: holding frames would keep the application's locals alive; a reused id is caught by the
#: code/instruction checks of the frame and of its caller.
_frames: dict[int, tuple[object, int, object, int, tuple[CallSite, ...], int]] = {}


def _remember_frame(frame: FrameType, found: tuple[CallSite, ...]) -> None:
    if len(_frames) >= 1024:
        _frames.clear()
    back = frame.f_back
    if back is None:
        _frames[id(frame)] = (frame.f_code, frame.f_lasti, None, -1, found, 0)
    else:
        entry = (frame.f_code, frame.f_lasti, back.f_code, back.f_lasti, found, id(back))
        _frames[id(frame)] = entry


#: Offsets (from capture's start frame to the frame just below the first application frame)
#: that recently held, most recent first.
_recent: list[int] = []
_sqlalchemy_files: dict[str, bool] = {}


def _is_sqlalchemy(filename: str) -> bool:
    result = _sqlalchemy_files.get(filename)
    if result is None:
        result = os.path.abspath(filename).startswith(_SQLALCHEMY_DIR)
        _sqlalchemy_files[filename] = result
    return result


def _remember(offset: int) -> None:
    recent = _recent
    if recent and recent[0] == offset:
        return
    if offset in recent:
        recent.remove(offset)
    recent.insert(0, offset)
    del recent[4:]


def _collect(frame: FrameType) -> tuple[CallSite, ...]:
    """The first ``DEPTH`` application frames from ``frame`` (an application frame) up,
    looking ``NEAR`` frames past it at most."""
    found: list[CallSite] = []
    limit = NEAR + 1
    current: FrameType | None = frame
    while current is not None and limit:
        code = current.f_code
        filename = code.co_filename
        app = _cache.get(filename)
        if app is None:
            app = _is_app(filename)
        if app:
            # f_lineno decodes the line table on every access (O(position) in the code
            # object): call sites repeat, so resolve each instruction of a function once.
            key = (filename, code.co_firstlineno, code.co_name, current.f_lasti)
            site = _sites.get(key)
            if site is None:
                site = _site(key, current)
            found.append(site)
            if len(found) >= DEPTH:
                break
        current = current.f_back
        limit -= 1
    return tuple(found)


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
