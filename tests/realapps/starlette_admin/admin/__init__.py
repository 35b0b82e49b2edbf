"""A shop's back office on plain Starlette: an admin (sync endpoints, sync engine) and a JSON
API (async endpoints, async engine) over the same database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from starlette.applications import Starlette
from starlette.routing import Mount

from admin import api, views


def create_app(path: str) -> Starlette:
    """The app on the SQLite database file at ``path``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await app.state.async_engine.dispose()
        app.state.engine.dispose()

    app = Starlette(
        routes=[
            Mount("/admin", routes=views.routes, name="admin"),
            Mount("/api", routes=api.routes),
        ],
        lifespan=lifespan,
    )
    app.state.engine = create_engine(f"sqlite:///{path}")
    app.state.async_engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    app.state.async_sessions = async_sessionmaker(app.state.async_engine, expire_on_commit=False)
    return app
