"""Two tables for the README's quickstart: users and their comments."""

from __future__ import annotations

from sqlalchemy import ForeignKey, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    comments: Mapped[list[Comment]] = relationship(back_populates="user")


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str]
    user: Mapped[User] = relationship(back_populates="comments")


def make_engine():  # type: ignore[no-untyped-def]
    """An in-memory SQLite database with 3 users and 2 comments each."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for i in range(1, 4):
            comments = [Comment(body=f"hi {j}") for j in range(2)]
            session.add(User(id=i, name=f"user{i}", comments=comments))
        session.commit()
    return engine
