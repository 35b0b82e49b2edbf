"""An admin-style CRUD on plain Starlette (``tests/realapps/starlette_admin``, in the manner of
sqladmin: generic ``/{identity}/list``, ``/{identity}/details/{pk}``... endpoints run by
Starlette in worker threads on a sync engine, and a JSON API of async endpoints on an
aiosqlite engine) and its own suite with ``TestClient``, run through the pytest plugin in fail
mode (issue 16, item 7): clean tests pass, the two planted N+1s (one sync, one async) fail
their tests named after the route template (never the path), at the right line, and a second
run finds exactly what the first did."""

from __future__ import annotations

from pathlib import Path

import pytest
from lines import line_of
from realapps import failed, lay_out, only_planted, run_suite

pytest_plugins = ("pytester",)

APP = "starlette_admin"
ORDER_LIST = "tests/test_admin.py::test_order_list"
CUSTOMER_ORDERS = "tests/test_api.py::test_customer_orders"


def planted(root: Path) -> dict[str, tuple[str, str, str, str, int, str]]:
    """The planted N+1s: failing test -> ``(kind, unit, location, loop, count, headline)``."""

    def at(path: str, text: str) -> str:
        return f"{path}:{line_of(str(root / path), text)}"

    views, api = "admin/views.py", "admin/api.py"
    return {
        ORDER_LIST: (
            "n_plus_one",
            "GET /admin/{identity}/list",  # the mount and route templates, not /admin/order/list
            at(views, "obj = getattr(obj, part)"),
            # The loop over the rows, not value()'s loop over the parts of "customer.name"
            at(views, "for row in rows]"),
            2,  # two customers: the identity map serves the other four orders' customer
            "N+1: Order.customer lazy-loaded 2x, once per Order (2 parents); the Order rows "
            f"came from the query at {at(views, 'rows = db.scalars(view.list_query())')} (6 rows)",
        ),
        CUSTOMER_ORDERS: (
            "n_plus_one",
            "GET /api/customers/{customer_id}/orders",
            at(api, "await order.awaitable_attrs.product"),
            at(api, "for order in orders:"),
            3,
            "N+1: Order.product lazy-loaded 3x, once per Order (3 parents); the Order rows came "
            f"from the query at {at(api, 'orders of one customer')} "
            "(3 rows)",
        ),
    }


def check_suite(pytester: pytest.Pytester, root: Path) -> dict[str, list[object]]:
    """Run the suite; check outcomes and findings; return each test's findings."""
    result, tests = run_suite(pytester, "-W", "ignore::DeprecationWarning")
    expected = planted(root)
    assert failed(result) == sorted(expected), result.stdout.str()
    assert len(tests) == 12
    findings: dict[str, list[object]] = dict(only_planted(tests, expected))
    return findings


def test_starlette_admin_suite(pytester: pytest.Pytester) -> None:
    """Create, edit and list in one test; the same details page four times; creates and
    deletes from the sync admin and the async API: no finding. The list view's N+1 (sync, in a
    worker thread) and the API's (async, ``awaitable_attrs``) fail their tests, named after
    the route templates; two runs, the same findings."""
    root = lay_out(pytester, APP)
    first = check_suite(pytester, root)
    assert check_suite(pytester, root) == first
