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
and closes in that teardown hook, or when the response body is done if the hook never ran;
a ``stream_with_context`` body is counted, since Flask tears the request down when it ends.
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


def init_app(
    app: FlaskApp, config: AuditConfig | None = None, **options: Unpack[MiddlewareOptions]
) -> FlaskAuditMiddleware:
    """Audit each request of the Flask ``app``; returns the installed middleware.

    Call it after ``FlaskInstrumentor().instrument_app(app)`` (see the module's docstring).
    ``config`` and ``options`` are those of :class:`~sqlaudit.wsgi.WSGIAuditMiddleware`;
    ``config`` defaults to ``AuditConfig.for_production()`` and is used with
    ``open_transactions=False``. Bad options raise ``ConfigError`` before ``app`` is changed.
    """
    middleware = FlaskAuditMiddleware(app.wsgi_app, config, **options)
    app.wsgi_app = middleware
    app.teardown_request(middleware.teardown)
    extensions = getattr(app, "extensions", None)
    if isinstance(extensions, dict):
        extensions[EXTENSION] = middleware
    return middleware


class FlaskAuditMiddleware(WSGIAuditMiddleware):
    """``WSGIAuditMiddleware`` whose audit closes in Flask's ``teardown_request`` (its
    :meth:`teardown`, registered by :func:`init_app`)."""

    def __init__(
        self,
        app: WSGIApplication,
        config: AuditConfig | None = None,
        **options: Unpack[MiddlewareOptions],
    ) -> None:
        if config is None:
            config = AuditConfig.for_production()
        if isinstance(config, AuditConfig):
            config = config.replace(open_transactions=False)
        super().__init__(app, config, **options)
        # The requests being served, by their capture scope (the one current in the hook).
        # Each entry is removed by the teardown; held weakly in case Flask never ran it.
        self._open: weakref.WeakKeyDictionary[
            Scope, tuple[weakref.ref[Unit], WSGIEnvironment]
        ] = weakref.WeakKeyDictionary()

    def _opened(self, unit: Unit, environ: WSGIEnvironment) -> None:
        self._open[unit.scope] = (weakref.ref(unit), environ)

    def teardown(self, exc: BaseException | None) -> None:
        """Flask ``teardown_request`` hook: close the request's audit (never raises).

        ``AuditFailed`` (``on_finding="raise"``) is kept and raised once the response is
        complete, as with the WSGI middleware: raising here would skip the other teardown
        hooks, FlaskInstrumentor's among them.
        """
        scope = CURRENT.get()
        if scope is None:
            return
        entry = self._open.pop(scope, None)
        unit = entry[0]() if entry is not None else None
        if entry is None or unit is None:
            return  # not a request of this middleware (excluded, or inside a nested audit)
        _read_route(unit, entry[1])
        failing = exc is not None
        try:
            self.auditor.complete(unit, failing)
        except Exception as error:
            contain("flask: closing the audit in teardown_request", error, failing=failing)
        # Statements of the teardown hooks that run after this one belong to whatever
        # encloses the request; the middleware resets the variable when the call returns.
        CURRENT.set(scope.parent)
