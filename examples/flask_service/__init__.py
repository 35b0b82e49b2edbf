"""A Flask + Flask-SQLAlchemy service audited by ``sqlaudit.flask``, traced by FlaskInstrumentor.

A small live-streaming API with two planted SQL problems (an N+1 on ``GET /streams`` and a
row-by-row write loop on ``POST /streams/<id>/comments``), their fixed counterparts, a streamed
CSV export that queries while the body is sent, and a health check that is never audited.
Every request is one unit of work named after its Flask rule (``GET /streams/<int:stream_id>``);
the findings go to the log and to the request's OpenTelemetry SERVER span, the one
OpenTelemetry's Flask instrumentation makes (``create_app``).

Run it (from the repository root; SQLite in memory unless a URL is given)::

    PYTHONPATH=examples python -m flask_service                    # http://127.0.0.1:8000
    PYTHONPATH=examples python -m flask_service --database-url \\
        mysql+pymysql://root@127.0.0.1:3306/test                  # or postgresql+psycopg://...
    PYTHONPATH=examples python -m flask_service --production        # sampled, no dev page

then open http://127.0.0.1:8000/streams and the development page
http://127.0.0.1:8000/_sqlaudit.
"""

from __future__ import annotations

from flask_service.app import create_app

__all__ = ["create_app"]
