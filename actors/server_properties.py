"""Kafka's ``server.properties``: the file format and the key names, mapped onto one broker.

    rillet broker start --config server.properties [-c KEY=VALUE ...]

The file is a Java properties file (``java.util.Properties.load``): ``#`` / ``!`` comment
lines, ``key=value``, ``key: value`` or ``key value``, backslash escapes (``\\t``, ``\\n``,
``\\uXXXX``, ``\\=`` ...), and a line ending in an odd number of backslashes continues on the
next one (its leading blanks dropped). ``-c KEY=VALUE`` overrides win over the file.

Keys that name the broker's identity rather than a config (``load_server_properties``):

* ``node.id`` (or its older name ``broker.id``; both given must agree): the broker id;
* ``process.roles``: ``broker,controller`` (this node must then be one of
  ``controller.quorum.voters``) or ``broker`` (it must not be). A controller-only node does
  not exist in rillet: every controller is a broker too;
* ``log.dirs`` (or ``log.dir``): the data directory; one directory, rillet keeps one per
  broker;
* ``listeners``: ``CLIENT://HOST:PORT`` is the client listener (required), ``BROKER://...`` the
  inter-broker one (default: the client host, any free port) - see actors/listeners.py;
* ``log.retention.ms`` / ``.minutes`` / ``.hours`` and ``log.roll.ms`` / ``.hours``: Kafka's
  precedence (ms over minutes over hours), stored as the ``.ms`` key.

Every other key is a broker config (actors/configs.py). Every wrong entry gets one line
(unknown keys with a did-you-mean hint); ``ServerPropertiesError`` carries them all.
Pure: reads the file it is given, nothing else.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

from rillet.actors.configs import BROKER_DEFAULTS, ConfigError, validate_broker_configs
from rillet.actors.controller import parse_voters
from rillet.actors.listeners import parse_listeners
from rillet.actors.node_listeners import advertise

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}

# identity keys and time-unit synonyms this module consumes itself
_IDENTITY_KEYS = ("node.id", "broker.id", "process.roles", "log.dirs", "log.dir")
_UNIT_KEYS = {
    "log.retention.ms": (("log.retention.minutes", 60_000), ("log.retention.hours", 3_600_000)),
    "log.roll.ms": (("log.roll.hours", 3_600_000),),
}
# Kafka keys with no meaning in rillet: refused with what to do instead
_KAFKA_ONLY = {
    "controller.listener.names": "rillet's controllers listen on the BROKER listener; "
    "remove it (controller.quorum.voters names BROKER addresses)",
    "inter.broker.listener.name": "brokers always talk on the BROKER listener; remove it",
    "listener.security.protocol.map": "the listener names fix the protocols (CLIENT, BROKER, "
    "KAFKA; actors/listeners.py); remove it",
    "zookeeper.connect": "rillet has no ZooKeeper; use controller.quorum.voters",
}


class ServerPropertiesError(ConfigError):
    """Every wrong entry of a server.properties (and its overrides), one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class ServerSettings:
    """What one ``rillet broker start`` runs: BrokerNode's arguments."""

    node_id: int
    data_dir: Path
    listen: str
    internal_listen: str | None
    configs: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------- the file format


def _logical_lines(text: str):
    """(line number, logical line): comments and blank lines dropped, continuations joined."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):  # a continuation at the end of the file
            line = line[:-1]
        yield start + 1, line


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _unescape(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\" or i + 1 == len(s):
            out.append(c)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "u" and len(s) >= i + 6:
            try:
                out.append(chr(int(s[i + 2 : i + 6], 16)))
                i += 6
                continue
            except ValueError:
                raise ValueError(f"bad unicode escape \\u{s[i + 2 : i + 6]}") from None
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """A Java properties text -> ``{key: value}`` (a repeated key: the last wins, as in Java).
    ``ValueError`` (with the line number) for a malformed escape."""
    out: dict[str, str] = {}
    for number, line in _logical_lines(text):
        i = 0
        while i < len(line):
            c = line[i]
            if c == "\\":
                i += 2
                continue
            if c in "=: \t\f":
                break
            i += 1
        key, rest = line[:i], line[i:]
        rest = rest.lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        try:
            out[_unescape(key)] = _unescape(rest)
        except ValueError as e:
            raise ValueError(f"line {number}: {e}") from None
    return out


# ---------------------------------------------------------------------------- the key names


def _known_keys() -> list[str]:
    units = [k for synonyms in _UNIT_KEYS.values() for k, _ in synonyms]
    return [*BROKER_DEFAULTS, *_IDENTITY_KEYS, *units]


def _hint(key: str) -> str:
    close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _int(props: dict[str, str], key: str, problems: list[str]) -> int | None:
    value = props[key].strip()
    if not value.lstrip("-").isdigit():
        problems.append(f"{key}={props[key]!r} is not an integer")
        return None
    return int(value)


def settings_from_properties(props: dict[str, str], source: str = "") -> ServerSettings:
    """Map Kafka's keys onto one broker; ``ServerPropertiesError`` lists every wrong entry."""
    problems: list[str] = []
    props = {k.strip(): v.strip() for k, v in props.items()}
    configs: dict[str, str] = {}
    for key, value in props.items():
        if key in _IDENTITY_KEYS or any(key == k for s in _UNIT_KEYS.values() for k, _ in s):
            continue
        if key in _KAFKA_ONLY:
            problems.append(f"{key}: not used by rillet: {_KAFKA_ONLY[key]}")
        elif key not in BROKER_DEFAULTS:
            problems.append(f"unknown broker config {key!r}{_hint(key)}")
        else:
            configs[key] = value
    # the time-unit synonyms: ms over minutes over hours (Kafka's precedence)
    for ms_key, synonyms in _UNIT_KEYS.items():
        if ms_key in configs:
            continue
        for key, factor in synonyms:
            if key in props:
                n = _int(props, key, problems)
                if n is not None:
                    configs[ms_key] = str(n * factor if n >= 0 else -1)
                break
    # the broker id
    node_id = None
    ids = {k: _int(props, k, problems) for k in ("node.id", "broker.id") if k in props}
    if not ids:
        problems.append("node.id is missing (this broker's id, e.g. node.id=1)")
    elif len(set(ids.values())) > 1:
        problems.append(f"node.id={props.get('node.id')} and broker.id={props.get('broker.id')} "
                        "differ; give one")
    else:
        node_id = next(iter(ids.values()))
        if node_id is not None and node_id < 0:
            problems.append(f"node.id={node_id} must be >= 0")
            node_id = None
    # the data directory
    data_dir = None
    dirs_key = "log.dirs" if "log.dirs" in props else "log.dir" if "log.dir" in props else None
    if dirs_key is None:
        problems.append("log.dirs is missing (this broker's data directory)")
    else:
        dirs = [d.strip() for d in props[dirs_key].split(",") if d.strip()]
        if len(dirs) != 1:
            problems.append(f"{dirs_key}={props[dirs_key]!r}: give exactly one directory "
                            "(rillet keeps one data directory per broker)")
        else:
            data_dir = Path(dirs[0]).expanduser()
    # listeners
    listen = internal = None
    try:
        bound = parse_listeners(configs.get("listeners", ""))
        if "CLIENT" not in bound:
            problems.append("listeners must name a CLIENT listener, e.g. "
                            "listeners=CLIENT://0.0.0.0:9092,BROKER://0.0.0.0:9093")
        else:
            listen = bound["CLIENT"].address
        if "BROKER" in bound:
            internal = bound["BROKER"].address
    except ConfigError as e:
        problems.append(str(e))
    # process.roles against controller.quorum.voters
    voters: dict[int, str] = {}
    try:
        voters = parse_voters(configs.get("controller.quorum.voters", ""))
    except ConfigError as e:
        problems.append(str(e))
    roles_text = props.get("process.roles", "broker,controller")
    roles = {r.strip() for r in roles_text.split(",") if r.strip()}
    if not roles or roles - {"broker", "controller"}:
        problems.append(f"process.roles={roles_text!r}; valid values: broker, "
                        "broker,controller")
    elif "broker" not in roles:
        problems.append("process.roles=controller: rillet has no controller-only node; every "
                        "controller is a broker too (process.roles=broker,controller)")
    elif node_id is not None and voters:
        if "controller" in roles and node_id not in voters:
            problems.append(f"process.roles includes controller but node.id={node_id} is not "
                            "in controller.quorum.voters")
        if "controller" not in roles and node_id in voters:
            problems.append(f"process.roles=broker but node.id={node_id} is one of "
                            "controller.quorum.voters; add controller to process.roles")
    # every broker config's value (only when the keys are right, so each problem shows once)
    if not problems:
        try:
            validate_broker_configs(configs)
            advertise(listen, internal or f"{listen.rsplit(':', 1)[0]}:0", configs)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        where = f"{source}: " if source else ""
        raise ServerPropertiesError([where + p for p in problems])
    assert node_id is not None and data_dir is not None and listen is not None
    return ServerSettings(node_id, data_dir, listen, internal, configs)


def load_server_properties(path: Path, overrides: dict[str, str] | None = None) -> ServerSettings:
    """Read ``path``, apply ``overrides`` (``-c KEY=VALUE``), map it (see the module doc)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ServerPropertiesError([f"cannot read {path}: {e.strerror or e}"]) from None
    try:
        props = parse_properties(text)
    except ValueError as e:
        raise ServerPropertiesError([f"{path}: {e}"]) from None
    return settings_from_properties({**props, **(overrides or {})}, str(path))
