"""Where the job tests find their Redis (Celery's broker and result backend, RQ's queue).

``SQLAUDIT_TEST_REDIS_URL`` if set, else the local server this project's machines run
(``redis://127.0.0.1:6379/0``). When it does not answer, the test is skipped, or fails when
``SQLAUDIT_REQUIRE_SERVERS=1`` (CI), as for the database servers (``databases.py``). Each test
uses keys and queues under a prefix of its own (``prefix()``) and deletes them afterwards, so
runs sharing one Redis do not meet.
"""

from __future__ import annotations

import os
import uuid

import pytest
from databases import servers_required
from redis import Redis

REDIS_ENV = "SQLAUDIT_TEST_REDIS_URL"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def redis_url() -> str:
    """The URL of an answering Redis, else skip (or fail) the calling test."""
    url = os.environ.get(REDIS_ENV) or LOCAL_REDIS
    try:
        with Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except Exception as exc:
        reason = f"sqlaudit test broker: no Redis answers at {url} ({exc}); set {REDIS_ENV}"
        if servers_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def prefix() -> str:
    """A fresh key and queue prefix."""
    return f"sqlaudit-test-{uuid.uuid4().hex[:12]}"


def delete_prefixed(url: str, prefix: str) -> None:
    """Delete every key containing ``prefix`` (queues, jobs, results of one test)."""
    with Redis.from_url(url) as client:
        keys = list(client.scan_iter(f"*{prefix}*"))
        if keys:
            client.delete(*keys)
