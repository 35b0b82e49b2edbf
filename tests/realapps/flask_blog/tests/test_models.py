# ruff: noqa: PT009 - unittest style on purpose: the suite is written as such projects write it
"""Model tests in unittest style (an app and an app context per test, pushed in ``setUp``), as
Flask projects that predate pytest fixtures write them."""

import os
import unittest

from blog import create_app
from blog.extensions import db
from blog.models import ApiToken, Comment, Post, User
from blog.repository import PostRepository, UserRepository
from sqlalchemy import func, select


class ModelCase(unittest.TestCase):
    def setUp(self):
        self.app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": os.environ.get("BLOG_DATABASE_URL", "sqlite://"),
            }
        )
        self.app_context = self.app.app_context()
        self.app_context.push()
        db.drop_all()
        db.create_all()
        self.john = User(username="john", name="John", email="john@example.com")
        self.susan = User(username="susan", name="Susan", email="susan@example.com")
        db.session.add_all([self.john, self.susan])
        db.session.commit()

    def tearDown(self):
        db.session.remove()
        db.drop_all()
        self.app_context.pop()

    def test_posts_of_each_user(self):
        db.session.add_all(
            [
                Post(title="one", body=".", author=self.john),
                Post(title="two", body=".", author=self.john),
                Post(title="three", body=".", author=self.susan),
            ]
        )
        db.session.commit()
        self.assertEqual(len(self.john.posts), 2)
        self.assertEqual(len(self.susan.posts), 1)

    def test_repository_add_and_update(self):
        posts = PostRepository(db.session)
        post = posts.add(self.john, "Draft", "...")
        posts.update(post, "Final", "Done.")
        self.assertEqual(posts.get(post.id).title, "Final")
        count = db.session.scalar(select(func.count()).select_from(Post))
        self.assertEqual(count, 1)

    def test_comments_with_authors(self):
        posts = PostRepository(db.session)
        post = posts.add(self.john, "Hello", "...")
        posts.comment(post, self.susan, "Hi!")
        posts.comment(post, self.john, "Welcome.")
        post_id = post.id
        db.session.expunge_all()
        loaded = posts.get(post_id)
        self.assertEqual([c.author.name for c in loaded.comments], ["Susan", "John"])

    def test_token(self):
        db.session.add(ApiToken(token="t-1", user=self.susan))
        db.session.commit()
        users = UserRepository(db.session)
        self.assertEqual(users.for_token("t-1").username, "susan")
        self.assertIsNone(users.for_token("t-2"))

    def test_delete_post_deletes_comments(self):
        posts = PostRepository(db.session)
        post = posts.add(self.john, "Hello", "...")
        posts.comment(post, self.susan, "Hi!")
        db.session.delete(post)
        db.session.commit()
        self.assertEqual(db.session.scalar(select(func.count()).select_from(Comment)), 0)
