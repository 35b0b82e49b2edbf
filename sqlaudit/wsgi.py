"""``WSGIAuditMiddleware``: audit every request of a WSGI application (Flask, Django, ...).

Pure WSGI (PEP 3333); imports no framework. Wrap the application once the engines are
instrumented::

    sqlaudit.instrument(engine)
    app.wsgi_app = WSGIAuditMiddleware(app.wsgi_app, AuditConfig.for_production(),
                                       sample_rate=0.1, exclude=["/health"])

Where the audit is open: around the application call and around every ``next()`` of the
response body, so statements issued while a streamed body is produced count, while the
ContextVar is never left set between two calls into the application: a server that iterates
the body elsewhere, or never closes it, cannot leak one request's scope into the next.

When it closes: like OpenTelemetry's WSGI middleware, when the body is exhausted or when the
server calls ``close()`` first (an early end, e.g. a client that disconnected), whichever
comes first. Finishing at exhaustion also covers test clients that never call ``close()``
once the response is read (Flask's ``client.get(...).data`` outside a ``with`` block). A body
that is neither read nor closed (such a response dropped unread) is finished, as an early end,
after it is garbage-collected: its finaliser only queues the unit, which is finished before
the next unit closes (a test's enclosing audit), at the middleware's next request, by
``auditor.drain()`` or at interpreter exit (``RequestAuditor.defer``).

The application's own iterable is closed only when the server closes ours (PEP 3333: "the
close() method of the ... iterable must be called" upon completion, by whoever holds it).
Closing it inside the last ``next()`` made an exception from the application's ``close()``
fail the iteration: a 200 became a 500 (wsgiref, Werkzeug) and a chunked response lost its
end (issue 14, row 7). Its exception now reaches the server from ``close()``, as without the
middleware. Statements its ``close()`` issues count in the unit if the body was closed
before it was exhausted; after exhaustion the unit has ended, and they run in the server's
own context (counted by an enclosing audit, if any).

Route names: Flask exposes its request as ``environ["werkzeug.request"]`` and its matched
``url_rule``, but clears that key when its request context ends, before the body is closed;
the route is therefore read when the application calls ``start_response`` (Werkzeug's
``Request.__init__`` and ``flask.ctx.RequestContext.pop``). Other frameworks get the path with
ids collapsed (``GET /users/{id}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import contain
from sqlaudit._validate import check_callable
from sqlaudit.capture.callsite import stop_at
from sqlaudit.capture.scope import CURRENT
from sqlaudit.web.auditor import RequestAuditor, Unit
from sqlaudit.web.devpage import HEADERS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from typing_extensions import Unpack

    from sqlaudit.model.config import AuditConfig
    from sqlaudit.web.devpage import DevPage
    from sqlaudit.web.options import MiddlewareOptions

__all__ = ["WSGIAuditMiddleware"]

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class WSGIAuditMiddleware:
    """Audit each request as one unit of work named ``"{method} {route}"``.

    ``config`` is the :class:`~sqlaudit.AuditConfig` (default: the ``mode``'s,
    ``AuditConfig.for_production()``, or ``for_development()`` with ``mode="development"``);
    the keyword options (``mode``, ``budgets``, ``sample_rate``, ``exclude``, ``on_finding``,
    ``reporters``, ``detectors``, ``header``, ``server_timing``, ``dev_page``,
    ``dev_page_size``, ``explain``) are described in
    :class:`sqlaudit.web.options.MiddlewareOptions`. Each is validated here: a bad value or an
    unknown keyword raises :class:`~sqlaudit.ConfigError`.

    Headers describe the statements issued before the response started; a streamed body's
    later statements are in the report, not in the header.
    """

    def __init__(
        self,
        app: WSGIApplication,
        config: AuditConfig | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        self.app = check_callable("app", app, "a WSGI application (a callable)")
        #: The validated options and the per-request logic shared with the other middleware.
        self.auditor = RequestAuditor(config, **options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        auditor = self.auditor
        path: str = environ.get("PATH_INFO") or "/"
        method: str = environ.get("REQUEST_METHOD") or "GET"
        page = auditor.dev_page
        if page is not None and path == page.path:
            auditor.drain()  # requests whose body was collected unclosed: on the page too
            return _serve(page, method, start_response, environ.get("QUERY_STRING") or "")
        unit = auditor.begin(method, path)
        if unit is None:
            return self.app(environ, start_response)
        self._opened(unit, environ)
        if unit.sampled or auditor.watch_response:
            start_response = _watch(unit, auditor, environ, start_response)
        token = CURRENT.set(unit.scope)
        try:
            result = self.app(environ, start_response)
        except BaseException as exc:
            CURRENT.reset(token)
            _read_route(unit, environ)
            if unit.route is None:
                _route_from_traceback(unit, exc)
            auditor.finish(unit, failing=True)
            raise
        CURRENT.reset(token)
        _read_route(unit, environ)
        return _AuditedBody(result, unit, auditor, environ)

    def _opened(self, unit: Unit, environ: WSGIEnvironment) -> None:
        """Called with each unit opened, before the application runs (``sqlaudit.flask``)."""


class _AuditedBody:
    """The application's body iterable, audited while iterated and closed (PEP 3333)."""

    __slots__ = (
        "_auditor",
        "_closed",
        "_done",
        "_environ",
        "_iterable",
        "_iterator",
        "_unit",
    )

    def __init__(
        self,
        iterable: Iterable[bytes],
        unit: Unit,
        auditor: RequestAuditor,
        environ: WSGIEnvironment,
    ) -> None:
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._unit = unit
        self._auditor = auditor
        self._environ = environ
        #: The audit has ended (body exhausted, closed, failed or collected).
        self._done = False
        #: The server called ``close()``.
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        token = CURRENT.set(self._unit.scope)
        try:
            if self._iterator is None:
                self._iterator = iter(self._iterable)
            chunk = next(self._iterator)
        except StopIteration:
            CURRENT.reset(token)
            self._end(failing=False)
            raise
        except BaseException:
            CURRENT.reset(token)
            self._end(failing=True)
            raise
        CURRENT.reset(token)
        return chunk

    def close(self) -> None:
        """Close the application's iterable, then the audit if it is still open (idempotent).

        A ``close()`` before the body was exhausted (the client went away, or did not read
        the body) closes and reports the audit with the statements issued so far; with
        ``on_finding="raise"`` it raises AuditFailed to the server, which logs it. An
        exception from the application's ``close()`` reaches the server unchanged.
        """
        if self._closed:
            return
        self._closed = True
        close = getattr(self._iterable, "close", None)
        if close is not None:
            if self._done:
                close()  # the unit has ended: in the server's own context
            else:
                token = CURRENT.set(self._unit.scope)
                try:
                    close()
                except BaseException:
                    CURRENT.reset(token)
                    self._end(failing=True)
                    raise
                CURRENT.reset(token)
        self._end(failing=False)

    def __del__(self) -> None:
        # Safety net for a body that is neither exhausted nor closed: a server breaking PEP
        # 3333, or a test client whose response was never read nor closed. The audit then
        # ends as an early end (reported, never raised), not here: the collector runs this at
        # any allocation, also where this thread holds a lock that finishing takes again (a
        # memo's, the statement log's), and would wait for itself for ever. The unit is
        # queued, and finished by the auditor's next request or at exit (``defer``). The
        # application's own iterable is left to its own finaliser.
        if not self._done:
            self._done = True
            self._auditor.defer(self._unit)

    def _end(self, failing: bool) -> None:
        if self._done:
            return
        self._done = True
        _read_route(self._unit, self._environ)
        self._auditor.finish(self._unit, failing)


def _watch(
    unit: Unit, auditor: RequestAuditor, environ: WSGIEnvironment, start_response: StartResponse
) -> StartResponse:
    """``start_response`` that notes the status and route and adds sqlaudit's headers."""

    def watched(
        status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Any:
        try:
            _read_route(unit, environ)
            unit.status = int(status.split(" ", 1)[0])
            extra = auditor.response_headers(unit)
            if extra:
                headers = [*headers, *extra]
        except Exception as exc:
            contain("middleware: start_response", exc, failing=False)
        return start_response(status, headers, exc_info)

    return watched


def _read_route(unit: Unit, environ: WSGIEnvironment) -> None:
    """Flask's matched rule (``request.url_rule.rule``), while Flask still exposes it."""
    if unit.route is not None:
        return
    try:
        request = environ.get("werkzeug.request")
        rule = getattr(getattr(request, "url_rule", None), "rule", None)
        if isinstance(rule, str) and rule:
            unit.route = rule
    except Exception as exc:
        contain("middleware: reading the route", exc, failing=True)


def _route_from_traceback(unit: Unit, exc: BaseException) -> None:
    """Flask's matched rule for a request whose exception propagates (``PROPAGATE_EXCEPTIONS``):
    Flask has already ended its request context, which clears ``environ["werkzeug.request"]``,
    but its ``wsgi_app`` frame in the traceback still holds the context (``ctx``)."""
    try:
        tb = exc.__traceback__
        for _ in range(8):  # wsgi_app is within the first frames below this middleware
            if tb is None:
                return
            frame = tb.tb_frame
            if frame.f_code.co_name == "wsgi_app":
                request = getattr(frame.f_locals.get("ctx"), "request", None)
                rule = getattr(getattr(request, "url_rule", None), "rule", None)
                if isinstance(rule, str) and rule:
                    unit.route = rule
                return
            tb = tb.tb_next
    except Exception as error:
        contain("middleware: reading the route", error, failing=True)


def _serve(page: DevPage, method: str, start_response: StartResponse, query: str) -> list[bytes]:
    if method not in ("GET", "HEAD"):
        start_response(
            "405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")]
        )
        return [b"405 Method Not Allowed\n"]
    body = page.render(query)
    start_response("200 OK", [*HEADERS, ("Content-Length", str(len(body)))])
    return [body] if method == "GET" else []


# A request's call stacks end where the middleware calls the application (or its body).
stop_at(WSGIAuditMiddleware.__call__, _AuditedBody.__next__, _AuditedBody._end)
