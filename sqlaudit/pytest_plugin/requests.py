"""Each request a test makes through a test client is a unit of its own. No pytest import.

Real web tests make several requests (create, edit, list). Audited as one unit, their
statements looked like a loop: three create requests were "3 commits from one line". So, while
a test is audited, every request through the test clients people use is a nested unit
(``sqlaudit.wsgi`` / ``sqlaudit.asgi`` middleware logic: named after its route, judged on its
own with the test's thresholds, its findings reported by the test, named after the request):

=================================================  ============================================
test client                                        hook (patched on the class or module)
=================================================  ============================================
Flask / Werkzeug ``Client`` (``app.test_client``)  ``werkzeug.test.run_wsgi_app``: the app
Starlette / FastAPI ``TestClient``                 ``_TestClientTransport.handle_request``
httpx ``ASGITransport`` / ``WSGITransport``        ``handle_async_request`` / ``handle_request``
=================================================  ============================================

Each hook wraps the application of one call in the middleware and changes nothing else: with
no audit open (a test that is not audited, any code outside pytest's audits) it calls the
original at once. A request whose application already carries sqlaudit's middleware is then a
unit inside a unit, which changes no finding. The hooks are installed when a test is audited,
for the client modules the test session has imported by then (never importing one), once per
module object: a module imported anew is hooked anew.
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Callable
from typing import Any

from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.capture.scope import current
from sqlaudit.wsgi import WSGIAuditMiddleware

__all__ = ["install"]

#: The module object hooked, by module name. A name is not enough: a module imported again (a
#: test session that ran pytest in-process, as ``pytester`` does, drops the modules the inner run
#: imported) is a new object with the original functions and classes, and must be hooked again.
_installed: dict[str, Any] = {}


def _wsgi(app: Any) -> Any:
    if isinstance(app, WSGIAuditMiddleware) or isinstance(
        getattr(app, "wsgi_app", None),
        WSGIAuditMiddleware,  # Flask's documented wiring
    ):
        return app  # its own middleware makes each request a unit already
    # No reporters, no policy: the test's own audit holds and judges every request.
    return WSGIAuditMiddleware(app, reporters=(), on_finding="ignore")


def _asgi(app: Any) -> Any:
    if isinstance(app, ASGIAuditMiddleware) or any(
        getattr(m, "cls", None) is ASGIAuditMiddleware  # Starlette's add_middleware
        for m in getattr(app, "user_middleware", ())
    ):
        return app
    middleware = ASGIAuditMiddleware(app, reporters=(), on_finding="ignore")
    # Background tasks run after the response: still this request's work for the test.
    middleware._until_return = True
    return middleware


def install() -> None:
    """Hook the test clients whose modules are imported (idempotent, cheap when done)."""
    for name, hook in _HOOKS:
        module = sys.modules.get(name)
        if module is not None and _installed.get(name) is not module:
            _installed[name] = module
            hook(module)


def _hook_werkzeug(module: Any) -> None:
    original = getattr(module, "run_wsgi_app", None)
    if original is None:
        return

    @functools.wraps(original)
    def run_wsgi_app(app: Any, environ: Any, buffered: bool = False) -> Any:
        if current() is None:
            return original(app, environ, buffered=buffered)
        return original(_wsgi(app), environ, buffered=buffered)

    module.run_wsgi_app = run_wsgi_app


def _transport_hook(cls: Any, name: str, wrap: Callable[[Any], Any], is_async: bool) -> None:
    """Patch ``cls.name(self, request)`` to run on a copy of the transport whose ``app`` is
    wrapped (a copy: the same client may serve several threads)."""
    original = getattr(cls, name, None)
    if original is None or not hasattr(cls, "__init__"):
        return

    def audited(transport: Any) -> Any:
        clone = copy.copy(transport)
        clone.app = wrap(transport.app)
        return clone

    if is_async:

        @functools.wraps(original)
        async def handle_async(self: Any, request: Any) -> Any:
            if current() is None or not hasattr(self, "app"):
                return await original(self, request)
            return await original(audited(self), request)

        setattr(cls, name, handle_async)
        return

    @functools.wraps(original)
    def handle(self: Any, request: Any) -> Any:
        if current() is None or not hasattr(self, "app"):
            return original(self, request)
        return original(audited(self), request)

    setattr(cls, name, handle)


def _hook_starlette(module: Any) -> None:
    transport = getattr(module, "_TestClientTransport", None)
    if transport is not None:
        _transport_hook(transport, "handle_request", _asgi, is_async=False)


def _hook_httpx(module: Any) -> None:
    asgi = getattr(module, "ASGITransport", None)
    if asgi is not None:
        _transport_hook(asgi, "handle_async_request", _asgi, is_async=True)
    wsgi = getattr(module, "WSGITransport", None)
    if wsgi is not None:
        _transport_hook(wsgi, "handle_request", _wsgi, is_async=False)


_HOOKS: tuple[tuple[str, Callable[[Any], None]], ...] = (
    ("werkzeug.test", _hook_werkzeug),
    ("starlette.testclient", _hook_starlette),
    ("httpx", _hook_httpx),
)
