"""``sqlaudit.flask``: audit every request of a Flask application, inside its request span.

Flask's OpenTelemetry instrumentation (``opentelemetry-instrumentation-flask``) opens the
request's SERVER span in a ``before_request`` hook and ends it in a ``teardown_request`` hook
(``_wrapped_before_request`` / ``_wrapped_teardown_request``), both inside ``app.wsgi_app``: no
WSGI middleware wrapped around ``app.wsgi_app`` can report while that span is open. This
integration closes the request's audit in a ``teardown_request`` hook of its own instead, which
Flask runs before FlaskInstrumentor's when it was registered after it (Flask runs teardown
functions in reverse order of registration, ``Flask.do_teardown_request``)::

    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    import sqlaudit.flask
    from sqlaudit.otel import OTelReporter

    FlaskInstrumentor().instrument_app(app)                     # first
    sqlaudit.flask.init_app(app, reporters=[OTelReporter()])    # then sqlaudit

The audit opens around ``app.wsgi_app`` (so ``before_request`` hooks that query are counted)
and closes in that teardown hook, or when the response body is done if the hook never ran.
A streamed body (a generator response, e.g. ``stream_with_context``) runs after Flask tore the
request down and FlaskInstrumentor ended its span (Flask 3.1 pushes the request context again
for the generator, ``flask.helpers.stream_with_context``): noted by an ``after_request`` hook,
such a request's audit stays open until the body is done, so that its statements count, and
reports onto a child span of the request's span, in its trace (``sqlaudit.otel`` knows that
span ended first on purpose and does not warn). Files (``send_file``) are not such bodies.
It takes the options of :class:`sqlaudit.wsgi.WSGIAuditMiddleware` (sampling, budgets, exclude,
headers, development page). Imports no framework: it uses only ``app.wsgi_app`` and
``app.teardown_request``, and Werkzeug's request in the WSGI environ.

What the unit does not see: Flask runs ``teardown_appcontext`` after ``teardown_request``, and
that is where Flask-SQLAlchemy (and most applications) end their session, after the request's
span ended. A transaction still open when the unit closes is therefore the session waiting for
that teardown, not a leak: the integration audits with ``open_transactions=False`` (as the
pytest plugin does for test bodies, whose fixtures close sessions after them), and writes left
uncommitted until then are not reported as discarded. ``WSGIAuditMiddleware`` sees them, but
reports after FlaskInstrumentor's span ended.

Wired the other way round (``init_app`` before ``instrument_app``), FlaskInstrumentor's hook ends
the span first; ``sqlaudit.otel`` then says so in a warning on logger ``sqlaudit`` and reports
onto a child of that span, in the request's trace.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlaudit._internal import contain
from sqlaudit.capture.scope import CURRENT
from sqlaudit.model.config import AuditConfig
from sqlaudit.report.entry import mark
from sqlaudit.wsgi import WSGIAuditMiddleware, _read_route

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment
    from typing_extensions import Unpack

    from sqlaudit.capture.scope import Scope
    from sqlaudit.web.auditor import Unit
    from sqlaudit.web.options import MiddlewareOptions

__all__ = ["FlaskAuditMiddleware", "init_app"]

#: ``app.extensions`` key of the middleware ``init_app`` installed.
EXTENSION = "sqlaudit.flask"


class FlaskApp(Protocol):
    """What the integration uses of a ``flask.Flask`` application."""

    wsgi_app: WSGIApplication

    def teardown_request(self, f: Callable[[BaseException | None], None]) -> Any: ...

    def after_request(self, f: Callable[[Any], Any]) -> Any: ...


def init_app(
    app: FlaskApp, config: AuditConfig | None = None, **options: Unpack[MiddlewareOptions]
) -> FlaskAuditMiddleware:
    """Audit each request of the Flask ``app``; returns the installed middleware.

    Call it after ``FlaskInstrumentor().instrument_app(app)`` (see the module's docstring).
    ``config`` and ``options`` are those of :class:`~sqlaudit.wsgi.WSGIAuditMiddleware`;
    ``config`` defaults to the ``mode``'s (``AuditConfig.for_production()``) and is used with
    ``open_transactions=False``. Bad options raise ``ConfigError`` before ``app`` is changed.
    """
    middleware = FlaskAuditMiddleware(app.wsgi_app, config, **options)
    app.wsgi_app = middleware
    app.after_request(middleware.after_request)
    app.teardown_request(middleware.teardown)
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        extensions[EXTENSION] = middleware
    return middleware


class _Request:
    """What the hooks need of one request being served."""

    __slots__ = ("environ", "streamed", "unit")

    def __init__(self, unit: Unit, environ: WSGIEnvironment) -> None:
        # Weakly: the entry lives as long as the unit's scope, which the unit holds.
        self.unit = weakref.ref(unit)
        self.environ = environ
        self.streamed = False


class FlaskAuditMiddleware(WSGIAuditMiddleware):
    """``WSGIAuditMiddleware`` whose audit closes in Flask's ``teardown_request`` (its
    :meth:`teardown`, registered by :func:`init_app` with :meth:`after_request`)."""

    def __init__(
        self,
        app: WSGIApplication,
        config: AuditConfig | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        if config is None:
            development = options.get("mode") == "development"
            config = AuditConfig.for_development() if development else AuditConfig.for_production()
        if isinstance(config, AuditConfig):
            config = config.replace(open_transactions=False)
        super().__init__(app, config, **options)
        # The requests being served, by their capture scope (the one current in the hooks).
        # Each entry is removed by the teardown; held weakly in case Flask never ran it.
        self._open: weakref.WeakKeyDictionary[Scope, _Request] = weakref.WeakKeyDictionary()

    def _opened(self, unit: Unit, environ: WSGIEnvironment) -> None:
        self._open[unit.scope] = _Request(unit, environ)

    def after_request(self, response: Any) -> Any:
        """Flask ``after_request`` hook: note a streamed body (see the module's docstring);
        returns ``response`` unchanged."""
        scope = CURRENT.get()
        request = self._open.get(scope) if scope is not None else None
        if request is not None and (
            getattr(response, "is_streamed", False) is True
            and not getattr(response, "direct_passthrough", False)
        ):
            request.streamed = True
        return response

    def teardown(self, exc: BaseException | None) -> None:
        """Flask ``teardown_request`` hook: close the request's audit (never raises).

        ``AuditFailed`` (``on_finding="raise"``) is kept and raised once the response is
        complete, as with the WSGI middleware: raising here would skip the other teardown
        hooks, FlaskInstrumentor's among them.
        """
        scope = CURRENT.get()
        request = self._open.get(scope) if scope is not None else None
        unit = request.unit() if request is not None else None
        if scope is None or request is None or unit is None:
            return  # not a request of this middleware (excluded, or inside a nested audit)
        if request.streamed:
            # The body runs after this teardown: the audit closes when it is done.
            if unit.sampled:
                mark(unit.report, "streamed")
            return
        del self._open[scope]
        _read_route(unit, request.environ)
        failing = exc is not None
        try:
            self.auditor.complete(unit, failing)
        except Exception as error:
            contain("flask: closing the audit in teardown_request", error, failing=failing)
        # Statements of the teardown hooks that run after this one belong to whatever
        # encloses the request; the middleware resets the variable when the call returns.
        CURRENT.set(scope.parent)
