"""``@frozen``: ``@dataclass(frozen=True, slots=True)`` made cheaper to define.

Every rillet process (each broker, each CLI command, each client) defines ~450 frozen
dataclasses on start-up, and ``dataclass`` compiles six methods for each with one ``exec``
apiece: about half of a broker's import time. ``@frozen`` lets ``dataclass`` do the fields,
slots and ``__match_args__`` with no generated methods, compiles ``__init__``, ``__eq__`` and
``__hash__`` in one go and gives the rest as closures over the field names. The behaviour is
the same: keyword or positional ``__init__`` with defaults and default factories; ``repr``,
``==`` and ``hash`` over the fields (``compare``/``repr``/``hash`` field options kept); a
class's own methods kept; ``FrozenInstanceError`` on assignment;
``dataclasses.fields/replace/asdict``; copy and pickle. A class it does not cover
(``__post_init__``, ``InitVar``, fields with ``init=False`` or their own ``kw_only``, a
dataclass base) gets plain ``dataclass``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError
from typing import Any, TypeVar, dataclass_transform, overload

C = TypeVar("C", bound=type)
_set = object.__setattr__
_FACTORY = object()  # the default of a field with a default factory


def _plain(cls: type, kw_only: bool) -> bool:
    """True when ``cls`` (before ``dataclass``) has nothing ``@frozen``'s methods lack: no
    ``__post_init__``, no dataclass base, no ``InitVar``/``KW_ONLY`` annotation, no field
    with ``init=False`` or a ``kw_only`` of its own."""
    if "__post_init__" in dir(cls) or any(map(dataclasses.is_dataclass, cls.__mro__[1:])):
        return False
    if any("InitVar" in str(a) or "KW_ONLY" in str(a)
           for a in cls.__dict__.get("__annotations__", {}).values()):
        return False
    return not any(isinstance(v, dataclasses.Field)
                   and (not v.init or v.kw_only not in (MISSING, kw_only))
                   for v in cls.__dict__.values())


def _compiled(cls: type, kw_only: bool) -> dict[str, Callable[..., Any]]:
    """``__init__``, ``__eq__`` and ``__hash__`` of ``cls`` as straight-line code, compiled in
    one go (closures over the field names cost ~60% more per ``==`` or ``hash``)."""
    fields = dataclasses.fields(cls)
    env: dict[str, Any] = {"_set": _set, "_FACTORY": _FACTORY}
    params, lines = [], []
    for f in fields:
        n = f.name
        if f.default is not MISSING:
            env[f"_d_{n}"] = f.default
            params.append(f"{n}=_d_{n}")
            lines.append(f"    _set(self, {n!r}, {n})")
        elif f.default_factory is not MISSING:
            env[f"_f_{n}"] = f.default_factory
            params.append(f"{n}=_FACTORY")
            lines.append(f"    _set(self, {n!r}, _f_{n}() if {n} is _FACTORY else {n})")
        else:
            if not kw_only and len(params) != sum("=" not in p for p in params):
                raise TypeError(f"non-default argument {n!r} follows default argument")
            params.append(n)
            lines.append(f"    _set(self, {n!r}, {n})")

    def values(of: str, names: list[str]) -> str:
        return "(" + "".join(f"{of}.{n}," for n in names) + ")"

    compared = [f.name for f in fields if f.compare]
    hashed = [f.name for f in fields if (f.compare if f.hash is None else f.hash)]
    head = ", *, " if kw_only else ", "
    src = (f"def __init__(self{head + ', '.join(params) if params else ''}):\n"
           + ("\n".join(lines) if lines else "    pass") + "\n"
           "def __eq__(self, other):\n"
           "    if other.__class__ is self.__class__:\n"
           f"        return {values('self', compared)} == {values('other', compared)}\n"
           "    return NotImplemented\n"
           "def __hash__(self):\n"
           f"    return hash({values('self', hashed)})\n")
    exec(compile(src, f"<frozen {cls.__qualname__}>", "exec"), env)  # noqa: S102 - our source
    return {name: env[name] for name in ("__init__", "__eq__", "__hash__")}


def _finish(cls: type, kw_only: bool) -> type:
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    shown = tuple(f.name for f in fields if f.repr)
    made = _compiled(cls, kw_only)

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"{type(self).__qualname__}({inner})"

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    def __getstate__(self: Any) -> list:
        return [getattr(self, n) for n in names]

    def __setstate__(self: Any, state: list) -> None:
        for n, v in zip(names, state, strict=True):
            _set(self, n, v)

    own = cls.__dict__
    # as dataclass: a method the class defines itself is kept (a __hash__ of None is the one
    # Python adds beside a class's own __eq__, not an explicit one)
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    for fn in (made["__init__"], __repr__, made["__eq__"], made["__hash__"], __setattr__,
               __delattr__, __getstate__, __setstate__):
        if fn.__name__ in ("__setattr__", "__delattr__") and fn.__name__ in own:
            raise TypeError(f"cannot overwrite attribute {fn.__name__} in class "
                            f"{cls.__name__}")
        if fn.__name__ == "__hash__" and explicit_hash:
            continue
        if fn.__name__ in own and fn.__name__ != "__hash__":
            continue
        fn.__qualname__ = f"{cls.__qualname__}.{fn.__name__}"
        setattr(cls, fn.__name__, fn)
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init = params.repr = params.eq = params.frozen = True  # what it now is
    return cls


@overload
def frozen(cls: C, /) -> C: ...
@overload
def frozen(*, kw_only: bool = False) -> Callable[[C], C]: ...


@dataclass_transform(frozen_default=True)
def frozen(cls: Any = None, /, *, kw_only: bool = False) -> Any:
    """``@frozen`` or ``@frozen(kw_only=True)``: ``@dataclass(frozen=True, slots=True[,
    kw_only=True])``, defined at half the cost (module docstring)."""
    def wrap(c: type) -> type:
        if not _plain(c, kw_only):
            return dataclasses.dataclass(c, frozen=True, slots=True, kw_only=kw_only)
        return _finish(dataclasses.dataclass(c, init=False, repr=False, eq=False, slots=True,
                                             kw_only=kw_only), kw_only)

    return wrap if cls is None else wrap(cls)
