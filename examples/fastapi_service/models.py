"""The service's tables and deterministic seed rows (async SQLAlchemy).

Tables are prefixed ``fastapi_svc_`` so the service can share a scratch database (MariaDB's
or PostgreSQL's ``test``) with other tools; ``reset_schema`` drops and recreates exactly them.
``AsyncAttrs`` gives every instance ``awaitable_attrs``, the asyncio way to lazy-load.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncAttrs, AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Comment", "Stream", "Streamer", "drop_schema", "reset_schema", "seed"]


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Streamer(Base):
    __tablename__ = "fastapi_svc_streamers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Stream(Base):
    __tablename__ = "fastapi_svc_streams"

    id: Mapped[int] = mapped_column(primary_key=True)
    streamer_id: Mapped[int] = mapped_column(ForeignKey("fastapi_svc_streamers.id"))
    title: Mapped[str] = mapped_column(String(80))
    viewers: Mapped[int] = mapped_column(default=0)

    streamer: Mapped[Streamer] = relationship()
    comments: Mapped[list[Comment]] = relationship(order_by="Comment.id")


class Comment(Base):
    __tablename__ = "fastapi_svc_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("fastapi_svc_streams.id"), index=True)
    body: Mapped[str] = mapped_column(String(200))


#: Six streamers, each live with one stream.
STREAMS = [
    ("akari", "Ranked grind to Diamond", 1200),
    ("haru", "Speedrun practice: any%", 800),
    ("kaito", "Chill farming night", 450),
    ("mio", "Tournament scrims", 3100),
    ("ren", "First playthrough!", 90),
    ("sora", "Puzzle Sunday", 15),
]


async def reset_schema(engine: AsyncEngine) -> None:
    """Drop the service's tables if a previous run left them, then create them."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)


async def drop_schema(engine: AsyncEngine) -> None:
    """Drop the service's tables."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)


async def seed(session: AsyncSession) -> None:
    """The same rows on every database: 6 streamers, 6 streams, 2 comments each."""
    for number, (name, title, viewers) in enumerate(STREAMS, 1):
        session.add(Streamer(id=number, name=name))
        stream = Stream(id=number, streamer_id=number, title=title, viewers=viewers)
        stream.comments = [Comment(body="first!"), Comment(body="gg")]
        session.add(stream)
    await session.commit()
