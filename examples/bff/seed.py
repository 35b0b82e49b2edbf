"""Deterministic seed data: 8 users, 6 live streams, comments, stamps, points and wallets.

The same rows on every run and every database, so the demo's statement counts are stable.
Users and streams get explicit ids (the endpoints address them by id); comments, stamps and
points are numbered by the database, because the endpoints insert more of them.
"""

from __future__ import annotations

from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from bff.models import Base, Comment, Point, Stamp, Stream, User, Wallet

__all__ = ["drop_schema", "reset_schema", "seed"]

USERS = [
    ("akari", "Akari"),
    ("haru", "Haru"),
    ("kaito", "Kaito"),
    ("mio", "Mio"),
    ("ren", "Ren"),
    ("sora", "Sora"),
    ("yui", "Yui"),
    ("zen", "Zen"),
]
STREAMS = [
    ("Ranked grind to Diamond", "Apex Legends"),
    ("Speedrun practice: any%", "Celeste"),
    ("Chill farming night", "Stardew Valley"),
    ("Tournament scrims", "VALORANT"),
    ("First playthrough!", "Elden Ring"),
    ("Puzzle Sunday", "Tetris 99"),
]
COMMENTS = ["first!", "gg", "nice clutch", "what rank is this?", "lol", "hype", "888"]
STAMP_NAMES = ["clap", "heart", "fire", "gg", "cheer"]
#: Coins in every wallet; the wallet of user 1 (the owner of stream 1) is frozen.
WALLET_BALANCE = 1000


def reset_schema(engine: Engine) -> None:
    """Drop the ``bff_*`` tables if a previous run left them, then create them afresh."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)


def drop_schema(engine: Engine) -> None:
    """Drop the ``bff_*`` tables (the demo leaves nothing behind in a shared database)."""
    Base.metadata.drop_all(engine)


def seed(session: Session) -> None:
    """Insert the demo rows and commit. Every stream has 3 to 5 comments and 2 or 3 stamps."""
    session.execute(
        insert(User),
        [
            {"id": i, "handle": handle, "display_name": name}
            for i, (handle, name) in enumerate(USERS, 1)
        ],
    )
    session.execute(
        insert(Stream),
        [
            {"id": i, "owner_id": i, "title": title, "game": game, "viewers": 100 * i + 7}
            for i, (title, game) in enumerate(STREAMS, 1)
        ],
    )
    n_users = len(USERS)
    comments = []
    stamps = []
    for stream_id in range(1, len(STREAMS) + 1):
        for k in range(3 + stream_id % 3):
            comments.append(
                {
                    "stream_id": stream_id,
                    "user_id": (stream_id + 2 * k) % n_users + 1,
                    "body": COMMENTS[(stream_id + k) % len(COMMENTS)],
                }
            )
        for k in range(2 + stream_id % 2):
            stamps.append(
                {
                    "stream_id": stream_id,
                    "user_id": (stream_id * 3 + k) % n_users + 1,
                    "name": STAMP_NAMES[(stream_id + k) % len(STAMP_NAMES)],
                    "price": 100 * (k + 1),
                }
            )
    session.execute(insert(Comment), comments)
    session.execute(insert(Stamp), stamps)
    session.execute(
        insert(Point),
        [
            {"user_id": user_id, "amount": 50 * user_id, "reason": "welcome bonus"}
            for user_id in range(1, n_users + 1)
        ],
    )
    session.execute(
        insert(Wallet),
        [
            {"user_id": user_id, "balance": WALLET_BALANCE, "frozen": user_id == 1}
            for user_id in range(1, n_users + 1)
        ],
    )
    session.commit()
