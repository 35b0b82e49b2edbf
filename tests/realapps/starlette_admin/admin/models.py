from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "sqlaudit_t_shop_customer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120))
    orders: Mapped[list[Order]] = relationship(back_populates="customer", order_by="Order.id")


class Product(Base):
    __tablename__ = "sqlaudit_t_shop_product"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    price: Mapped[int]


class Order(Base):
    __tablename__ = "sqlaudit_t_shop_order"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_shop_customer.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_shop_product.id"))
    quantity: Mapped[int]
    customer: Mapped[Customer] = relationship(back_populates="orders")
    product: Mapped[Product] = relationship()


class Activity(Base):
    """The admin's activity log, written after each change."""

    __tablename__ = "sqlaudit_t_shop_activity"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(200))
