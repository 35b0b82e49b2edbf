"""The service's endpoints. Two carry a planted SQL problem, named in their docstring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload, selectinload

from fastapi_service.models import Comment, Stream

__all__ = ["router"]

router = APIRouter()


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with _sessions(request)() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def _card(stream: Stream) -> dict[str, Any]:
    streamer = await stream.awaitable_attrs.streamer
    return {
        "id": stream.id,
        "title": stream.title,
        "viewers": stream.viewers,
        "streamer": streamer.name,
    }


@router.get("/streams")
async def list_streams(session: SessionDep) -> list[dict[str, Any]]:
    """Planted N+1: the list query loads streams only, so every card awaits a lazy load of its
    streamer: 1 + N statements for N streams (sqlaudit: ``n_plus_one`` on ``Stream.streamer``)."""
    streams = (await session.scalars(select(Stream).order_by(Stream.viewers.desc()))).all()
    return [await _card(stream) for stream in streams]


@router.get("/streams/eager")
async def list_streams_eager(session: SessionDep) -> list[dict[str, Any]]:
    """Fixed: the streamers are joined into the list query: one statement."""
    query = select(Stream).options(joinedload(Stream.streamer)).order_by(Stream.viewers.desc())
    return [await _card(stream) for stream in (await session.scalars(query)).all()]


@router.get("/streams/{stream_id}")
async def show_stream(stream_id: int, session: SessionDep) -> dict[str, Any]:
    """One stream with its comments: two statements."""
    query = (
        select(Stream)
        .where(Stream.id == stream_id)
        .options(joinedload(Stream.streamer), selectinload(Stream.comments))
    )
    stream = (await session.scalars(query)).one_or_none()
    if stream is None:
        raise HTTPException(status_code=404, detail="no such stream")
    return {**(await _card(stream)), "comments": [c.body for c in stream.comments]}


class NewComments(BaseModel):
    bodies: list[str]


@router.post("/streams/{stream_id}/comments", status_code=201)
async def post_comments(stream_id: int, new: NewComments, session: SessionDep) -> dict[str, int]:
    """Planted write loop: each comment is flushed on its own, one INSERT per row (sqlaudit:
    ``write_loop``); ``session.add_all(...)`` then one commit sends them in one batch."""
    for body in new.bodies:
        session.add(Comment(stream_id=stream_id, body=body[:200]))
        await session.flush()
    await session.commit()
    return {"added": len(new.bodies)}


@router.get("/export.csv")
async def export(request: Request) -> StreamingResponse:
    """Streamed CSV: its two queries run while the body is sent, after the headers, and the
    middleware still counts them: the audit stays open until the application returns."""
    sessions = _sessions(request)

    async def rows() -> AsyncIterator[str]:
        yield "id,title,streamer,comments\n"
        async with sessions() as session:
            counts = dict(
                (
                    await session.execute(
                        select(Comment.stream_id, func.count()).group_by(Comment.stream_id)
                    )
                ).all()
            )
            query = select(Stream).options(joinedload(Stream.streamer)).order_by(Stream.id)
            for stream in (await session.scalars(query)).all():
                streamer = stream.streamer.name
                yield f"{stream.id},{stream.title},{streamer},{counts.get(stream.id, 0)}\n"

    return StreamingResponse(rows(), media_type="text/csv")


@router.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    """Health check: excluded from auditing."""
    return "ok"
