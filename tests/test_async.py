"""Async: AsyncSession on aiosqlite and PostgreSQL (psycopg async), lazy loads through
``awaitable_attrs``, call sites found in the awaiting coroutine."""

from __future__ import annotations

import asyncio
from typing import Any

from models import Author, Base, Book, seed
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload
from timing import UNTIMED, kinds

import sqlaudit


async def _prepare(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    async with AsyncSession(engine) as session:
        await session.run_sync(seed)


async def _drop(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)


def test_async_n_plus_one_and_fix(async_engine: AsyncEngine) -> None:
    """An async N+1 is found with the awaiting line as its location; selectinload is clean."""

    async def scenario() -> tuple[sqlaudit.AuditReport, sqlaudit.AuditReport, int]:
        await _prepare(async_engine)
        handle = sqlaudit.instrument(async_engine)
        try:
            async with sqlaudit.audit("async list", on_finding="ignore", **UNTIMED) as planted:
                async with AsyncSession(async_engine) as session:
                    for author in await session.scalars(select(Author)):
                        await author.awaitable_attrs.books  # marker: async trigger
            async with sqlaudit.audit("async fixed", on_finding="ignore", **UNTIMED) as fixed:
                async with AsyncSession(async_engine) as session:
                    stmt = select(Author).options(selectinload(Author.books))
                    authors = (await session.scalars(stmt)).all()
                    assert all(a.books for a in authors)
        finally:
            handle.remove()
            await _drop(async_engine)
        with open(__file__, encoding="utf-8") as source:
            line = next(
                n
                for n, text in enumerate(source, 1)
                if "marker: async trigger" in text and "next(" not in text
            )
        return planted, fixed, line

    planted, fixed, line = asyncio.run(scenario())
    assert kinds(planted) == ["n_plus_one"]
    finding = planted.findings[0]
    assert finding.relationship == "Author.books"
    assert finding.count == 5
    assert finding.location is not None
    assert (finding.location.file, finding.location.line) == (__file__, line)
    assert kinds(fixed) == []
    assert fixed.query_count == 2


def test_async_repeated_query(async_engine: AsyncEngine) -> None:
    """Repeated async Core selects from one line are a repeated_query."""

    async def scenario() -> sqlaudit.AuditReport:
        await _prepare(async_engine)
        handle = sqlaudit.instrument(async_engine)
        try:
            async with sqlaudit.audit("async repeat", on_finding="ignore", **UNTIMED) as report:
                async with async_engine.connect() as conn:
                    for book_id in (1, 2, 3, 4):
                        await conn.execute(select(Book.title).where(Book.id == book_id))
        finally:
            handle.remove()
            await _drop(async_engine)
        return report

    report = asyncio.run(scenario())
    assert kinds(report) == ["repeated_query"]
    assert report.findings[0].count == 4


def test_async_precision_one_plus_one_chain_and_walks(async_engine: AsyncEngine) -> None:
    """Async, as sync: 1+1 is silent, nested loads chain their fix to the root query, and
    IN-list chunks are a walk, not a repeated query."""

    async def scenario() -> tuple[sqlaudit.AuditReport, sqlaudit.AuditReport, int]:
        await _prepare(async_engine)
        handle = sqlaudit.instrument(async_engine)
        try:
            async with sqlaudit.audit("1+1", on_finding="ignore", **UNTIMED) as one_plus_one:
                async with AsyncSession(async_engine) as session:
                    first = await session.get_one(Author, 1)
                    second = await session.get_one(Author, 2)
                    for author in (first, second):
                        await author.awaitable_attrs.books
                    async with async_engine.connect() as conn:
                        for start in (1, 5, 9):
                            ids = list(range(start, start + 4))
                            await conn.execute(select(Book.id).where(Book.id.in_(ids)))
            async with sqlaudit.audit("nested", on_finding="ignore", **UNTIMED) as nested:
                async with AsyncSession(async_engine) as session:
                    for author in await session.scalars(select(Author)):  # async root
                        for book in await author.awaitable_attrs.books:
                            await book.awaitable_attrs.reviews
        finally:
            handle.remove()
            await _drop(async_engine)
        with open(__file__, encoding="utf-8") as source:
            root = next(n for n, text in enumerate(source, 1) if text.endswith("# async root\n"))
        return one_plus_one, nested, root

    one_plus_one, nested, root = asyncio.run(scenario())
    assert kinds(one_plus_one) == []
    (reviews,) = [f for f in nested.findings if f.relationship == "Book.reviews"]
    assert "selectinload(Author.books).selectinload(Book.reviews)" in reviews.fix
    assert reviews.fix.endswith(f"tests/test_async.py:{root}")


def test_async_column_reload_write_loop_pages_and_loop_view(async_engine: AsyncEngine) -> None:
    """Async, as sync: expired reloads after commit, a flush per row, a page walk (silent)
    and a loop touching two relationships per row (one 2N+1 finding)."""

    async def scenario() -> sqlaudit.AuditReport:
        await _prepare(async_engine)
        handle = sqlaudit.instrument(async_engine)
        try:
            async with sqlaudit.audit("async mix", on_finding="ignore", **UNTIMED) as report:
                async with AsyncSession(async_engine) as session:
                    authors = (await session.scalars(select(Author))).all()
                    await session.commit()
                    for author in authors:
                        await author.awaitable_attrs.name  # expired by the commit
                    for i in range(100, 106):
                        session.add(Author(id=i, name=f"a{i}"))
                        await session.flush()
                    await session.commit()
                    for page in range(3):
                        stmt = select(Book.id).order_by(Book.id).limit(3).offset(page * 3)
                        await session.execute(stmt)
                    for book in (await session.scalars(select(Book).limit(4))).all():
                        await book.awaitable_attrs.author
                        await book.awaitable_attrs.reviews
        finally:
            handle.remove()
            await _drop(async_engine)
        return report

    report = asyncio.run(scenario())
    found = sorted(set(kinds(report)))
    assert found == ["column_reload", "n_plus_one", "write_loop"]
    (loop,) = [f for f in report.findings if f.kind == "n_plus_one"]
    assert "this loop issues" in loop.message or "Book.reviews" in (loop.relationship or "")


def test_async_precision_rules_and_traps(async_engine: AsyncEngine) -> None:
    """Async, as sync, one audit per rule: many-to-one gets joinedload, immediateload is an
    N+1, deferred columns are a column_reload, a LIMIT 1 per parent is a repeated query; and
    the traps stay silent: eager batches, executemany, the production floors."""
    from sqlalchemy import insert
    from sqlalchemy.orm import defer, immediateload

    async def scenario() -> dict[str, sqlaudit.AuditReport]:
        await _prepare(async_engine)
        handle = sqlaudit.instrument(async_engine)
        reports: dict[str, sqlaudit.AuditReport] = {}

        async def audited(name: str, config: sqlaudit.AuditConfig | None = None) -> Any:
            return sqlaudit.audit(
                name, config or sqlaudit.AuditConfig(on_finding="ignore", **UNTIMED)
            )

        try:
            async with await audited("m2o") as reports["m2o"]:
                async with AsyncSession(async_engine) as session:
                    for book in (await session.scalars(select(Book))).all():
                        await book.awaitable_attrs.author
            async with await audited("immediate") as reports["immediate"]:
                async with AsyncSession(async_engine) as session:
                    stmt = select(Author).options(immediateload(Author.books))
                    (await session.scalars(stmt)).all()
            async with await audited("deferred") as reports["deferred"]:
                async with AsyncSession(async_engine) as session:
                    stmt = select(Author).options(defer(Author.name))
                    for author in (await session.scalars(stmt)).all():
                        await author.awaitable_attrs.name
            async with await audited("limit1") as reports["limit1"]:
                async with async_engine.connect() as conn:
                    for author_id in (1, 2, 3):
                        first = select(Book.id).where(Book.author_id == author_id).limit(1)
                        await conn.execute(first.order_by(Book.id))
            async with await audited("eager") as reports["eager"]:
                async with AsyncSession(async_engine) as session:
                    stmt = select(Author).options(selectinload(Author.books))
                    for author in (await session.scalars(stmt)).all():
                        assert author.books
            async with await audited("executemany") as reports["executemany"]:
                async with async_engine.begin() as conn:
                    rows = [{"id": i, "name": f"a{i}"} for i in range(600, 700)]
                    await conn.execute(insert(Author), rows)
            production = sqlaudit.AuditConfig.for_production(on_finding="ignore", **UNTIMED)
            async with await audited("floors", production) as reports["floors"]:
                async with AsyncSession(async_engine) as session:
                    # 4 parents: under the production floor of 5 whatever the timing
                    stmt = select(Author).order_by(Author.id).limit(4)
                    for author in (await session.scalars(stmt)).all():
                        await author.awaitable_attrs.books
        finally:
            handle.remove()
            await _drop(async_engine)
        return reports

    reports = asyncio.run(scenario())

    def problems(name: str) -> list[str]:
        found = reports[name].findings
        return sorted(set(kinds(found)))

    assert "joinedload(Book.author)" in reports["m2o"].findings[0].fix
    assert problems("immediate") == ["n_plus_one"]
    assert problems("deferred") == ["column_reload"]
    assert problems("limit1") == ["repeated_query"]
    assert problems("eager") == []
    assert problems("executemany") == []
    assert problems("floors") == []


def test_async_eager_batches_keyset_walk_and_savepoints(async_engine: AsyncEngine) -> None:
    """Async traps: selectinload over 1,200 parents (several IN batches), a keyset page walk
    and a savepoint are silent, and transaction control is not counted."""

    async def scenario() -> sqlaudit.AuditReport:
        async with async_engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(async_engine) as session:
            await session.run_sync(seed, 1200, 1, 0)
        handle = sqlaudit.instrument(async_engine)
        try:
            async with sqlaudit.audit(
                "traps", on_finding="ignore", **UNTIMED, max_queries=8
            ) as report:
                async with AsyncSession(async_engine) as session:
                    stmt = select(Author).options(selectinload(Author.books))
                    authors = (await session.scalars(stmt)).all()
                    assert sum(len(a.books) for a in authors) == 1200
                async with async_engine.connect() as conn:
                    last = 0
                    for _ in range(3):
                        page = select(Book.id).where(Book.id > last).order_by(Book.id).limit(5)
                        rows = (await conn.execute(page)).all()
                        last = rows[-1][0]
                async with AsyncSession(async_engine) as session, session.begin():
                    async with session.begin_nested():
                        await session.get(Author, 1)
        finally:
            handle.remove()
            await _drop(async_engine)
        return report

    report = asyncio.run(scenario())
    assert report.query_count == 8  # 1 + 3 batches, 3 pages, 1 get; savepoints not counted
    assert report.counts.get("transaction", 0) >= 2
    assert kinds(report) == []
