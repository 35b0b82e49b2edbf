"""Queries live here, not in the views (a repository per aggregate)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from blog.models import ApiToken, Comment, Post, User


class PostRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def recent(self, limit: int = 20) -> Sequence[Post]:
        query = (
            select(Post)
            .options(joinedload(Post.author), selectinload(Post.comments))
            .order_by(Post.id.desc())
            .limit(limit)
        )
        return self.session.scalars(query).unique().all()

    def archive(self) -> Sequence[Post]:
        return self.session.scalars(select(Post).order_by(Post.id)).all()

    def get(self, post_id: int) -> Post | None:
        query = (
            select(Post)
            .where(Post.id == post_id)
            .options(
                joinedload(Post.author),
                selectinload(Post.comments).joinedload(Comment.author),
            )
        )
        return self.session.scalars(query).unique().one_or_none()

    def add(self, author: User, title: str, body: str) -> Post:
        post = Post(author=author, title=title, body=body)
        self.session.add(post)
        self.session.commit()
        return post

    def update(self, post: Post, title: str, body: str) -> None:
        post.title = title
        post.body = body
        self.session.commit()

    def comment(self, post: Post, author: User, body: str) -> Comment:
        comment = Comment(post=post, author=author, body=body)
        self.session.add(comment)
        self.session.commit()
        return comment


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def by_username(self, username: str) -> User | None:
        return self.session.scalars(select(User).where(User.username == username)).first()

    def for_token(self, token: str) -> User | None:
        found = self.session.scalars(select(ApiToken).where(ApiToken.token == token)).first()
        return found.user if found is not None else None
