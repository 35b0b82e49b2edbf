"""The shop's JSON API: async endpoints on the async engine (aiosqlite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from admin.models import Customer, Order


def sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.async_sessions
    return maker


def as_json(order: Order, product: Any) -> dict[str, Any]:
    return {"id": order.id, "product": product.name, "quantity": order.quantity}


async def list_orders(request: Request) -> JSONResponse:
    async with sessions(request)() as session:
        query = select(Order).options(selectinload(Order.product)).order_by(Order.id)
        orders = (await session.scalars(query)).all()
        return JSONResponse([as_json(order, order.product) for order in orders])


async def customer(request: Request) -> JSONResponse:
    async with sessions(request)() as session:
        found = await session.get(Customer, request.path_params["customer_id"])
        if found is None:
            raise HTTPException(404)
        return JSONResponse({"id": found.id, "name": found.name, "email": found.email})


async def customer_orders(request: Request) -> JSONResponse:
    async with sessions(request)() as session:
        query = (
            select(Order)
            .where(Order.customer_id == request.path_params["customer_id"])
            .order_by(Order.id)
        )
        orders = (await session.scalars(query)).all()  # orders of one customer
        result = []
        for order in orders:
            product = await order.awaitable_attrs.product  # lazy load per order
            result.append(as_json(order, product))
        return JSONResponse(result)


async def create_order(request: Request) -> JSONResponse:
    data = await request.json()
    async with sessions(request)() as session, session.begin():
        order = Order(**data)
        session.add(order)
        await session.flush()
        await session.refresh(order, ["product"])
        created = as_json(order, order.product)
    return JSONResponse(created, status_code=201)


routes = [
    Route("/orders", list_orders),
    Route("/orders", create_order, methods=["POST"]),
    Route("/customers/{customer_id:int}", customer),
    Route("/customers/{customer_id:int}/orders", customer_orders),
]
