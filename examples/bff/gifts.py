"""POST /streams/{stream_id}/gifts: a viewer pays coins for a gift to the streamer, written
twice: on an AUTOCOMMIT engine (the seed's story), and in one transaction.

This is the problem behind sqlaudit (JetBrains Exposed issue #306, an ORM run on auto-commit
to save round trips): each statement commits on its own, so the payment is not atomic, a
rollback undoes nothing, and the session's identity map outlives every one of those
transactions and serves stale rows. Both versions fail the same way (the streamer's wallet is
frozen) and return the same response; only the planted one leaves the viewer charged for a
gift that was never delivered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bff.models import Stamp, Stream, Wallet

__all__ = ["GiftRejectedError", "send_gift_fixed", "send_gift_planted"]


class GiftRejectedError(Exception):
    """The streamer's wallet cannot receive coins."""


def _credit(wallet: Wallet | None, price: int) -> None:
    if wallet is None or wallet.frozen:
        raise GiftRejectedError("the streamer's wallet is frozen")
    wallet.balance += price


def _refused(stream_id: int, reason: str) -> dict[str, Any]:
    return {"stream_id": stream_id, "sent": False, "error": reason}


def send_gift_planted(
    session: Session, stream_id: int = 1, sender_id: int = 2, price: int = 500
) -> dict[str, Any]:
    """Autocommit (the Exposed problem): the gift is paid on an AUTOCOMMIT engine, to save a
    BEGIN and a COMMIT per request. The debit and the stamp are committed the moment they are
    flushed; when the credit fails, rollback() undoes nothing, so the viewer pays for nothing;
    the wallets' re-read returns the viewer's wallet from the identity map, not the database;
    and the new balance is written back as an absolute value, so a concurrent top-up is lost.

    The session the endpoint receives is replaced by one on
    ``engine.execution_options(isolation_level="AUTOCOMMIT")``, as a service configured that
    way would do for every request.
    """
    fast = session.get_bind().execution_options(isolation_level="AUTOCOMMIT")
    with Session(fast) as auto:
        wallet = auto.get(Wallet, sender_id)  # the balance check, before anything else
        stream = auto.get(Stream, stream_id)
        if wallet is None or stream is None or wallet.balance < price:
            return _refused(stream_id, "insufficient coins")
        # Re-reads the viewer's wallet: under autocommit that was another transaction, and the
        # identity map keeps the object it already holds, whatever the database says now.
        query = select(Wallet).where(Wallet.user_id.in_((sender_id, stream.owner_id)))
        wallets = {w.user_id: w for w in auto.scalars(query)}
        try:
            wallets[sender_id].balance -= price  # written back as SET balance = ?
            auto.add(Stamp(stream_id=stream_id, user_id=sender_id, name="gift", price=price))
            auto.flush()  # the debit and the stamp: each committed at once
            _credit(wallets.get(stream.owner_id), price)
            auto.commit()
        except GiftRejectedError as exc:
            auto.rollback()  # believes it undid the debit; it undid nothing
            return _refused(stream_id, str(exc))
    return {"stream_id": stream_id, "sent": True, "price": price}


def send_gift_fixed(
    session: Session, stream_id: int = 1, sender_id: int = 2, price: int = 500
) -> dict[str, Any]:
    """Fixed: one transaction per request. Both wallets are read locked (with_for_update), the
    debit, the stamp and the credit commit together, and a failed credit rolls all of them
    back for real.
    """
    try:
        with session.begin():
            stream = session.get(Stream, stream_id)
            if stream is None:
                return _refused(stream_id, "insufficient coins")
            query = (
                select(Wallet)
                .where(Wallet.user_id.in_((sender_id, stream.owner_id)))
                .order_by(Wallet.user_id)
                .with_for_update()
            )
            wallets = {w.user_id: w for w in session.scalars(query)}
            sender = wallets.get(sender_id)
            if sender is None or sender.balance < price:
                return _refused(stream_id, "insufficient coins")
            sender.balance -= price  # safe: the row is locked until the commit
            session.add(Stamp(stream_id=stream_id, user_id=sender_id, name="gift", price=price))
            session.flush()
            _credit(wallets.get(stream.owner_id), price)
    except GiftRejectedError as exc:
        return _refused(stream_id, str(exc))
    return {"stream_id": stream_id, "sent": True, "price": price}
