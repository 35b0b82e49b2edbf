"""The BFF's endpoints, each written twice: with a planted SQL problem, and fixed.

Every endpoint is a plain function taking a :class:`~sqlalchemy.orm.Session` and returning
JSON-able data, as a web framework's handler would after dependency injection. The planted
and fixed versions of one endpoint return the same data; only their SQL traffic differs.
:data:`ENDPOINTS` lists the pairs with the finding kinds sqlaudit must report for the planted
version; ``python -m sqlaudit demo`` audits each version as one unit of work named after its
route, e.g. ``"GET /streams (planted)"``, and checks that the fixed version is clean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Insert, func, insert, select
from sqlalchemy.orm import Session, joinedload, selectinload

from bff.gifts import send_gift_fixed, send_gift_planted
from bff.models import Comment, Point, Stamp, Stream, User

__all__ = ["ENDPOINTS", "EndpointPair"]

Endpoint = Callable[[Session], Any]


# -- GET /streams: the live stream list ----------------------------------------------------


def _stream_card(stream: Stream) -> dict[str, Any]:
    """One entry of the stream list; touches ``owner`` and ``comments``."""
    return {
        "id": stream.id,
        "title": stream.title,
        "game": stream.game,
        "viewers": stream.viewers,
        "streamer": stream.owner.display_name,
        "comment_count": len(stream.comments),
        "latest_comment": stream.comments[-1].body if stream.comments else None,
    }


def list_streams_planted(session: Session) -> list[dict[str, Any]]:
    """N+1: the list query loads streams only, so each card lazy-loads its owner and comments.

    One SELECT for the streams, then ``_stream_card`` triggers one lazy load of
    ``Stream.owner`` and one of ``Stream.comments`` per stream: 1 + 2N statements for N live
    streams, all from one line of the serializer, none of them visible in the query.
    """
    streams = session.scalars(
        select(Stream).where(Stream.is_live).order_by(Stream.viewers.desc(), Stream.id)
    ).all()
    return [_stream_card(stream) for stream in streams]


def list_streams_fixed(session: Session) -> list[dict[str, Any]]:
    """Fixed: the list query says what the cards need: owners joined, comments in one batch.

    ``joinedload(Stream.owner)`` adds the owner to the streams' SELECT (many-to-one, one row
    each); ``selectinload(Stream.comments)`` loads every stream's comments in one
    ``WHERE stream_id IN (...)`` query: 2 statements however many streams are live.
    """
    streams = session.scalars(
        select(Stream)
        .where(Stream.is_live)
        .order_by(Stream.viewers.desc(), Stream.id)
        .options(joinedload(Stream.owner), selectinload(Stream.comments))
    ).all()
    return [_stream_card(stream) for stream in streams]


# -- GET /streams/{stream_id}: one stream with its chat -------------------------------------


def _get_stream(session: Session, stream_id: int, *options: Any) -> Stream:
    stream = session.get(Stream, stream_id, options=options)
    if stream is None:
        raise LookupError(f"no stream with id {stream_id}")
    return stream


def stream_detail_planted(session: Session, stream_id: int = 1) -> dict[str, Any]:
    """Repeated query: the author of each comment is fetched with its own SELECT.

    The loop runs ``select(User).where(User.id == comment.user_id)`` once per comment: the
    same statement shape from the same line, one round trip per chat message.
    """
    stream = _get_stream(session, stream_id)
    comments = session.scalars(
        select(Comment).where(Comment.stream_id == stream_id).order_by(Comment.id)
    ).all()
    chat = []
    for comment in comments:
        author = session.execute(select(User).where(User.id == comment.user_id)).scalar_one()
        chat.append({"id": comment.id, "author": author.display_name, "body": comment.body})
    return {
        "id": stream.id,
        "title": stream.title,
        "streamer": stream.owner.display_name,
        "chat": chat,
    }


def stream_detail_fixed(session: Session, stream_id: int = 1) -> dict[str, Any]:
    """Fixed: every author the chat needs comes from one ``WHERE id IN (...)`` query.

    The owner is joined to the stream's SELECT, so the page costs 3 statements whatever the
    length of the chat.
    """
    stream = _get_stream(session, stream_id, joinedload(Stream.owner))
    comments = session.scalars(
        select(Comment).where(Comment.stream_id == stream_id).order_by(Comment.id)
    ).all()
    author_ids = sorted({comment.user_id for comment in comments})
    authors = {
        user.id: user for user in session.scalars(select(User).where(User.id.in_(author_ids)))
    }
    chat = [
        {"id": c.id, "author": authors[c.user_id].display_name, "body": c.body} for c in comments
    ]
    return {
        "id": stream.id,
        "title": stream.title,
        "streamer": stream.owner.display_name,
        "chat": chat,
    }


# -- POST /points/award: the weekly login bonus ----------------------------------------------


def _award(session: Session, user_id: int, amount: int, reason: str) -> None:
    """The service-layer helper the planted endpoint reuses: one ledger row, flushed."""
    session.add(Point(user_id=user_id, amount=amount, reason=reason))
    session.flush()


def _insert_many(session: Session, statement: Insert, rows: list[dict[str, Any]]) -> None:
    """One INSERT for all ``rows`` (executemany), in the session's transaction."""
    # The ORM spelling is ``session.execute(insert(Model), rows)``. sqlaudit's ORM listener
    # cannot handle ORM bulk DML yet (it reads load options, which only SELECTs have), so the
    # demo sends the same executemany through the session's own connection.
    session.connection().execute(statement, rows)


def award_points_planted(
    session: Session, amount: int = 100, reason: str = "weekly login bonus"
) -> dict[str, Any]:
    """Write loop: one INSERT per user, because a one-row helper is called in a loop.

    ``_award`` adds one ledger row and flushes it, so every user costs a round trip: the same
    single-row INSERT from the same call stack, once per user.
    """
    user_ids = session.scalars(select(User.id).order_by(User.id)).all()
    for user_id in user_ids:
        _award(session, user_id, amount, reason)
    session.commit()
    return {"awarded": len(user_ids), "amount": amount, "reason": reason}


def award_points_fixed(
    session: Session, amount: int = 100, reason: str = "weekly login bonus"
) -> dict[str, Any]:
    """Fixed: all ledger rows go in one executemany INSERT.

    Every row travels in one ``executemany`` (or one multi-row VALUES, depending on the
    driver): 2 statements for any number of users.
    """
    user_ids = session.scalars(select(User.id).order_by(User.id)).all()
    _insert_many(
        session,
        insert(Point),
        [{"user_id": user_id, "amount": amount, "reason": reason} for user_id in user_ids],
    )
    session.commit()
    return {"awarded": len(user_ids), "amount": amount, "reason": reason}


# -- POST /streams/{stream_id}/stamps: a burst of stamps from the chat queue -----------------

#: (sender id, stamp, price): the stamps the chat queue hands over in one batch.
STAMP_BURST: tuple[tuple[int, str, int], ...] = (
    (2, "clap", 100),
    (3, "heart", 200),
    (5, "fire", 500),
    (7, "gg", 100),
    (8, "cheer", 1000),
    (4, "clap", 100),
)


def send_stamps_planted(session: Session, stream_id: int = 1) -> dict[str, Any]:
    """Commit per row: each stamp of the burst is its own transaction (the autocommit habit).

    This is the shape OPENREC.tv's BFF had under per-statement transactions: a single-row
    INSERT and a COMMIT per stamp, so the burst is not atomic and pays a commit (a disk sync
    on the server) per row. sqlaudit reports the INSERTs as a write loop.
    """
    for sender_id, name, price in STAMP_BURST:
        session.add(Stamp(stream_id=stream_id, user_id=sender_id, name=name, price=price))
        session.commit()
    return {"stream_id": stream_id, "sent": len(STAMP_BURST), "total": _burst_total()}


def send_stamps_fixed(session: Session, stream_id: int = 1) -> dict[str, Any]:
    """Fixed: the whole burst is one executemany INSERT in one transaction, committed once."""
    _insert_many(
        session,
        insert(Stamp),
        [
            {"stream_id": stream_id, "user_id": sender_id, "name": name, "price": price}
            for sender_id, name, price in STAMP_BURST
        ],
    )
    session.commit()
    return {"stream_id": stream_id, "sent": len(STAMP_BURST), "total": _burst_total()}


def _burst_total() -> int:
    return sum(price for _, _, price in STAMP_BURST)


# -- GET /me: the viewer's own page, under a query budget ------------------------------------

#: The statement budget of GET /me: a profile page should not need more.
ME_BUDGET = 3


def _points_balance(session: Session, user_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Point.amount), 0)).where(Point.user_id == user_id)
    )
    return int(total or 0)


def _count_comments(session: Session, user_id: int) -> int:
    return int(
        session.scalar(select(func.count(Comment.id)).where(Comment.user_id == user_id)) or 0
    )


def _count_stamps_sent(session: Session, user_id: int) -> int:
    return int(session.scalar(select(func.count(Stamp.id)).where(Stamp.user_id == user_id)) or 0)


def _stamp_income(session: Session, user_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(Stamp.price), 0))
        .join(Stream, Stamp.stream_id == Stream.id)
        .where(Stream.owner_id == user_id)
    )
    return int(total or 0)


def my_page_planted(session: Session, user_id: int = 1) -> dict[str, Any]:
    """Over budget: every widget of the page runs its own query, 6 statements for budget 3.

    No single statement is wrong and none repeats; the page just grew one helper (and one
    round trip) per widget. The query budget is what catches this kind of slow creep.
    """
    user = session.get(User, user_id)
    if user is None:
        raise LookupError(f"no user with id {user_id}")
    streams = session.scalars(
        select(Stream).where(Stream.owner_id == user_id).order_by(Stream.id)
    ).all()
    return {
        "handle": user.handle,
        "display_name": user.display_name,
        "points": _points_balance(session, user_id),
        "comments_posted": _count_comments(session, user_id),
        "stamps_sent": _count_stamps_sent(session, user_id),
        "stamp_income": _stamp_income(session, user_id),
        "streams": [{"id": s.id, "title": s.title} for s in streams],
    }


def my_page_fixed(session: Session, user_id: int = 1) -> dict[str, Any]:
    """Fixed: the counters are correlated scalar subqueries of the profile's own SELECT.

    One statement for the profile and its four numbers, one for the user's streams
    (``selectinload(User.streams)``): 2 statements, within the budget of 3.
    """
    points = (
        select(func.coalesce(func.sum(Point.amount), 0))
        .where(Point.user_id == User.id)
        .scalar_subquery()
    )
    comments = select(func.count(Comment.id)).where(Comment.user_id == User.id).scalar_subquery()
    sent = select(func.count(Stamp.id)).where(Stamp.user_id == User.id).scalar_subquery()
    income = (
        select(func.coalesce(func.sum(Stamp.price), 0))
        .join(Stream, Stamp.stream_id == Stream.id)
        .where(Stream.owner_id == User.id)
        .scalar_subquery()
    )
    row = session.execute(
        select(User, points, comments, sent, income)
        .where(User.id == user_id)
        .options(selectinload(User.streams))
    ).one_or_none()
    if row is None:
        raise LookupError(f"no user with id {user_id}")
    user = row[0]
    return {
        "handle": user.handle,
        "display_name": user.display_name,
        "points": int(row[1]),
        "comments_posted": int(row[2]),
        "stamps_sent": int(row[3]),
        "stamp_income": int(row[4]),
        "streams": [{"id": s.id, "title": s.title} for s in sorted(user.streams, key=_by_id)],
    }


def _by_id(stream: Stream) -> int:
    return stream.id


# -- the registry the demo runs ---------------------------------------------------------------


@dataclass(frozen=True)
class EndpointPair:
    """One endpoint in its planted and fixed versions, and what sqlaudit must say about them."""

    #: Short name for ``sqlaudit demo --only``, e.g. ``"list_streams"``.
    key: str
    #: The route, used as the audit's unit name with " (planted)" / " (fixed)" appended.
    route: str
    planted: Endpoint
    fixed: Endpoint
    #: Finding kinds the planted version must produce (the fixed one must produce none).
    expect: frozenset[str]
    #: ``sqlaudit.audit(...)`` settings for both versions, e.g. a query budget.
    audit_options: Mapping[str, Any] = field(default_factory=dict)


ENDPOINTS: tuple[EndpointPair, ...] = (
    EndpointPair(
        "list_streams",
        "GET /streams",
        list_streams_planted,
        list_streams_fixed,
        frozenset({"n_plus_one"}),
    ),
    EndpointPair(
        "stream_detail",
        "GET /streams/{stream_id}",
        stream_detail_planted,
        stream_detail_fixed,
        frozenset({"repeated_query"}),
    ),
    EndpointPair(
        "award_points",
        "POST /points/award",
        award_points_planted,
        award_points_fixed,
        frozenset({"write_loop"}),
    ),
    EndpointPair(
        "send_stamps",
        "POST /streams/{stream_id}/stamps",
        send_stamps_planted,
        send_stamps_fixed,
        frozenset({"write_loop"}),
    ),
    EndpointPair(
        "my_page",
        "GET /me",
        my_page_planted,
        my_page_fixed,
        frozenset({"query_budget"}),
        {"max_queries": ME_BUDGET},
    ),
    # Last: the planted version leaves the viewer's coins debited (that is its story).
    EndpointPair(
        "send_gift",
        "POST /streams/{stream_id}/gifts",
        send_gift_planted,
        send_gift_fixed,
        frozenset(
            {
                "autocommit_writes",
                "ineffective_rollback",
                "stale_identity_map",
                "autocommit_read_modify_write",
            }
        ),
    ),
)
