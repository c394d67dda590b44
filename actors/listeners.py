"""Kafka's ``listeners`` / ``advertised.listeners`` configs: which sockets a broker binds, and
which addresses it tells clients and other brokers to use.

Both are comma-separated ``NAME://HOST:PORT`` lists, as in Kafka's server.properties:

    listeners=CLIENT://0.0.0.0:9092,BROKER://0.0.0.0:9093,KAFKA://0.0.0.0:9094
    advertised.listeners=CLIENT://db1.example.com:9092,KAFKA://db1.example.com:9094

Listener names rillet knows (``LISTENER_NAMES``):

* ``CLIENT``: the native protocol (ZeroMQ + CBOR) for clients, the ``--listen`` address;
* ``BROKER``: the inter-broker listener (Raft, heartbeats, replication; CURVE), the
  ``--internal-listen`` address, what ``controller.quorum.voters`` names;
* ``KAFKA``: Kafka's own wire protocol, for Kafka clients (kcat, confluent-kafka, ...).

An empty host binds every interface (Kafka's habit, ``KAFKA://:9092``); port 0 picks a free
port. ``advertised.listeners`` may name a subset; a listener it does not name is advertised
at its bound address, and a listener bound to a wildcard (0.0.0.0, ::, empty) must be given
an advertised address (Kafka refuses to advertise 0.0.0.0 too). A ``ConfigError`` names the
bad entry; nothing here touches a socket.
"""

from __future__ import annotations

from dataclasses import dataclass

from rillet.actors.configs import ConfigError

LISTENER_NAMES = ("CLIENT", "BROKER", "KAFKA")
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int

    @property
    def address(self) -> str:
        """``HOST:PORT`` (an IPv6 host keeps its brackets)."""
        return f"{self.host}:{self.port}"

    @property
    def wildcard(self) -> bool:
        return self.host in WILDCARD_HOSTS


def parse_listeners(text: str, key: str = "listeners") -> dict[str, Listener]:
    """``NAME://HOST:PORT,...`` -> ``{NAME: Listener}``; '' -> {}."""
    out: dict[str, Listener] = {}
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        name, sep, rest = raw.partition("://")
        if not sep:
            raise ConfigError(f"{key}: {raw!r} is not NAME://HOST:PORT")
        name = name.strip().upper()
        if name not in LISTENER_NAMES:
            from difflib import get_close_matches

            close = get_close_matches(name, LISTENER_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{key}: unknown listener name {name!r} (known: {', '.join(LISTENER_NAMES)}){hint}"
            )
        if name in out:
            raise ConfigError(f"{key}: listener {name} is given twice")
        host, colon, port = rest.rpartition(":")
        if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(f"{key}: {raw!r} needs a port 0-65535 (NAME://HOST:PORT)")
        if host.startswith("[") != host.endswith("]"):
            raise ConfigError(f"{key}: {raw!r} has an unbalanced IPv6 bracket")
        out[name] = Listener(name, host, int(port))
    return out


def advertised_addresses(bound: dict[str, Listener], advertised_text: str) -> dict[str, str]:
    """The ``HOST:PORT`` each bound listener is advertised at: its ``advertised.listeners``
    entry, else its bound address (with the port the socket really got, so pass listeners
    whose port 0 has been resolved). An advertised name that is not bound, an advertised
    wildcard host, or a wildcard bound listener with no advertised entry is a ConfigError."""
    advertised = parse_listeners(advertised_text, "advertised.listeners")
    for name in advertised:
        if name not in bound:
            raise ConfigError(f"advertised.listeners: {name} is not a bound listener")
    out: dict[str, str] = {}
    for name, listener in bound.items():
        if name in advertised:
            entry = advertised[name]
            if entry.wildcard:
                raise ConfigError(
                    f"advertised.listeners: {name} advertises the wildcard host "
                    f"{entry.host or '(empty)'!r}; name a host clients can reach"
                )
            port = entry.port or listener.port
            out[name] = f"{entry.host}:{port}"
        elif listener.wildcard:
            raise ConfigError(
                f"listeners: {name} binds the wildcard host {listener.host or '(empty)'!r}; "
                f"give advertised.listeners an address for it that clients can reach"
            )
        else:
            out[name] = listener.address
    return out
