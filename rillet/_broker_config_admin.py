"""Dynamic broker configs, mixed into :class:`rillet.admin.Admin` (Kafka's
``kafka-configs --entity-type brokers``; docs/operations.md, "Dynamic broker configs")::

    admin.alter_broker_configs(None, set={"log.retention.ms": 3600000})   # every broker
    admin.alter_broker_configs(2, set={"log.retention.ms": 60000})        # broker 2 wins
    admin.alter_broker_configs(2, delete=["log.retention.ms"])            # back to the default
    admin.describe_broker_configs(2)["log.retention.ms"].source   # 'DYNAMIC_BROKER_CONFIG'
    admin.describe_broker_configs()     # the cluster-wide dynamic defaults only

Values are stored in the metadata log and applied by each running broker without a restart.
Only the dynamic keys can be altered (``rillet.actors.dynamic_configs``); a static key is
refused with ``InvalidConfigError`` saying it needs a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rillet.errors import RilletError, error_for_code
from rillet.frozen import frozen
from rillet.transport import protocol as p


@frozen
class BrokerConfigEntry:
    """One broker config: its value in effect and where it comes from (Kafka's
    ConfigSource name: DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG,
    STATIC_BROKER_CONFIG, DEFAULT_CONFIG); ``read_only``: only a restart changes it."""

    name: str
    value: str | None
    source: str
    read_only: bool = False

    @property
    def is_default(self) -> bool:
        return self.source == "DEFAULT_CONFIG"


def _resource(broker_id: int | None) -> str:
    return "" if broker_id is None else str(int(broker_id))


class BrokerConfigAdminMixin:
    """Needs ``self._client`` (a NetworkClient), ``self.config`` and ``_controller_call``."""

    _client: Any
    config: Any

    def describe_broker_configs(self, broker_id: int | None = None
                                ) -> dict[str, BrokerConfigEntry]:
        """Every config of broker ``broker_id`` as it runs now (asked of that broker: only it
        knows its static configs), or with ``None`` the cluster-wide dynamic defaults."""
        req = p.DescribeConfigsRequest(resources=(p.ConfigResource(
            resource_type=p.ConfigResourceType.BROKER, resource_name=_resource(broker_id)),))
        if broker_id is None:
            resp = self._client.call_controller(req)  # the freshest image
        else:
            address = self._client.refresh_metadata(()).brokers.get(int(broker_id))
            if address is None:
                raise error_for_code(p.ErrorCode.INVALID_REQUEST,
                                     f"broker {broker_id} is not in the cluster")
            resp = self._client.call(address, req)
        if isinstance(resp, p.ErrorResponse):
            raise error_for_code(resp.error_code, resp.error_message)
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message)
            return {c.name: BrokerConfigEntry(c.name, c.value, _source_name(c.source),
                                              c.read_only)
                    for c in sorted(r.configs, key=lambda c: c.name)}
        raise RilletError(f"no answer about broker {_resource(broker_id)!r}")

    def alter_broker_configs(self, broker_id: int | None = None,
                             set: Mapping[str, Any] | None = None,  # noqa: A002 - Kafka's word
                             delete: Iterable[str] = (), *, validate_only: bool = False) -> None:
        """Set and delete (back to the static value) dynamic configs of broker ``broker_id``,
        or with ``None`` the cluster-wide default every broker without its own value uses;
        all or none. ``InvalidConfigError`` for an unknown or static key or a bad value."""
        configs = [p.AlterableConfig(name=k, value=str(v), op=p.AlterConfigOp.SET)
                   for k, v in (set or {}).items()]
        configs += [p.AlterableConfig(name=k, value=None, op=p.AlterConfigOp.DELETE)
                    for k in delete]
        req = p.AlterConfigsRequest(resources=(p.AlterConfigsResource(
            resource_type=p.ConfigResourceType.BROKER, resource_name=_resource(broker_id),
            configs=tuple(configs)),), validate_only=validate_only)
        resp = self._controller_call(req, self.config.request_timeout_ms,  # type: ignore[attr-defined]
                                     lambda r: [x.error_code for x in r.results])
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message)


def _source_name(source: int) -> str:
    try:
        return p.ConfigSource(source).name
    except ValueError:
        return "UNKNOWN"
