"""``ASGIAuditMiddleware``: audit every HTTP request of an ASGI application (FastAPI, Starlette).

Pure ASGI (ASGI 3); imports no framework. Add it like any ASGI middleware, once the engines
are instrumented::

    sqlaudit.instrument(engine)
    app.add_middleware(ASGIAuditMiddleware, sample_rate=0.1, exclude=["/health"])
    # or: app = ASGIAuditMiddleware(app, ...)

The audit opens when the application is called (the ContextVar is set before awaiting it,
and reset in ``finally``, in the same task, whatever happens: an exception, a cancellation, a
client that disconnected) and closes when the response is complete: just *before* the last
message of the response (the final ``http.response.body``, or the last trailers, or a
``http.response.pathsend``) is passed on, else when the application returns. That is where
OpenTelemetry's ASGI middleware (``opentelemetry-instrumentation-asgi``, used by the FastAPI
and Starlette instrumentations) ends the request's SERVER span: "when the last body chunk is
sent" (its ``otel_send``), before the application returns. Closing first, the reporters find
that span still current and recording, whichever of the two middlewares is outside the other.
Tasks the application starts inherit the audit (asyncio copies the context), so a
``StreamingResponse`` body that queries is counted. What the application does after its
response is complete (Starlette's background tasks) is not part of the request's unit: audit
it as a job (``with sqlaudit.audit("send-welcome-mail"):``). Under the pytest plugin's
test-client hooks (no span to report onto, a test judging each request) it is: the request's
unit closes when the application returns, so three requests' background commits are three
units' work, not one loop of the test's. ``lifespan`` and ``websocket`` scopes pass through
untouched.

Route names: Starlette's router stores the matched route in ``scope["route"]`` and, for
mounts, extends ``scope["root_path"]``, mutating the scope dict it was given (``Router.app``:
``scope["route"] = route; scope.update(child_scope)``); Starlette and FastAPI middlewares pass
that same dict down. Read after routing (at response start and when the application returns),
``root_path`` growth + ``route.path_format`` gives ``/api/users/{user_id}``. A middleware that
copies the scope before routing hides the route; the request is then named after its path with
ids collapsed, as for any other framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import contain
from sqlaudit._validate import check_callable
from sqlaudit.capture.callsite import stop_at
from sqlaudit.capture.scope import CURRENT
from sqlaudit.capture.scope import Scope as CaptureScope
from sqlaudit.web.auditor import RequestAuditor, Unit, collapse_ids
from sqlaudit.web.devpage import HEADERS

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from sqlaudit.model.config import AuditConfig
    from sqlaudit.web.devpage import DevPage
    from sqlaudit.web.options import MiddlewareOptions

__all__ = ["ASGIAuditMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIAuditMiddleware:
    """Audit each HTTP request as one unit of work named ``"{method} {route}"``.

    Takes the same options as :class:`sqlaudit.wsgi.WSGIAuditMiddleware`: ``config`` and the
    keywords of :class:`sqlaudit.web.options.MiddlewareOptions`.

    With ``on_finding="raise"`` (development), ``AuditFailed`` propagates once the application
    returned normally, after the response was sent: test clients raise it, servers log it.
    With ``explain=True`` the plans are asked for after the response, from the request's own
    task (in a greenlet, as SQLAlchemy's asyncio extension runs its sync core), so engines
    with async drivers answer too.
    """

    #: Close the request's unit when the application returns, background tasks included,
    #: instead of with the response's last message (``sqlaudit.pytest_plugin.requests``).
    _until_return = False

    def __init__(
        self,
        app: ASGIApp,
        config: AuditConfig | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        self.app = check_callable("app", app, "an ASGI application (a callable)")
        #: The validated options and the per-request logic shared with the other middleware.
        self.auditor = RequestAuditor(config, **options)
        self.auditor.defer_plans = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auditor = self.auditor
        path: str = scope.get("path") or "/"
        method: str = scope.get("method") or "GET"
        page = auditor.dev_page
        if page is not None and path == page.path:
            auditor.drain()  # requests whose coroutine was collected: on the page too
            await _serve(page, method, send, _query(scope))
            return
        unit = auditor.begin(method, path)
        if unit is None:
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        previous = CURRENT.get()
        send = _watch(unit, auditor, scope, root_path, send, previous, self._until_return)
        token = CURRENT.set(unit.scope)
        failing = True
        closing = False
        try:
            await self.app(scope, receive, send)
            failing = False
        except GeneratorExit:
            closing = True
            raise
        finally:
            if closing:
                # This coroutine is being closed, most often by the garbage collector (a task
                # dropped while pending), which runs that wherever it collects: maybe in
                # another context, maybe where this thread holds a lock of sqlaudit's that
                # finishing takes again. The unit is left to the auditor's next request
                # (``RequestAuditor.defer``); nothing may be awaited any more.
                with suppress(ValueError):  # the token belongs to the task's context
                    CURRENT.reset(token)
                auditor.defer(unit)
            else:
                CURRENT.reset(token)
                _read_route(unit, scope, root_path)
                try:
                    auditor.finish(unit, failing)
                finally:
                    if unit.samples is not None:  # explain=True: plans after the response
                        await auditor.show_deferred(unit)


def _watch(
    unit: Unit,
    auditor: RequestAuditor,
    scope: Scope,
    root_path: str,
    send: Send,
    previous: CaptureScope | None,
    until_return: bool = False,
) -> Send:
    """``send`` that notes the status and route, adds sqlaudit's headers, and closes the audit
    before the response's last message goes on (see the module's docstring), unless
    ``until_return``."""
    trailers = False

    async def watched(message: Message) -> None:
        nonlocal trailers
        kind = message["type"]
        if kind == "http.response.start":
            trailers = message.get("trailers", False) is True
            if auditor.watch_response:
                message = _started(unit, auditor, scope, root_path, message)
        elif not until_return and not unit.finished and _last(kind, message, trailers):
            _read_route(unit, scope, root_path)
            auditor.complete(unit)
            # Statements issued after the response (background tasks) belong to whatever
            # encloses the request, not to its closed unit: where this runs in the
            # middleware's own context (plain responses), stop attributing them to it now;
            # its ``finally`` resets the variable to the same value.
            if CURRENT.get() is unit.scope:
                CURRENT.set(previous)
        await send(message)

    return watched


def _last(kind: str, message: Message, trailers: bool) -> bool:
    """True for the response's last message (ASGI HTTP spec; trailers and pathsend are the
    ``http.response.trailers`` and ``http.response.pathsend`` extensions)."""
    if kind in ("http.response.body", "http.response.zerocopysend"):
        return not trailers and not message.get("more_body", False)
    if kind == "http.response.trailers":
        return not message.get("more_trailers", False)
    return kind == "http.response.pathsend"


def _started(
    unit: Unit, auditor: RequestAuditor, scope: Scope, root_path: str, message: Message
) -> Message:
    try:
        status = message.get("status")
        unit.status = status if isinstance(status, int) else None
        _read_route(unit, scope, root_path)
        extra = auditor.response_headers(unit)
        if not extra:
            return message
        headers = list(message.get("headers") or ())
        headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra)
        return {**message, "headers": headers}
    except Exception as exc:
        contain("middleware: response start", exc, failing=False)
        return message


def _read_route(unit: Unit, scope: Scope, root_path: str) -> None:
    """The route template Starlette's router left in the scope (FastAPI, Starlette >= 1.10),
    with its mount prefix as a template; else the app's router matched again."""
    if unit.route is not None:
        return
    try:
        route = scope.get("route")
        if route is None:
            unit.route = _match_route(scope, root_path)
            return
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if not isinstance(template, str) or not template:
            return
        prefix = scope.get("root_path", "")
        prefix = prefix[len(root_path) :] if prefix.startswith(root_path) else ""
        if prefix:
            # Inside a mount: its template (``/tenants/{tenant}``), not the concrete prefix the
            # root_path holds (a tenant's name would split the route and reach dashboards).
            matched = _match_route(scope, root_path)
            if matched is not None:
                unit.route = matched
                return
        prefix = collapse_ids(prefix.rstrip("/"))
        if hasattr(route, "routes"):
            # A Mount that answered itself (static files, a mounted non-Starlette app): its
            # own path is already the root_path it added.
            unit.route = f"{prefix}/{{path}}"
        else:
            unit.route = prefix + template
    except Exception as exc:
        contain("middleware: reading the route", exc, failing=True)


#: Starlette's ``Match.FULL`` (an enum compared by value: no framework import).
_FULL = 2
#: Mounts followed at most (a router nested deeper is named by its prefix).
_MAX_DEPTH = 8


def _match_route(scope: Scope, root_path: str) -> str | None:
    """The route template of a Starlette app that does not put ``scope["route"]`` (Starlette
    before 1.10, which only sets ``endpoint`` and ``path_params``): the app's router is matched
    again against the request, as Starlette's ``Router.app`` does, from the ``root_path`` the
    middleware saw (mounts extend it). None when there is no router or nothing matches."""
    router = scope.get("router") or getattr(scope.get("app"), "router", None)
    routes = getattr(router, "routes", None)
    if not routes:
        return None
    probe = {**scope, "root_path": root_path}
    prefix = ""
    for _ in range(_MAX_DEPTH):
        for route in routes:
            match, child = route.matches(probe)
            if getattr(match, "value", match) == _FULL:
                break
        else:
            return None
        nested = getattr(route, "routes", None)
        path = getattr(route, "path", "")
        if not nested:
            template = getattr(route, "path_format", None) or path
            return prefix + template if isinstance(template, str) and template else None
        prefix += path.rstrip("/")
        routes = nested
        probe = {**probe, **child}
    return f"{prefix}/{{path}}"


def _query(scope: Scope) -> str:
    """The request's query string (ASGI: bytes, percent-encoded, "latin-1" safe)."""
    raw = scope.get("query_string") or b""
    return raw.decode("latin-1") if isinstance(raw, bytes) else ""


async def _serve(page: DevPage, method: str, send: Send, query: str) -> None:
    if method not in ("GET", "HEAD"):
        headers = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 405, "headers": headers})
        await send({"type": "http.response.body", "body": b"405 Method Not Allowed\n"})
        return
    body = page.render(query)
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS]
    headers.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body if method == "GET" else b""})


# A request's call stacks end where the middleware calls the application.
stop_at(ASGIAuditMiddleware.__call__)
