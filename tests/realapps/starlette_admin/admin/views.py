"""An admin in the manner of sqladmin: one ``ModelView`` per model, generic CRUD endpoints
routed by the model's identity (``/{identity}/list``, ``/{identity}/details/{pk}``, ...).
The endpoints are plain functions: Starlette runs them in a worker thread."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import Route

from admin.models import Activity, Base, Customer, Order, Product


@dataclass
class ModelView:
    model: type[Base]
    identity: str
    column_list: Sequence[str]
    form_columns: Sequence[str]
    #: Relationships the list page loads with the rows.
    list_load: Sequence[str] = ()
    #: Loader options of the details page.
    details_options: Sequence[Any] = field(default_factory=list)

    def list_query(self) -> Any:
        query = select(self.model).order_by(self.model.id)  # type: ignore[attr-defined]
        for name in self.list_load:
            query = query.options(selectinload(getattr(self.model, name)))
        return query

    def value(self, obj: Any, column: str) -> str:
        for part in column.split("."):
            obj = getattr(obj, part)
        return html.escape(str(obj))


VIEWS = {
    view.identity: view
    for view in (
        ModelView(
            Customer,
            "customer",
            column_list=["id", "name", "email"],
            form_columns=["name", "email"],
            details_options=[selectinload(Customer.orders).joinedload(Order.product)],
        ),
        ModelView(Product, "product", ["id", "name", "price"], ["name", "price"]),
        ModelView(
            Order,
            "order",
            column_list=["id", "customer.name", "product.name", "quantity"],
            form_columns=["customer_id", "product_id", "quantity"],
            list_load=["product"],
            details_options=[selectinload(Order.customer), selectinload(Order.product)],
        ),
    )
}


def get_view(request: Request) -> ModelView:
    view = VIEWS.get(request.path_params["identity"])
    if view is None:
        raise HTTPException(404)
    return view


def session(request: Request) -> Session:
    engine: Engine = request.app.state.engine
    return Session(engine)


def list_view(request: Request) -> HTMLResponse:
    view = get_view(request)
    with session(request) as db:
        rows = db.scalars(view.list_query()).all()
        cells = [[view.value(row, column) for column in view.column_list] for row in rows]
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in cells)
    return HTMLResponse(f"<table class='{view.identity}'>{body}</table>")


def details_view(request: Request) -> HTMLResponse:
    view = get_view(request)
    with session(request) as db:
        obj = db.get(view.model, request.path_params["pk"], options=view.details_options)
        if obj is None:
            raise HTTPException(404)
        fields = "".join(
            f"<dt>{column}</dt><dd>{view.value(obj, column)}</dd>" for column in view.column_list
        )
        if isinstance(obj, Customer):
            fields += "".join(
                f"<li>{order.quantity} x {html.escape(order.product.name)}</li>"
                for order in obj.orders
            )
    return HTMLResponse(f"<dl>{fields}</dl>")


async def _form(request: Request, view: ModelView) -> dict[str, Any]:
    form = await request.form()
    values: dict[str, Any] = {}
    for column in view.form_columns:
        value = str(form[column])
        values[column] = int(value) if value.isdigit() else value
    return values


def _create(request: Request, view: ModelView, values: dict[str, Any]) -> int:
    with session(request) as db:
        obj = view.model(**values)
        db.add(obj)
        db.commit()
        return obj.id  # type: ignore[attr-defined, no-any-return]


def log_activity(engine: Engine, action: str) -> None:
    """Run after the response is sent (a background task)."""
    with Session(engine) as db:
        db.add(Activity(action=action))
        db.commit()


async def create_view(request: Request) -> RedirectResponse:
    view = get_view(request)
    pk = await run_in_threadpool(_create, request, view, await _form(request, view))
    return RedirectResponse(
        f"{request.url_for('admin:details', identity=view.identity, pk=pk)}",
        303,
        background=BackgroundTask(
            log_activity, request.app.state.engine, f"created {view.identity} {pk}"
        ),
    )


def _save(request: Request, view: ModelView, values: dict[str, Any]) -> None:
    with session(request) as db:
        obj = db.get(view.model, request.path_params["pk"])
        if obj is None:
            raise HTTPException(404)
        for column, value in values.items():
            setattr(obj, column, value)
        db.commit()


async def edit_view(request: Request) -> RedirectResponse:
    view = get_view(request)
    await run_in_threadpool(_save, request, view, await _form(request, view))
    return RedirectResponse(
        f"{request.url_for('admin:details', identity=view.identity, pk=request.path_params['pk'])}",
        303,
    )


def delete_view(request: Request) -> RedirectResponse:
    view = get_view(request)
    with session(request) as db:
        obj = db.get(view.model, request.path_params["pk"])
        if obj is None:
            raise HTTPException(404)
        db.delete(obj)
        db.commit()
    return RedirectResponse(f"{request.url_for('admin:list', identity=view.identity)}", 303)


routes = [
    Route("/{identity}/list", list_view, name="list"),
    Route("/{identity}/details/{pk:int}", details_view, name="details"),
    Route("/{identity}/create", create_view, methods=["POST"], name="create"),
    Route("/{identity}/edit/{pk:int}", edit_view, methods=["POST"], name="edit"),
    Route("/{identity}/delete/{pk:int}", delete_view, methods=["POST"], name="delete"),
]
