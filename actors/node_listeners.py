"""Which addresses a broker binds and which it advertises, for its CLIENT and BROKER
listeners (``listeners`` / ``advertised.listeners``, parsed by actors/listeners.py).

``bind_addresses``: a CLIENT / BROKER entry of ``listeners`` wins over ``--listen`` /
``--internal-listen``. ``advertise``: after binding (ports resolved), the ``HOST:PORT`` the
broker registers for clients (Metadata's host/port) and for other brokers (its inter-broker
address, the voters' default); a wildcard bind with no advertised entry is a ConfigError, as
in Kafka. The KAFKA listener is wired elsewhere; it is only checked here.
"""

from __future__ import annotations

from collections.abc import Mapping

from rillet.actors.listeners import Listener, advertised_addresses, parse_listeners


def bind_addresses(
    listen: str | None, internal_listen: str | None, configs: Mapping[str, str]
) -> tuple[str, str]:
    """(client bind, inter-broker bind) as ``HOST:PORT``."""
    bound = parse_listeners(configs.get("listeners", ""))
    if "CLIENT" in bound:
        listen = bound["CLIENT"].address
    if listen is None:
        from rillet.actors.configs import ConfigError

        raise ConfigError("no client listener: give --listen or listeners=CLIENT://HOST:PORT")
    if "BROKER" in bound:
        internal_listen = bound["BROKER"].address
    # default: the client listener's host, any free port
    return listen, internal_listen or f"{listen.rsplit(':', 1)[0]}:0"


def _listener(name: str, address: str) -> Listener:
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    return Listener(name, host, int(port))


def advertise(
    client_bound: str, internal_bound: str, configs: Mapping[str, str]
) -> tuple[str, str]:
    """(client advertised, inter-broker advertised) ``HOST:PORT`` for these bound addresses
    (``tcp://`` prefixes allowed)."""
    bound = dict(parse_listeners(configs.get("listeners", "")))
    bound["CLIENT"] = _listener("CLIENT", client_bound)
    bound["BROKER"] = _listener("BROKER", internal_bound)
    out = advertised_addresses(bound, configs.get("advertised.listeners", ""))
    return out["CLIENT"], out["BROKER"]
