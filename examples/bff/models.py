"""The BFF's tables: users, live streams, comments, stamps (stickers), a points ledger and the
coin wallets gifts are paid from.

Table names start with ``bff_`` so the demo can share a scratch database (MariaDB's or
PostgreSQL's ``test``) with other tools and drop exactly its own tables.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "Comment", "Point", "Stamp", "Stream", "User", "Wallet"]


class Base(DeclarativeBase):
    pass


class User(Base):
    """A viewer or a streamer."""

    __tablename__ = "bff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))

    streams: Mapped[list[Stream]] = relationship(back_populates="owner")


class Stream(Base):
    """A live stream, owned by the user broadcasting it."""

    __tablename__ = "bff_streams"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("bff_users.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    game: Mapped[str] = mapped_column(String(80))
    viewers: Mapped[int] = mapped_column(default=0)
    is_live: Mapped[bool] = mapped_column(default=True)

    owner: Mapped[User] = relationship(back_populates="streams")
    comments: Mapped[list[Comment]] = relationship(back_populates="stream", order_by="Comment.id")
    stamps: Mapped[list[Stamp]] = relationship(back_populates="stream", order_by="Stamp.id")


class Comment(Base):
    """A chat comment posted on a stream."""

    __tablename__ = "bff_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("bff_streams.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("bff_users.id"), index=True)
    body: Mapped[str] = mapped_column(String(280))

    stream: Mapped[Stream] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()


class Stamp(Base):
    """A stamp (a paid sticker) a viewer sent on a stream."""

    __tablename__ = "bff_stamps"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("bff_streams.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("bff_users.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    price: Mapped[int]

    stream: Mapped[Stream] = relationship(back_populates="stamps")
    sender: Mapped[User] = relationship()


class Point(Base):
    """One entry of a user's points ledger (positive: awarded, negative: spent)."""

    __tablename__ = "bff_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("bff_users.id"), index=True)
    amount: Mapped[int]
    reason: Mapped[str] = mapped_column(String(80))

    user: Mapped[User] = relationship()


class Wallet(Base):
    """A user's coin balance: gifts are paid from the viewer's wallet to the streamer's."""

    __tablename__ = "bff_wallets"

    user_id: Mapped[int] = mapped_column(ForeignKey("bff_users.id"), primary_key=True)
    balance: Mapped[int]
    #: A frozen wallet (a payout under review) cannot receive coins.
    frozen: Mapped[bool] = mapped_column(default=False)
