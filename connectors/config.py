"""Worker and connector configuration: files, typed keys, validation with did-you-mean hints.

Config files may be JSON (flat, or Connect's REST body ``{"name": ..., "config": {...}}``),
TOML (flat with quoted dotted keys, or nested tables, which are flattened with dots) or Kafka
``.properties``. Keys are Kafka Connect's (``bootstrap.servers``, ``connector.class``,
``tasks.max``, ``transforms.a.type``, ``errors.tolerance``, ...).

:class:`ConfigDef` declares keys with a type and default; :meth:`ConfigDef.parse` returns the
typed values or raises one :class:`ConnectConfigError` listing every problem, each unknown key
with its closest known key (``unknown key 'tasks.mx' (did you mean 'tasks.max'?)``).
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rillet.frozen import frozen
from rillet.profile import default_brokers

from .errors import ConnectConfigError

_MISSING = object()


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a .json, .toml or .properties (any other suffix) file into a flat dict."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConnectConfigError([f"cannot read {p}: {e.strerror or e}"], source=str(p)) from e
    try:
        if p.suffix == ".json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ConnectConfigError(["a JSON config must be an object"], source=str(p))
            if isinstance(data.get("config"), dict):  # the REST body shape
                flat = dict(data["config"])
                if "name" in data:
                    flat.setdefault("name", data["name"])
                return flat
            return data
        if p.suffix == ".toml":
            return flatten(tomllib.loads(text))
        return parse_properties(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConnectConfigError([f"cannot parse {p.name}: {e}"], source=str(p)) from e


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"transforms": {"a": {"type": "X"}}}`` -> ``{"transforms.a.type": "X"}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties: ``key=value`` or ``key: value``, ``#``/``!`` comments, a trailing
    backslash continues the line."""
    out: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.strip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical += line[:-1]
            continue
        logical += line
        seps = [i for i in (logical.find("="), logical.find(":")) if i >= 0]
        if seps:
            i = min(seps)
            key, value = logical[:i].strip(), logical[i + 1:].strip()
        else:
            key, value = logical.strip(), ""
        out[key] = value
        logical = ""
    return out


# --- typed keys -------------------------------------------------------------------------------


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {v!r}")


def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(f"expected an integer, got {v!r}")
    if isinstance(v, int):
        return v
    try:
        return int(str(v).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {v!r}") from None


def _to_list(v: Any) -> list[str]:
    if isinstance(v, list | tuple):
        return [str(x).strip() for x in v if str(x).strip()]
    return [x.strip() for x in str(v).split(",") if x.strip()]


def _to_str(v: Any) -> str:
    if isinstance(v, dict | list):
        raise ValueError(f"expected a string, got {v!r}")
    return str(v)


PARSERS: dict[str, Callable[[Any], Any]] = {
    "string": _to_str, "int": _to_int, "bool": _to_bool, "list": _to_list,
}


@frozen
class ConfigKey:
    """One config key. ``choices`` restricts the (string) value; ``default`` _MISSING means
    required."""

    name: str
    type: str = "string"
    default: Any = _MISSING
    doc: str = ""
    choices: tuple[str, ...] = ()
    minimum: int | None = None

    @property
    def required(self) -> bool:
        return self.default is _MISSING


def key(name: str, type: str = "string", default: Any = _MISSING, doc: str = "",
        choices: Iterable[str] = (), minimum: int | None = None) -> ConfigKey:
    return ConfigKey(name, type, default, doc, tuple(choices), minimum)


class ConfigDef:
    """A set of keys, plus prefixes under which any key is accepted (``producer.``) and keys
    accepted but ignored (copied from Kafka configs that do not apply here)."""

    def __init__(self, keys: Iterable[ConfigKey] = (), prefixes: Iterable[str] = (),
                 ignored: Iterable[str] = ()) -> None:
        self.keys = {k.name: k for k in keys}
        self.prefixes = tuple(prefixes)
        self.ignored = frozenset(ignored)

    def __add__(self, other: ConfigDef) -> ConfigDef:
        return ConfigDef([*self.keys.values(), *other.keys.values()],
                         self.prefixes + other.prefixes, self.ignored | other.ignored)

    def knows(self, name: str) -> bool:
        return (name in self.keys or name in self.ignored
                or any(name.startswith(p) for p in self.prefixes))

    def parse(self, raw: Mapping[str, Any], *, source: str = "config",
              allow_unknown: bool = False) -> dict[str, Any]:
        """Typed values for every declared key (defaults filled in), plus the prefixed keys
        as given. Raises ConnectConfigError listing all problems."""
        problems: list[str] = []
        out: dict[str, Any] = {}
        for name, k in self.keys.items():
            if name not in raw or raw[name] is None or raw[name] == "" and k.type != "string":
                if k.required:
                    problems.append(f"missing required key {name!r}"
                                    + (f" ({k.doc})" if k.doc else ""))
                else:
                    out[name] = k.default
                continue
            try:
                value = PARSERS[k.type](raw[name])
            except ValueError as e:
                problems.append(f"{name}: {e}")
                continue
            if k.choices and value not in k.choices:
                problems.append(bad_choice_message(name, value, k.choices))
                continue
            if k.minimum is not None and value < k.minimum:
                problems.append(f"{name}: must be >= {k.minimum}, got {value}")
                continue
            out[name] = value
        for name, value in raw.items():
            if name in self.keys:
                continue
            if self.knows(name) or allow_unknown:
                out[name] = value
                continue
            problems.append(unknown_key_message(name, self.keys))
        if problems:
            raise ConnectConfigError(problems, source=source)
        return out


def unknown_key_message(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {name!r}{hint}"


def bad_choice_message(name: str, value: Any, choices: Iterable[str]) -> str:
    """``transaction.boundary: 'pol' is not one of poll, interval, connector (did you mean
    'poll'?)``."""
    choices = list(choices)
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name}: {value!r} is not one of {', '.join(choices)}{hint}"


def sub_config(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``sub_config({"transforms.a.regex": "x"}, "transforms.a.")`` -> ``{"regex": "x"}``."""
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


# --- the worker -------------------------------------------------------------------------------

WORKER_DEF = ConfigDef(
    [
        key("bootstrap.servers", doc="host:port of one or more brokers; default "
                                     "$RILLET_BROKERS, then the `rillet cluster up` profile"),
        key("rest.host.name", default="127.0.0.1"),
        key("rest.port", "int", 8083, doc="0 picks a free port (printed at start)", minimum=0),
        key("offset.flush.interval.ms", "int", 10000, minimum=1),
        key("offset.storage.topic", default="connect-offsets"),
        key("offset.storage.partitions", "int", 1, minimum=1),
        key("offset.storage.replication.factor", "int", 1, minimum=1),
        key("key.converter", default="json"),
        key("value.converter", default="json"),
        key("task.shutdown.graceful.timeout.ms", "int", 5000, minimum=0),
        key("worker.id", default=""),
        key("group.id", default="", doc="prefix of the source tasks' transactional ids "
                                        "(exactly.once.source.support=enabled)"),
        # KIP-618 (docs/connect.md, "Exactly-once source connectors"): enabled = every source
        # task writes its records and source offsets in one transaction
        key("exactly.once.source.support", default="disabled",
            choices=("disabled", "enabled", "preparing")),
        # Kafka's plugin.path: where `module:Class` connectors, converters and transforms are
        # imported from (besides the installed packages and the worker's working directory)
        key("plugin.path", "list", [],
            doc="directories to import connector/converter/transform modules from"),
    ],
    prefixes=("producer.", "consumer.", "admin.", "key.converter.", "value.converter."),
    # keys of Kafka's connect-standalone.properties that mean nothing here, accepted so a
    # copied file works
    ignored=("offset.storage.file.filename", "listeners",
             "config.storage.topic", "status.storage.topic", "header.converter"),
)

# keys every connector has (Kafka's ConnectorConfig + SinkConnectorConfig)
CONNECTOR_DEF = ConfigDef(
    [
        key("name", doc="a unique connector name"),
        key("connector.class", doc="file-source, file-sink, sqlite-source, sqlite-sink or "
                                   "package.module:Class"),
        key("tasks.max", "int", 1, minimum=1),
        key("key.converter", default=None),
        key("value.converter", default=None),
        key("transforms", "list", []),
        key("predicates", "list", []),
        key("errors.tolerance", default="none", choices=("none", "all")),
        key("errors.retry.timeout", "int", 0, minimum=-1),
        key("errors.retry.delay.max.ms", "int", 60000, minimum=1),
        key("errors.log.enable", "bool", False),
        key("errors.log.include.messages", "bool", False),
        key("errors.deadletterqueue.topic.name", default=""),
        key("errors.deadletterqueue.topic.replication.factor", "int", 1, minimum=1),
        key("errors.deadletterqueue.context.headers.enable", "bool", True),
        key("topic.creation.default.partitions", "int", 1, minimum=1),
        key("topic.creation.default.replication.factor", "int", 1, minimum=1),
        key("topics", "list", []),
        key("topics.regex", default=""),
        # KIP-618 (source connectors; used when the worker has exactly.once.source.support=
        # enabled)
        key("exactly.once.support", default="requested", choices=("requested", "required")),
        key("transaction.boundary", default="poll", choices=("poll", "interval", "connector")),
        key("transaction.boundary.interval.ms", "int", None, minimum=1,
            doc="default: the worker's offset.flush.interval.ms"),
    ],
    prefixes=("transforms.", "predicates.", "key.converter.", "value.converter.",
              "producer.override.", "consumer.override."),
    ignored=("header.converter", "config.action.reload"),
)


def parse_worker_config(raw: Mapping[str, Any], source: str = "worker config") -> dict[str, Any]:
    """Typed worker config; ``bootstrap.servers`` defaults to $RILLET_BROKERS, then the
    profile ``rillet cluster up`` wrote (as for every rillet client)."""
    raw = dict(raw)
    if not raw.get("bootstrap.servers"):
        found = default_brokers()
        if found:
            raw["bootstrap.servers"] = found[1]
    return WORKER_DEF.parse(raw, source=source)
