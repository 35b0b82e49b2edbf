"""A FastAPI + async SQLAlchemy service audited by ``sqlaudit.asgi.ASGIAuditMiddleware``,
traced by ``FastAPIInstrumentor``.

The same small live-streaming API as ``examples/flask_service``, written async: an N+1 planted
on ``GET /streams`` (each card awaits its streamer's lazy load), a row-by-row write loop on
``POST /streams/{stream_id}/comments``, their fixed counterparts, a ``StreamingResponse``
export that queries while the body is sent, and a health check that is never audited. Every
request is one unit of work named after its route template (``GET /streams/{stream_id}``);
the findings go to the log and to the request's OpenTelemetry SERVER span, the one
OpenTelemetry's FastAPI instrumentation makes (``create_app``).

Run it (from the repository root; SQLite in memory unless a URL is given)::

    PYTHONPATH=examples python -m fastapi_service                   # http://127.0.0.1:8001
    PYTHONPATH=examples python -m fastapi_service --database-url \\
        postgresql+psycopg://postgres@127.0.0.1:5432/test          # psycopg 3, async
    PYTHONPATH=examples python -m fastapi_service --database-url \\
        mysql+pymysql://root@127.0.0.1:3306/test                   # run as mysql+aiomysql

A synchronous URL is mapped to its asyncio driver (``async_url``): SQLite to aiosqlite,
MariaDB/MySQL to aiomysql (``pip install aiomysql``), PostgreSQL to psycopg's async mode.
"""

from __future__ import annotations

from fastapi_service.app import create_app

__all__ = ["create_app"]
