"""``module:attribute`` (or ``module.attribute``) names of objects in config values: a
connector, converter or transform class, a serde, a partitioner."""

from __future__ import annotations

import importlib
from typing import Any


def split_spec(spec: str) -> tuple[str, str]:
    """``"pkg.mod:Obj.attr"`` -> ``("pkg.mod", "Obj.attr")``; without a colon the last dotted
    part is the attribute (``"pkg.mod.Obj"`` -> ``("pkg.mod", "Obj")``)."""
    module, _, attr = spec.partition(":") if ":" in spec else spec.rpartition(".")
    return module, attr


def import_object(spec: str) -> Any:
    """The object ``spec`` names; ImportError or AttributeError if there is none."""
    module, attr = split_spec(spec)
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
