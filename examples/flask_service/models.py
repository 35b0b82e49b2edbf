"""The service's tables (Flask-SQLAlchemy models) and deterministic seed rows.

Tables are prefixed ``flask_svc_`` so the service can share a scratch database (MariaDB's or
PostgreSQL's ``test``) with other tools; ``reset_schema`` drops and recreates exactly them.
"""

from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Comment", "Stream", "Streamer", "db", "drop_schema", "reset_schema", "seed"]


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Streamer(db.Model):  # type: ignore[name-defined,misc]  # Flask-SQLAlchemy's dynamic base
    __tablename__ = "flask_svc_streamers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class Stream(db.Model):  # type: ignore[name-defined,misc]  # Flask-SQLAlchemy's dynamic base
    __tablename__ = "flask_svc_streams"

    id: Mapped[int] = mapped_column(primary_key=True)
    streamer_id: Mapped[int] = mapped_column(ForeignKey("flask_svc_streamers.id"))
    title: Mapped[str] = mapped_column(String(80))
    viewers: Mapped[int] = mapped_column(default=0)

    streamer: Mapped[Streamer] = relationship()
    comments: Mapped[list[Comment]] = relationship(order_by="Comment.id")


class Comment(db.Model):  # type: ignore[name-defined,misc]  # Flask-SQLAlchemy's dynamic base
    __tablename__ = "flask_svc_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("flask_svc_streams.id"), index=True)
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


def reset_schema() -> None:
    """Drop the service's tables if a previous run left them, then create them (app context)."""
    db.drop_all()
    db.create_all()


def drop_schema() -> None:
    """Drop the service's tables (app context)."""
    db.drop_all()


def seed() -> None:
    """The same rows on every database: 6 streamers, 6 streams, 2 comments each."""
    for number, (name, title, viewers) in enumerate(STREAMS, 1):
        db.session.add(Streamer(id=number, name=name))
        stream = Stream(id=number, streamer_id=number, title=title, viewers=viewers)
        stream.comments = [Comment(body="first!"), Comment(body="gg")]
        db.session.add(stream)
    db.session.commit()
