"""Requests per second through the WSGI and ASGI middlewares, against the same app without.

Run from the repository root::

    python benchmarks/middleware.py            # full run (about two minutes)
    python benchmarks/middleware.py --quick    # short run (smoke test)
    python benchmarks/middleware.py --json results.json

The app is minimal on purpose, so that the middleware's share is as large as it can be: a
plain WSGI callable (and its ASGI twin) issuing 10 Core ``SELECT ... WHERE id = ?`` by primary
key against SQLite in memory and answering ``ok``. Requests are driven in-process the way a
server drives them (a fresh environ or scope per request, the body iterated and closed), with
no HTTP server, whose own cost would only dilute the percentages.

Variants, each on its own engine (an engine keeps some event-dispatch state for life, see
DESIGN "Measured facts"):

* ``bare``: engine never instrumented, no middleware: the baseline;
* ``instrumented``: ``sqlaudit.instrument(engine)``, no middleware (capture's no-scope cost);
* ``rate 0``: middleware, ``sample_rate=0``: requests open no scope at all;
* ``rate 0 +count``: ``sample_rate=0`` with ``header=True``: each request is counted in a
  counting-only scope (``max_records=0``, ended without a freeze, detectors or reporters) for
  its ``X-SQL-Queries`` header;
* ``rate 0.1`` / ``rate 1``: one request in ten / every request fully audited;
* ``audit() block``: no middleware; the app runs inside ``sqlaudit.audit(...)`` with the
  same config and reporter: the core's cost of a full audit, so that ``rate 1`` minus this
  is what the middleware itself adds (naming, wrapping, ContextVar handling).

A second table times the middleware alone, around an app that issues no statement: the
microseconds each request pays for the middleware's own work (sampling, naming, wrapping,
ContextVar handling, an empty report closed through the detectors and reporters).

The middlewares use their defaults: ``AuditConfig.for_production()`` and the log reporter.
Rounds are interleaved: each round runs every variant once, in a shuffled order, and each
figure is the median over rounds of the time per request. The script measures; it never exits
non-zero on a missed target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from time import perf_counter
from typing import Any

import sqlalchemy
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select
from sqlalchemy.pool import StaticPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlaudit
from sqlaudit import AuditConfig
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.wsgi import WSGIAuditMiddleware

STATEMENTS = 10
metadata = MetaData()
items = Table("item", metadata, Column("id", Integer, primary_key=True), Column("name", String(20)))
BY_ID = select(items.c.name).where(items.c.id == sqlalchemy.bindparam("id"))

VARIANTS: dict[str, dict[str, Any] | None] = {
    "bare": None,
    "instrumented": None,
    "rate 0": {"sample_rate": 0.0},
    "rate 0 +count": {"sample_rate": 0.0, "header": True},
    "rate 0.1": {"sample_rate": 0.1},
    "rate 1": {"sample_rate": 1.0},
    "audit() block": None,
}
TARGETS = {"rate 0": 1.0, "rate 1": 5.0}


PAGE = (
    select(items.c.id, items.c.name)
    .order_by(items.c.id)
    .limit(20)
    .offset(sqlalchemy.bindparam("offset"))
)
#: The endpoint the app serves: ``pk`` (the default, the cheapest statements there are) or
#: ``page`` (``--endpoint page``: each statement reads a page of 20 rows from a SQLite file
#: and the rows become a JSON body, closer to what a listing endpoint does).
ENDPOINT = "pk"
_files: list[Path] = []


def make_engine(instrumented: bool) -> Engine:
    if ENDPOINT == "page":
        directory = Path(tempfile.mkdtemp(prefix="sqlaudit-bench-"))
        _files.append(directory)
        engine = create_engine(f"sqlite:///{directory / 'bench.db'}")
        rows = 2000
    else:
        engine = create_engine("sqlite://", poolclass=StaticPool)
        rows = 100
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(items.insert(), [{"id": i, "name": f"item {i}"} for i in range(rows)])
    if instrumented:
        sqlaudit.instrument(engine)
    return engine


def query(engine: Engine) -> bytes:
    with engine.connect() as connection:
        if ENDPOINT == "page":
            pages = [
                [
                    {"id": row.id, "name": row.name}
                    for row in connection.execute(PAGE, {"offset": i * 20})
                ]
                for i in range(STATEMENTS)
            ]
            return json.dumps(pages).encode()
        for i in range(STATEMENTS):
            connection.execute(BY_ID, {"id": i * 7 % 100}).scalar_one()
    return b"ok"


def audited_wsgi(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The app inside a plain ``sqlaudit.audit()`` block: the core's cost, no middleware."""
    config = AuditConfig.for_production()

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with sqlaudit.audit("GET /items/{id}", config):
            return list(app(environ, start_response))

    return wrapper


def audited_asgi(app: Callable[..., Any]) -> Callable[..., Any]:
    config = AuditConfig.for_production()

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async with sqlaudit.audit("GET /items/{id}", config):
            await app(scope, receive, send)

    return wrapper


def wsgi_app(engine: Engine) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = query(engine)
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        )
        return [body]

    return app


def asgi_app(engine: Engine) -> Callable[..., Any]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = query(engine)
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


ENVIRON = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/items/42",
    "SERVER_NAME": "bench",
    "SERVER_PORT": "80",
    "wsgi.url_scheme": "http",
}
SCOPE = {"type": "http", "method": "GET", "path": "/items/42", "root_path": "", "headers": []}


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return None


def wsgi_round(app: Callable[..., Iterable[bytes]], requests: int) -> float:
    started = perf_counter()
    for _ in range(requests):
        body = app(dict(ENVIRON), start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return perf_counter() - started


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    return None


async def _asgi_requests(app: Callable[..., Any], requests: int) -> float:
    started = perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), _receive, _send)
    return perf_counter() - started


def build(protocol: str) -> dict[str, Any]:
    apps: dict[str, Any] = {}
    for name, options in VARIANTS.items():
        engine = make_engine(instrumented=name != "bare")
        if protocol == "wsgi":
            app: Any = wsgi_app(engine)
            if name == "audit() block":
                app = audited_wsgi(app)
            apps[name] = app if options is None else WSGIAuditMiddleware(app, **options)
        else:
            app = asgi_app(engine)
            if name == "audit() block":
                app = audited_asgi(app)
            apps[name] = app if options is None else ASGIAuditMiddleware(app, **options)
    return apps


def measure(protocol: str, rounds: int, requests: int) -> dict[str, float]:
    """Median microseconds per request of every variant, interleaved rounds."""
    apps = build(protocol)
    times: dict[str, list[float]] = {name: [] for name in apps}
    loop = asyncio.new_event_loop()

    def once(name: str, count: int) -> float:
        if protocol == "wsgi":
            return wsgi_round(apps[name], count)
        return loop.run_until_complete(_asgi_requests(apps[name], count))

    try:
        for name in apps:  # warm-up: statement cache, pool, code paths
            once(name, requests)
        for _ in range(rounds):
            order = list(apps)
            random.shuffle(order)
            for name in order:
                times[name].append(once(name, requests) / requests * 1e6)
    finally:
        loop.close()
    return {name: statistics.median(values) for name, values in times.items()}


def noop_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


async def noop_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def measure_alone(protocol: str, rounds: int, requests: int) -> dict[str, float]:
    """Median µs per request of the middleware around an app issuing no statement."""
    apps: dict[str, Any] = {"bare": noop_wsgi if protocol == "wsgi" else noop_asgi}
    for name, options in VARIANTS.items():
        if options is not None:
            wrap = WSGIAuditMiddleware if protocol == "wsgi" else ASGIAuditMiddleware
            apps[name] = wrap(apps["bare"], **options)
    times: dict[str, list[float]] = {name: [] for name in apps}
    loop = asyncio.new_event_loop()
    try:
        for _ in range(rounds):
            order = list(apps)
            random.shuffle(order)
            for name in order:
                if protocol == "wsgi":
                    elapsed = wsgi_round(apps[name], requests)
                else:
                    elapsed = loop.run_until_complete(_asgi_requests(apps[name], requests))
                times[name].append(elapsed / requests * 1e6)
    finally:
        loop.close()
    return {name: statistics.median(values) for name, values in times.items()}


def table_alone(protocol: str, medians: dict[str, float]) -> list[str]:
    bare = medians["bare"]
    lines = [
        f"{protocol.upper()} middleware alone (app issuing no statement)",
        f"{'variant':<15} {'µs/request':>10} {'added µs':>9}",
    ]
    lines += [f"{n:<15} {us:>10.2f} {us - bare:>+9.2f}" for n, us in medians.items()]
    return lines


def table(protocol: str, medians: dict[str, float]) -> list[str]:
    bare = medians["bare"]
    instrumented = medians["instrumented"]
    lines = [
        f"{protocol.upper()}: {STATEMENTS} statements per request, "
        + (
            "20-row pages from a SQLite file, JSON body"
            if ENDPOINT == "page"
            else "by primary key, SQLite in memory"
        ),
        f"{'variant':<15} {'µs/request':>10} {'requests/s':>10} {'vs bare':>8} "
        f"{'vs instr.':>9}  target",
    ]
    for name, us in medians.items():
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            cost = (us / bare - 1) * 100
            verdict = f"<= {target:g}%: {'met' if cost <= target else 'missed'}"
        lines.append(
            f"{name:<15} {us:>10.1f} {1e6 / us:>10.0f} {(us / bare - 1) * 100:>+7.1f}% "
            f"{(us / instrumented - 1) * 100:>+8.1f}%  {verdict}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke test")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--requests", type=int, default=100, help="requests per round")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    parser.add_argument(
        "--endpoint",
        choices=("pk", "page"),
        default="pk",
        help="pk: 10 lookups by primary key in memory (default); page: 10 pages of 20 rows "
        "from a SQLite file, returned as JSON",
    )
    args = parser.parse_args(argv)
    global ENDPOINT
    ENDPOINT = args.endpoint
    rounds = args.rounds or (3 if args.quick else 80)
    requests = 50 if args.quick else args.requests
    print(
        f"sqlaudit {sqlaudit.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
        f"Python {platform.python_version()}, {rounds} rounds x {requests} requests per variant, "
        f"endpoint {ENDPOINT!r}"
    )
    results: dict[str, dict[str, float]] = {}
    for protocol in ("wsgi", "asgi"):
        results[protocol] = measure(protocol, rounds, requests)
        print()
        print("\n".join(table(protocol, results[protocol])))
    for protocol in ("wsgi", "asgi"):
        results[f"{protocol} alone"] = measure_alone(protocol, rounds, requests * 20)
        print()
        print("\n".join(table_alone(protocol, results[f"{protocol} alone"])))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    for directory in _files:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
