"""``@frozen`` behaves as ``@dataclass(frozen=True, slots=True)`` (rillet/frozen.py): each
check runs on a class made both ways and compares."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from rillet.frozen import frozen


class _Point:
    x: int
    y: str = "y"
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)
    note: str = field(default="", compare=False, repr=False)


def _copy(name: str, decorate):
    cls = decorate(type(name, (), {k: v for k, v in vars(_Point).items()
                                   if k not in ("__dict__", "__weakref__")}))
    cls.__qualname__ = name  # module-level name: picklable
    globals()[name] = cls
    return cls


PAIRS = {kw: (_copy(f"Made{kw}", frozen(kw_only=kw)),
              _copy(f"Plain{kw}", dataclass(frozen=True, slots=True, kw_only=kw)))
         for kw in (False, True)}


def _pair(kw_only: bool = False):
    return PAIRS[kw_only]


@pytest.mark.parametrize("kw_only", [False, True])
def test_the_same_behaviour_as_a_frozen_slotted_dataclass(kw_only) -> None:
    made, plain = _pair(kw_only)
    assert made.__dict__.get("__dataclass_params__").frozen
    for cls in (made, plain):
        a = cls(x=1, tags=("t",))
        assert (a.x, a.y, a.tags, a.extra) == (1, "y", ("t",), {})
        assert cls(x=1).extra is not cls(x=1).extra  # a fresh default each time
        assert a == cls(x=1, tags=("t",)) and a != cls(x=2, tags=("t",))
        assert a != (1, "y", ("t",), {})
        # a compare=False field counts for neither == nor hash, a repr=False one is not shown
        noted, other = cls(x=1, extra=None, note="n"), cls(x=1, extra=None, note="m")
        assert noted == other and hash(noted) == hash(other)
        assert "note" not in repr(noted)
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.x = 3
        with pytest.raises(dataclasses.FrozenInstanceError):
            del a.y
        assert not hasattr(a, "__dict__")  # slots
        assert [f.name for f in dataclasses.fields(cls)] == ["x", "y", "tags", "extra", "note"]
        assert dataclasses.replace(a, y="z") == cls(x=1, y="z", tags=("t",))
        assert dataclasses.asdict(a) == {"x": 1, "y": "y", "tags": ("t",), "extra": {},
                                     "note": ""}
        assert cls.__match_args__ == ("x", "y", "tags", "extra", "note") or kw_only
        for copied in (copy.copy(a), copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
            assert copied == a and copied is not a
        with pytest.raises(TypeError):
            cls()  # x is required
        with pytest.raises(TypeError):
            cls(x=1, nope=2)
    assert repr(made(x=1))[4:] == repr(plain(x=1))[5:]  # Made... / Plain...
    hashable = made(x=1, tags=("t",), extra=None)  # hash over the fields, as dataclass
    assert hash(hashable) == hash(plain(x=1, tags=("t",), extra=None))
    if kw_only:
        with pytest.raises(TypeError):
            made(1)
    else:
        assert made(1, "b") == made(x=1, y="b")


def test_a_frozen_dataclass_may_extend_it_and_odd_classes_get_plain_dataclass() -> None:
    made, _ = _pair()

    @dataclass(frozen=True, slots=True)
    class Child(made):
        z: int = 0

    c = Child(1, z=2)
    assert (c.x, c.z) == (1, 2) and c == Child(1, z=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.z = 1

    @frozen
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    with pytest.raises(ValueError):
        Checked(-1)
    assert Checked(1).n == 1

    @frozen
    class Secret:
        key: bytes

        def __repr__(self) -> str:  # its own: kept, as dataclass keeps it
            return "Secret(...)"

    assert repr(Secret(b"k")) == "Secret(...)" and Secret(b"k") == Secret(b"k")

    with pytest.raises(TypeError):
        @frozen
        class Bad:
            a: int = 0
            b: int
