"""The KAFKA listener's dispatch table: api key -> handler (docs/kafka-compat.md).

Adding APIs: write a module ``actors/kafka_<area>.py`` whose handlers are decorated with
``@api(KEY, MIN_VERSION, MAX_VERSION)``, and add its import path to ``HANDLER_MODULES``
below (one line). ApiVersions advertises exactly what this table holds, so an API is
announced to clients only once a handler serves it.

A handler is ``handler(call: Call) -> response | None``, run on the listener's worker pool
(it may block on actor futures; it must not touch the socket). It either returns kio's
response dataclass for ``call.request.api_version`` (the listener writes it), or returns
``None`` and later calls ``call.respond(response)`` exactly once, from any thread (e.g. an
actor future's callback); ``call.respond(None)`` sends nothing (Produce with acks=0).
A connection's requests are handled one at a time, in order, as Kafka's broker does
(a connection's next request is dispatched after the previous one was answered), so
pipelined produces keep their order. A handler that raises closes the connection and is
logged; it never stops the broker.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rillet.frozen import frozen

from .kafka_wire import Request

# One line per handler module; each registers its APIs with @api on import.
HANDLER_MODULES: tuple[str, ...] = (
    "rillet.actors.kafka_api_versions",
    "rillet.actors.kafka_metadata",
    "rillet.actors.kafka_admin",  # kafka-admin (#18): topics, cluster, reassignments
    "rillet.actors.kafka_configs",  # kafka-admin (#18): Describe/Alter/IncrementalAlterConfigs
    "rillet.actors.kafka_delete_records",  # ops (#21): DeleteRecords
    "rillet.actors.kafka_features",  # upgrade (#21): UpdateFeatures (metadata.version)
    "rillet.actors.kafka_groups",  # kafka-groups (#18)
    "rillet.actors.kafka_offsets",  # kafka-groups (#18)
    "rillet.actors.kafka_consumer_groups",  # kafka-groups (#18): KIP-848 clients
    "rillet.actors.kafka_fetch",  # kafka-data (#18): Fetch, ListOffsets
    "rillet.actors.kafka_produce",  # kafka-data (#18): Produce, InitProducerId
    "rillet.actors.kafka_sasl",  # sasl (#19): SaslHandshake, SaslAuthenticate
    "rillet.actors.kafka_txn",  # kafka-txn (#18): AddPartitionsToTxn, EndTxn, ...
    "rillet.actors.kafka_share",  # kshare (#18): ShareFetch, ShareAcknowledge
    "rillet.actors.kafka_share_groups",  # kshare (#18): ShareGroupHeartbeat/Describe, CGDescribe
    "rillet.actors.kafka_client_quotas",  # kquota (#19): Describe/AlterClientQuotas
)


@frozen
class Api:
    key: int
    min_version: int
    max_version: int
    handler: Callable[[Call], Any]


HANDLERS: dict[int, Api] = {}
_loaded = threading.Lock()


def api(key: int, min_version: int, max_version: int):
    """Register the decorated function as the handler of api ``key`` for these versions."""

    def register(fn: Callable[[Call], Any]) -> Callable[[Call], Any]:
        if key in HANDLERS and HANDLERS[key].handler is not fn:
            raise ValueError(f"API key {key} has two handlers")
        HANDLERS[key] = Api(key, min_version, max_version, fn)
        return fn

    return register


def load_handlers() -> dict[int, Api]:
    """Import every module of HANDLER_MODULES (idempotent); the table."""
    with _loaded:
        for name in HANDLER_MODULES:
            importlib.import_module(name)
    return HANDLERS


def served_versions() -> dict[int, tuple[int, int]]:
    return {key: (a.min_version, a.max_version) for key, a in HANDLERS.items()}


@dataclass(slots=True)
class KafkaEndpoint:
    """What a handler knows of the listener: this broker's advertised Kafka address."""

    host: str
    port: int


@dataclass(slots=True)
class Call:
    """One request being handled: the decoded request, the broker's shared context
    (actors/session.py BrokerContext: image, replicas, coordinators), this listener's
    advertised address, and ``respond``."""

    request: Request
    broker: Any  # actors.session.BrokerContext (None in codec-only tests)
    endpoint: KafkaEndpoint
    _respond: Callable[[Any], None] = field(repr=False)
    session: Any = None  # actors.kafka_sasl.KafkaSession: the connection's host and principal
    mute_ms: int = 0  # quotas: mute the connection this long though no answer says so (acks=0)

    def respond(self, response: Any) -> None:
        self._respond(response)
