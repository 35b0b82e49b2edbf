"""unittest-style tests: ``setUp`` / ``tearDown`` are setup, like fixtures. No pytest import.

pytest runs a ``unittest.TestCase`` test by calling the test case inside the test's *call*
phase (``TestCaseFunction.runtest``), so its ``setUp``, ``tearDown`` and cleanups run while the
test's audit is open. Their statements (creating tables, seeding rows) are not the test's:
with ``sqlaudit_scope=call`` (the default) they run unaudited, with ``setup+call`` the
setUp counts and the tearDown does not, with ``all`` everything counts, as for fixtures.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from sqlaudit._audit import unaudited

__all__ = ["setup_outside_the_audit"]

_SETUP = ("setUp", "asyncSetUp")
_TEARDOWN = ("tearDown", "asyncTearDown", "doCleanups")


@contextlib.contextmanager
def setup_outside_the_audit(item: Any, scope: str) -> Iterator[None]:
    """While the block runs, the unittest test case of ``item`` (if it is one) runs the
    methods ``scope`` leaves out of the audit unaudited (instance attributes shadowing the
    class's methods, removed afterwards)."""
    testcase = getattr(item, "_testcase", None)
    names = () if scope == "all" else _TEARDOWN if scope == "setup+call" else _SETUP + _TEARDOWN
    patched = []
    if testcase is not None:
        for name in names:
            method = getattr(testcase, name, None)
            if method is not None and name not in vars(testcase):
                setattr(testcase, name, _unaudited(method))
                patched.append(name)
    try:
        yield
    finally:
        for name in patched:
            with contextlib.suppress(AttributeError):
                delattr(testcase, name)


def _unaudited(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with unaudited():
                return await method(*args, **kwargs)

        return run_async

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with unaudited():
            return method(*args, **kwargs)

    return run
