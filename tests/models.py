"""ORM models shared by sqlaudit's tests (tables prefixed ``sqlaudit_t_``, see conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import (
    DeclarativeBase,
    DynamicMapped,
    Mapped,
    Session,
    mapped_column,
    relationship,
)

import sqlaudit


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "sqlaudit_t_author"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    books: Mapped[list[Book]] = relationship(back_populates="author", order_by="Book.id")
    books_query: DynamicMapped[Book] = relationship(lazy="dynamic", viewonly=True)


class Book(Base):
    __tablename__ = "sqlaudit_t_book"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    author_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_author.id"))
    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book", order_by="Review.id")


class Review(Base):
    __tablename__ = "sqlaudit_t_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    stars: Mapped[int]
    book_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_book.id"))
    book: Mapped[Book] = relationship(back_populates="reviews")


def seed(session: Session, authors: int = 5, books_each: int = 2, reviews_each: int = 1) -> None:
    """Deterministic rows: ``authors`` authors with ``books_each`` books with reviews."""
    book_id = 0
    review_id = 0
    for a in range(1, authors + 1):
        author = Author(id=a, name=f"author {a}")
        for _ in range(books_each):
            book_id += 1
            book = Book(id=book_id, title=f"book {book_id}")
            for _ in range(reviews_each):
                review_id += 1
                book.reviews.append(Review(id=review_id, stars=review_id % 5 + 1))
            author.books.append(book)
        session.add(author)
    session.commit()


@contextmanager
def prepared(engine: Engine, **seed_args: int) -> Iterator[Engine]:
    """``engine`` with fresh, seeded tables and sqlaudit instrumentation; undone afterwards."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session, **seed_args)
    handle = sqlaudit.instrument(engine)
    try:
        yield engine
    finally:
        handle.remove()
        Base.metadata.drop_all(engine)
