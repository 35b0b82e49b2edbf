"""A blog: the Flask tutorial's shape (app factory, blueprints, templates) on Flask-SQLAlchemy,
with a token API beside the HTML pages."""

from __future__ import annotations

from typing import Any

from flask import Flask

from blog.extensions import db


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(
        SECRET_KEY="dev",
        SQLALCHEMY_DATABASE_URI="sqlite:///blog.sqlite",
    )
    if config:
        app.config.from_mapping(config)
    db.init_app(app)

    from blog import api, auth, posts

    app.register_blueprint(auth.bp)
    app.register_blueprint(posts.bp)
    app.register_blueprint(api.bp)
    app.add_url_rule("/", endpoint="index")
    return app
