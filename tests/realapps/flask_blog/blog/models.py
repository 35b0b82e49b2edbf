from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blog.extensions import db


class User(db.Model):
    __tablename__ = "sqlaudit_t_blog_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120))
    posts: Mapped[list[Post]] = relationship(back_populates="author")


class Post(db.Model):
    __tablename__ = "sqlaudit_t_blog_post"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_blog_user.id"))
    author: Mapped[User] = relationship(back_populates="posts")
    comments: Mapped[list[Comment]] = relationship(
        back_populates="post", order_by="Comment.id", cascade="all, delete-orphan"
    )


class Comment(db.Model):
    __tablename__ = "sqlaudit_t_blog_comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_blog_post.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_blog_user.id"))
    body: Mapped[str] = mapped_column(Text)
    post: Mapped[Post] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()


class ApiToken(db.Model):
    __tablename__ = "sqlaudit_t_blog_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_blog_user.id"))
    user: Mapped[User] = relationship()
