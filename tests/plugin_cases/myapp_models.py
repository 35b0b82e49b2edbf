"""myapp/models.py: the models and the data helper the pytest examples below import."""

from __future__ import annotations

from sqlalchemy import Engine, ForeignKey, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Stream(Base):
    __tablename__ = "sqlaudit_t_stream"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(50))
    comments: Mapped[list[Comment]] = relationship(back_populates="stream", order_by="Comment.id")


class Comment(Base):
    __tablename__ = "sqlaudit_t_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_stream.id"))
    body: Mapped[str] = mapped_column(String(50))
    stream: Mapped[Stream] = relationship(back_populates="comments")


def add_streams(engine: Engine, n: int) -> None:
    """Add ``n`` streams with two comments each (in one transaction)."""
    with Session(engine) as session, session.begin():
        start = session.scalar(select(func.coalesce(func.max(Stream.id), 0))) or 0
        for i in range(start + 1, start + n + 1):
            comments = [Comment(body=f"comment {i}.{j}") for j in (1, 2)]
            session.add(Stream(id=i, title=f"stream {i}", comments=comments))
