"""The service's endpoints. Two carry a planted SQL problem, named in their docstring."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, abort, request, stream_with_context
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from flask_service.models import Comment, Stream, db

__all__ = ["views"]

views = Blueprint("streams", __name__)


def _card(stream: Stream) -> dict[str, Any]:
    return {
        "id": stream.id,
        "title": stream.title,
        "viewers": stream.viewers,
        "streamer": stream.streamer.name,
    }


@views.get("/streams")
def list_streams() -> list[dict[str, Any]]:
    """Planted N+1: the list query loads streams only, so every card lazy-loads its streamer:
    1 + N statements for N streams (sqlaudit: ``n_plus_one`` on ``Stream.streamer``)."""
    streams = db.session.scalars(select(Stream).order_by(Stream.viewers.desc())).all()
    return [_card(stream) for stream in streams]


@views.get("/streams/eager")
def list_streams_eager() -> list[dict[str, Any]]:
    """Fixed: the streamers are joined into the list query: one statement."""
    query = select(Stream).options(joinedload(Stream.streamer)).order_by(Stream.viewers.desc())
    return [_card(stream) for stream in db.session.scalars(query).all()]


@views.get("/streams/<int:stream_id>")
def show_stream(stream_id: int) -> dict[str, Any]:
    """One stream with its comments: two statements."""
    query = (
        select(Stream)
        .where(Stream.id == stream_id)
        .options(joinedload(Stream.streamer), selectinload(Stream.comments))
    )
    stream = db.session.scalars(query).one_or_none()
    if stream is None:
        abort(404)
    return {**_card(stream), "comments": [c.body for c in stream.comments]}


@views.post("/streams/<int:stream_id>/comments")
def post_comments(stream_id: int) -> tuple[dict[str, Any], int]:
    """Planted write loop: each comment is flushed on its own, one INSERT per row (sqlaudit:
    ``write_loop``); ``db.session.add_all(...)`` then one commit sends them in one batch."""
    bodies = (request.get_json(silent=True) or {}).get("bodies", [])
    for body in bodies:
        db.session.add(Comment(stream_id=stream_id, body=str(body)[:200]))
        db.session.flush()
    db.session.commit()
    return {"added": len(bodies)}, 201


@views.get("/export.csv")
def export() -> Response:
    """Streamed CSV: its two queries run while the body is sent, after the headers, and the
    middleware still counts them, because it closes the audit when the body is done."""

    def rows() -> Iterator[str]:
        yield "id,title,streamer,comments\n"
        counts = dict(
            db.session.execute(
                select(Comment.stream_id, func.count()).group_by(Comment.stream_id)
            ).all()
        )
        query = select(Stream).options(joinedload(Stream.streamer)).order_by(Stream.id)
        for stream in db.session.scalars(query):
            yield f"{stream.id},{stream.title},{stream.streamer.name},{counts.get(stream.id, 0)}\n"

    # stream_with_context keeps the request (and Flask-SQLAlchemy's session) while it runs.
    return Response(stream_with_context(rows()), mimetype="text/csv")


@views.get("/health")
def health() -> str:
    """Health check: excluded from auditing."""
    return "ok"
