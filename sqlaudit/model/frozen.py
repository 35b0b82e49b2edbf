"""Building sqlaudit's frozen, slotted dataclasses once per unit without their ``__init__``.

A frozen dataclass's generated ``__init__`` sets each field through a Python-level
``object.__setattr__`` call, and ``dataclasses.replace`` first reads every field through
``fields()`` and then calls that ``__init__``: building a ``UnitRecord`` (18 fields) or
re-building a ``Finding`` (16) cost more than the unit's close did otherwise (issue 20).
``build`` and ``evolve`` set the same slots with the same values in one C-level pass.

Only for dataclasses that are frozen, slotted, with every field ``init=True`` and no
``__post_init__``: their generated ``__init__`` does nothing but set the fields (``_spec``
checks it, else TypeError). Their public constructors stay as they are.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter
from typing import Any, TypeVar

__all__ = ["assign", "build", "evolve"]

T = TypeVar("T")

_setattr = object.__setattr__
_new = object.__new__
#: Per class: its field names in order, and a getter of all their values at once.
_SPECS: dict[type, tuple[tuple[str, ...], attrgetter[Any]]] = {}


def _spec(cls: type) -> tuple[tuple[str, ...], attrgetter[Any]]:
    spec = _SPECS.get(cls)
    if spec is None:
        params = getattr(cls, "__dataclass_params__", None)
        fields = dataclasses.fields(cls) if params is not None else ()
        if (
            params is None
            or not params.frozen
            or "__slots__" not in cls.__dict__
            or hasattr(cls, "__post_init__")
            or not all(f.init for f in fields)
            or len(fields) < 2
        ):
            raise TypeError(f"{cls.__name__} cannot be built without its __init__")
        names = tuple(f.name for f in fields)
        spec = _SPECS[cls] = (names, attrgetter(*names))
    return spec


def assign(obj: object, names: Iterable[str], values: Iterable[Any]) -> None:
    """Set ``obj``'s attributes ``names`` to ``values`` in one C-level pass (bypassing a frozen
    class's ``__setattr__``): what a generated ``__init__`` does one Python call at a time."""
    any(map(_setattr, repeat(obj), names, values))  # each call returns None: any() runs all


def build(cls: type[T], /, **values: Any) -> T:
    """``cls(**values)`` without running its ``__init__``: every field, named in field order
    (else TypeError, so that a field added to ``cls`` cannot be left unset)."""
    spec = _SPECS.get(cls)
    names = (spec if spec is not None else _spec(cls))[0]
    if tuple(values) != names:
        raise TypeError(f"{cls.__name__} needs its fields {names} in order, got {tuple(values)}")
    obj = _new(cls)
    assign(obj, names, values.values())
    return obj


def evolve(obj: T, /, **changes: Any) -> T:
    """``dataclasses.replace(obj, **changes)`` without running ``__init__``."""
    cls = type(obj)
    spec = _SPECS.get(cls)
    names, get = spec if spec is not None else _spec(cls)
    values = dict(zip(names, get(obj), strict=True))
    if not changes.keys() <= values.keys():  # told in C
        name = next(name for name in changes if name not in values)
        raise TypeError(f"{cls.__name__} has no field {name!r}")
    values.update(changes)
    new = _new(cls)
    assign(new, values.keys(), values.values())
    return new
