"""sqlaudit adds no round trip: the bytes a workload sends to MariaDB and PostgreSQL, and
receives back, are identical with and without a full audit.

The engine talks to the server through a byte-counting TCP proxy on 127.0.0.1, so the
count covers every message the driver sends (statements, BEGIN/COMMIT/ROLLBACK, pings,
autocommit switches), not only what SQLAlchemy's events see.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from databases import resolve_url
from models import Author, Base, Book, seed
from sqlalchemy import Engine, create_engine, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

import sqlaudit


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes passed each way."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.sent = 0
        self.received = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(src, dst, up), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if up:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def wait_idle(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5)

    def close(self) -> None:
        self._server.close()


@contextmanager
def proxied_engine(kind: str) -> Iterator[tuple[Engine, CountingProxy]]:
    url = make_url(resolve_url(kind))  # type: ignore[arg-type]
    proxy = CountingProxy(url.host or "127.0.0.1", url.port or (3306 if kind == "mysql" else 5432))
    engine = create_engine(url.set(host="127.0.0.1", port=proxy.port), poolclass=NullPool)
    try:
        yield engine, proxy
    finally:
        engine.dispose()
        proxy.close()


def workload(engine: Engine) -> None:
    """Reads, an N+1, writes, commits, a rollback, a savepoint, autocommit: all of it."""
    with Session(engine) as session:
        for author in session.scalars(select(Author).order_by(Author.id)):
            assert author.books
        session.add(Author(id=100, name="new"))
        session.commit()
        with session.begin():
            with session.begin_nested():
                session.execute(update(Author).where(Author.id == 100).values(name="x"))
    with engine.connect() as conn:
        conn.execute(insert(Book).values(id=100, title="t", author_id=100))
        conn.rollback()
        conn.execute(insert(Book).values(id=101, title="t", author_id=100))
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(insert(Book).values(id=102, title="t", author_id=100))


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_bytes_on_the_wire_identical_with_and_without_audit(kind: str) -> None:
    """The same workload moves exactly the same bytes each way with sqlaudit auditing it."""
    direct = create_engine(resolve_url(kind))
    totals = []
    try:
        for audited in (False, True, False, True):
            Base.metadata.drop_all(direct)
            Base.metadata.create_all(direct)
            with Session(direct) as session:
                seed(session)
            with proxied_engine(kind) as (engine, proxy):
                if audited:
                    handle = sqlaudit.instrument(engine)
                    with sqlaudit.audit("workload", on_finding="ignore") as report:
                        workload(engine)
                    handle.remove()
                    assert report.query_count >= 10
                    assert {f.kind for f in report.findings} >= {
                        "n_plus_one",
                        "discarded_writes",
                    }
                else:
                    workload(engine)
                engine.dispose()
                proxy.wait_idle()
                totals.append((audited, proxy.sent, proxy.received))
    finally:
        Base.metadata.drop_all(direct)
        direct.dispose()
    plain = {(sent, received) for audited, sent, received in totals if not audited}
    with_audit = {(sent, received) for audited, sent, received in totals if audited}
    assert len(plain) == 1, totals  # the workload itself is deterministic
    assert with_audit == plain, totals
