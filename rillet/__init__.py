"""Rillet: a partitioned, replicated commit log in Python.

Users import from here only: ``from rillet import Producer, Consumer, Admin, TopicPartition``.

The names are loaded lazily (PEP 562): ``rillet`` is also the namespace of the broker's
packages (``rillet.logstore``, ``rillet.actors``, ...), which must not pay for importing the
client on start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# In a checkout (this folder beside pyproject.toml), rillet.actors, rillet.transport, ...
# are the checkout's top-level folders, whatever an editable install elsewhere maps them to:
# with PYTHONPATH=<worktree> over a venv installed editable from another worktree, the
# client came from the worktree and the broker packages from the other one.
_SUBPACKAGES = ("actors", "connectors", "coordinator", "logstore", "transport")


class _CheckoutFinder:
    """``sys.meta_path`` finder: ``rillet.<folder>`` from the checkout ``root``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path=None, target=None):
        prefix, _, sub = fullname.partition(".")
        if prefix != "rillet" or sub not in _SUBPACKAGES:
            return None
        import importlib.util
        import os

        init = os.path.join(self.root, sub, "__init__.py")
        if not os.path.isfile(init):
            return None
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[os.path.dirname(init)]
        )


def _map_checkout() -> None:
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "pyproject.toml")) or not os.path.isfile(
        os.path.join(root, "actors", "__init__.py")
    ):
        return  # an installed package: its own mapping holds
    if not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutFinder(root))


_map_checkout()

_EXPORTS = {
    "Producer": "rillet.producer",
    "KafkaProducer": "rillet.producer:Producer",
    "Consumer": "rillet.consumer",
    "KafkaConsumer": "rillet.consumer:Consumer",
    "ShareConsumer": "rillet.share_consumer",
    "AcknowledgeType": "rillet.share_consumer",
    "ShareRecord": "rillet._share_fetcher",
    "Admin": "rillet.admin",
    "AclBinding": "rillet._acl_admin",
    "AclBindingFilter": "rillet._acl_admin",
    "ClientQuotaAlteration": "rillet._quota_admin",
    "AdminClient": "rillet.admin:Admin",
    "TopicPartition": "rillet.records",
    "RecordMetadata": "rillet.records",
    "ConsumerRecord": "rillet.records",
    "ConsumerGroupMetadata": "rillet.records",
    "ConsumerRebalanceListener": "rillet._membership",
    "NewTopic": "rillet.records",
    "RecordFuture": "rillet._future",
    "RilletError": "rillet.errors",
    "ConfigError": "rillet.errors",
}

__all__ = [
    "AclBinding", "AclBindingFilter", "ClientQuotaAlteration",
    "AcknowledgeType", "Admin", "AdminClient", "ConfigError", "Consumer", "ConsumerGroupMetadata",
    "ConsumerRebalanceListener",
    "ConsumerRecord", "KafkaConsumer", "KafkaProducer", "NewTopic", "Producer", "RecordFuture", "RecordMetadata", "RilletError",
    "ShareConsumer", "ShareRecord", "TopicPartition", "__version__",
]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'rillet' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from rillet._acl_admin import AclBinding, AclBindingFilter  # noqa: F401
    from rillet._future import RecordFuture  # noqa: F401
    from rillet._quota_admin import ClientQuotaAlteration  # noqa: F401
    from rillet._share_fetcher import ShareRecord  # noqa: F401
    from rillet.admin import Admin  # noqa: F401
    from rillet.admin import Admin as AdminClient
    from rillet.consumer import Consumer  # noqa: F401
    from rillet.consumer import Consumer as KafkaConsumer
    from rillet.errors import ConfigError, RilletError  # noqa: F401
    from rillet.producer import Producer  # noqa: F401
    from rillet.producer import Producer as KafkaProducer
    from rillet.records import (  # noqa: F401
        ConsumerGroupMetadata,
        ConsumerRecord,
        NewTopic,
        RecordMetadata,
        TopicPartition,
    )
    from rillet.share_consumer import AcknowledgeType, ShareConsumer  # noqa: F401
