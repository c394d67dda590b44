"""Finding plugin classes by name: short aliases, Kafka's class names, or ``module:Class``."""

from __future__ import annotations

from typing import Any

from rillet._imports import import_object, split_spec

from .errors import PluginNotFoundError

CONNECTOR_ALIASES = {
    "file-source": "rillet.connectors.builtin.file:FileSourceConnector",
    "file-sink": "rillet.connectors.builtin.file:FileSinkConnector",
    "sqlite-source": "rillet.connectors.builtin.sqlite_source:SqliteSourceConnector",
    "sqlite-sink": "rillet.connectors.builtin.sqlite_sink:SqliteSinkConnector",
    # the names Kafka's quickstart files use
    "FileStreamSource": "rillet.connectors.builtin.file:FileSourceConnector",
    "FileStreamSink": "rillet.connectors.builtin.file:FileSinkConnector",
    "org.apache.kafka.connect.file.FileStreamSourceConnector":
        "rillet.connectors.builtin.file:FileSourceConnector",
    "org.apache.kafka.connect.file.FileStreamSinkConnector":
        "rillet.connectors.builtin.file:FileSinkConnector",
    "SqliteSource": "rillet.connectors.builtin.sqlite_source:SqliteSourceConnector",
    # MirrorMaker 2's connectors (docs/mirror.md, "Connector mode"), by Kafka's names too
    **{f"{prefix}Mirror{kind}Connector": f"rillet.connectors.mirror.connect:Mirror{kind}Connector"
       for prefix in ("", "org.apache.kafka.connect.mirror.")
       for kind in ("Source", "Checkpoint", "Heartbeat")},
    "SqliteSink": "rillet.connectors.builtin.sqlite_sink:SqliteSinkConnector",
}


def load_class(name: str, kind: str, aliases: dict[str, Any] | None = None) -> Any:
    """Resolve ``name`` (an alias, ``pkg.mod:Class`` or ``pkg.mod.Class``) to an object."""
    target = (aliases or {}).get(name, name)
    if not isinstance(target, str):
        return target
    if ":" not in target and "." not in target:
        known = ", ".join(sorted(a for a in (aliases or {}) if "." not in a))
        raise PluginNotFoundError(kind, name, f"not a known name ({known}) nor module:Class")
    module_name, attr = split_spec(target)
    try:
        return import_object(target)
    except ImportError as e:
        raise PluginNotFoundError(kind, name, f"cannot import {module_name}: {e}") from e
    except AttributeError:
        raise PluginNotFoundError(kind, name, f"{module_name} has no {attr}") from None


def load_connector_class(name: str) -> type:
    from .api import SinkConnector, SourceConnector

    cls = load_class(name, "connector.class", CONNECTOR_ALIASES)
    if not (isinstance(cls, type) and issubclass(cls, SourceConnector | SinkConnector)):
        raise PluginNotFoundError("connector.class", name,
                                  "not a SourceConnector or SinkConnector subclass")
    return cls
