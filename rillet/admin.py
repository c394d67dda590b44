"""The admin client: topics, partitions, configs and the cluster, one blocking call each.

    admin = Admin({"bootstrap.servers": "127.0.0.1:9092"})
    admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])
    print(admin.describe_topics(["orders"])["orders"].partitions)

Calls that act on several topics return ``{name: None}`` on success and raise the first
per-topic error; pass ``raise_errors=False`` to get ``{name: error | None}`` instead (the CLI
prints one status row per topic that way). Thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from rillet._acl_admin import AclAdminMixin
from rillet._broker_config_admin import BrokerConfigAdminMixin
from rillet._features_admin import FeaturesAdminMixin
from rillet._group_admin import GroupAdminMixin
from rillet._network import NetworkClient
from rillet._quota_admin import QuotaAdminMixin
from rillet._records_admin import RecordsAdminMixin
from rillet._security_admin import SecurityAdminMixin
from rillet._share_admin import ShareAdminMixin
from rillet._txn_admin import TransactionAdminMixin
from rillet.config import admin_config
from rillet.errors import (
    RilletError,
    RilletTimeoutError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from rillet.records import (
    BrokerInfo,
    ClusterDescription,
    ConfigEntry,
    NewTopic,
    PartitionInfo,
    TopicDescription,
)
from rillet.transport import protocol as p


class Admin(GroupAdminMixin, ShareAdminMixin, TransactionAdminMixin, SecurityAdminMixin,
            RecordsAdminMixin, AclAdminMixin, BrokerConfigAdminMixin, QuotaAdminMixin,
            FeaturesAdminMixin):
    """Kafka-style admin client. Config: ``bootstrap.servers``, ``request.timeout.ms``, ...

    Consumer groups: list_groups, describe_groups, delete_groups, list_consumer_group_offsets,
    alter_consumer_group_offsets, delete_consumer_group_offsets, list_offsets (_group_admin.py).
    Share groups: list_share_groups, describe_share_group, alter_share_group_offsets,
    delete_share_group (_share_admin.py); their configs: describe_group_configs,
    alter_group_configs.
    Transactions: list_transactions, describe_transactions, force_terminate_transaction
    (_txn_admin.py).
    Records: delete_records (_records_admin.py).
    ACLs: create_acls, describe_acls, delete_acls (_acl_admin.py).
    Dynamic broker configs: describe_broker_configs, alter_broker_configs
    (_broker_config_admin.py).
    Client quotas: alter_client_quotas, describe_client_quotas (_quota_admin.py).
    Feature levels: describe_features, update_features (_features_admin.py).
    """

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        cfg = admin_config(config, kwargs)
        self.config = cfg
        self._client = NetworkClient(cfg, name="rillet-admin")

    # -- topics ----------------------------------------------------------------------------

    def create_topics(self, new_topics: Iterable[NewTopic], *, validate_only: bool = False,
                      timeout_ms: int | None = None, wait: bool = True,
                      raise_errors: bool = True) -> dict[str, RilletError | None]:
        """Create topics. With ``wait`` (default) returns once every new partition has a
        leader, so the next produce succeeds at once."""
        topics = list(new_topics)
        timeout_ms = timeout_ms or self.config.request_timeout_ms
        req = p.CreateTopicsRequest(
            topics=tuple(p.CreatableTopic(
                name=t.name, num_partitions=t.num_partitions,
                replication_factor=t.replication_factor,
                configs={str(k): str(v) for k, v in dict(t.configs).items()}) for t in topics),
            timeout_ms=timeout_ms, validate_only=validate_only)
        resp = self._controller_call(req, timeout_ms, lambda r: [t.error_code for t in r.topics])
        results = {r.name: _err(r.error_code, r.error_message) for r in resp.topics}
        created = [n for n, e in results.items() if e is None]
        if wait and created and not validate_only:
            self._wait_for_leaders(created, timeout_ms)
        return _finish(results, raise_errors)

    def _controller_call(self, req: Any, timeout_ms: int, codes) -> Any:
        """Send a controller request to the active controller; while the answer is
        NOT_CONTROLLER (an election is under way), refresh metadata and retry until
        ``timeout_ms``."""
        deadline = time.monotonic() + timeout_ms / 1000
        backoff = 0.05
        while True:
            remaining = max(1, int((deadline - time.monotonic()) * 1000))
            resp = self._client.call_controller(req, remaining)
            if p.ErrorCode.NOT_CONTROLLER not in codes(resp) or time.monotonic() >= deadline:
                return resp
            time.sleep(backoff)
            backoff = min(backoff * 2, 0.5)
            try:
                self._client.refresh_metadata((), timeout_ms=max(1, remaining // 2))
            except RilletError:
                pass

    def _wait_for_leaders(self, names: list[str], timeout_ms: int) -> None:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            view = self._client.refresh_metadata(names, via_controller=True)
            ready = all(
                n in view.topics and view.topics[n].partitions
                and all(pm.leader >= 0 for pm in view.topics[n].partitions) for n in names)
            if ready:
                return
            if time.monotonic() >= deadline:
                raise RilletTimeoutError(f"topics {names} have no leader after {timeout_ms} ms")
            time.sleep(0.02)

    def delete_topics(self, names: Iterable[str], *, timeout_ms: int | None = None,
                      raise_errors: bool = True) -> dict[str, RilletError | None]:
        timeout_ms = timeout_ms or self.config.request_timeout_ms
        req = p.DeleteTopicsRequest(topic_names=tuple(names), timeout_ms=timeout_ms)
        resp = self._controller_call(req, timeout_ms, _result_codes)
        return _finish({r.name: _err(r.error_code, r.error_message) for r in resp.results},
                       raise_errors)

    def create_partitions(self, new_counts: Mapping[str, int], *, validate_only: bool = False,
                          timeout_ms: int | None = None,
                          raise_errors: bool = True) -> dict[str, RilletError | None]:
        """Grow each topic to the given total partition count."""
        timeout_ms = timeout_ms or self.config.request_timeout_ms
        req = p.CreatePartitionsRequest(
            topics=tuple(p.CreatePartitionsTopic(name=n, count=int(c))
                         for n, c in new_counts.items()),
            timeout_ms=timeout_ms, validate_only=validate_only)
        resp = self._controller_call(req, timeout_ms, _result_codes)
        results = {r.name: _err(r.error_code, r.error_message) for r in resp.results}
        grown = [n for n, e in results.items() if e is None]
        if grown and not validate_only:
            self._wait_for_leaders(grown, timeout_ms)
        return _finish(results, raise_errors)

    def list_topics(self, *, include_internal: bool = False) -> list[str]:
        view = self._client.refresh_metadata(None, via_controller=True)
        return sorted(n for n, t in view.topics.items() if include_internal or not t.is_internal)

    def describe_topics(self, names: Iterable[str] | None = None) -> dict[str, TopicDescription]:
        """Partitions with leader, replicas and ISR. ``names=None``: every topic. Unknown
        topics raise UnknownTopicOrPartitionError."""
        wanted = list(names) if names is not None else None
        # the active controller's image is the freshest (others apply its log a moment later)
        resp = self._client.call_controller(p.MetadataRequest(
            topics=tuple(wanted) if wanted is not None else None))
        self._client._apply(resp, all_topics=wanted is None)
        out: dict[str, TopicDescription] = {}
        for t in resp.topics:
            if t.error_code:
                if t.error_code == p.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    raise UnknownTopicOrPartitionError(f"topic {t.name!r} does not exist")
                raise error_for_code(t.error_code, f"topic {t.name!r}")
            out[t.name] = TopicDescription(
                name=t.name, topic_id=t.topic_id or None, is_internal=t.is_internal,
                partitions=tuple(PartitionInfo(
                    topic=t.name, partition=pm.partition, leader=pm.leader,
                    replicas=tuple(pm.replicas), isr=tuple(pm.isr), leader_epoch=pm.leader_epoch,
                    damaged=tuple(pm.damaged_replicas), offline_reason=pm.offline_reason)
                    for pm in sorted(t.partitions, key=lambda x: x.partition)))
        return dict(sorted(out.items()))

    def describe_cluster(self) -> ClusterDescription:
        resp = self._client.call_controller(p.MetadataRequest(topics=()))
        self._client._apply(resp)
        return ClusterDescription(
            cluster_id=resp.cluster_id or None, controller_id=resp.controller_id,
            brokers=tuple(BrokerInfo(b.broker_id, b.host, b.port, b.rack)
                          for b in sorted(resp.brokers, key=lambda b: b.broker_id)))

    # -- configs ---------------------------------------------------------------------------

    def describe_configs(self, topics: Iterable[str]) -> dict[str, dict[str, ConfigEntry]]:
        """Every config of each topic, by Kafka name; ``is_default`` False for overrides."""
        req = p.DescribeConfigsRequest(resources=tuple(
            p.ConfigResource(resource_type=p.ConfigResourceType.TOPIC, resource_name=t)
            for t in topics))
        resp = self._client.call_any(req)
        out: dict[str, dict[str, ConfigEntry]] = {}
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or f"topic {r.resource_name!r}")
            out[r.resource_name] = {
                c.name: ConfigEntry(c.name, c.value, c.is_default, c.is_sensitive, c.read_only)
                for c in sorted(r.configs, key=lambda c: c.name)}
        return out

    def alter_configs(self, changes: Mapping[str, Mapping[str, str | None]], *,
                      validate_only: bool = False) -> None:
        """Incremental: ``{topic: {"retention.ms": "1000", "cleanup.policy": None}}`` sets the
        first and reverts the second to its default."""
        req = p.AlterConfigsRequest(resources=tuple(
            p.AlterConfigsResource(
                resource_type=p.ConfigResourceType.TOPIC, resource_name=topic,
                configs=tuple(
                    p.AlterableConfig(name=k, value=None if v is None else str(v),
                                      op=p.AlterConfigOp.DELETE if v is None
                                      else p.AlterConfigOp.SET)
                    for k, v in kv.items()))
            for topic, kv in changes.items()), validate_only=validate_only)
        resp = self._controller_call(req, self.config.request_timeout_ms, _result_codes)
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or f"topic {r.resource_name!r}")

    def describe_group_configs(self, group_id: str) -> dict[str, ConfigEntry]:
        """Every config of share group ``group_id`` (the GROUP resource, docs/queues.md) by
        Kafka name; ``is_default`` False for the group's own overrides. A group need not
        exist: its configs are then the broker's defaults."""
        req = p.DescribeConfigsRequest(resources=(p.ConfigResource(
            resource_type=p.ConfigResourceType.GROUP, resource_name=group_id),))
        resp = self._client.call_any(req)
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or f"group {group_id!r}")
            return {c.name: ConfigEntry(c.name, c.value, c.is_default, c.is_sensitive,
                                        c.read_only)
                    for c in sorted(r.configs, key=lambda c: c.name)}
        raise RilletError(f"no answer about group {group_id!r}")

    def alter_group_configs(self, group_id: str, set: Mapping[str, Any] | None = None,
                            delete: Iterable[str] = (), *, validate_only: bool = False) -> None:
        """Set and delete (revert to the default) share-group configs, all or none:
        ``alter_group_configs("g", set={"share.delivery.count.limit": 3}, delete=[...])``.
        ``InvalidConfigError`` names an unknown key (with a hint) or a bad value."""
        configs = [p.AlterableConfig(name=k, value=str(v), op=p.AlterConfigOp.SET)
                   for k, v in (set or {}).items()]
        configs += [p.AlterableConfig(name=k, value=None, op=p.AlterConfigOp.DELETE)
                    for k in delete]
        req = p.AlterConfigsRequest(resources=(p.AlterConfigsResource(
            resource_type=p.ConfigResourceType.GROUP, resource_name=group_id,
            configs=tuple(configs)),), validate_only=validate_only)
        resp = self._controller_call(req, self.config.request_timeout_ms, _result_codes)
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message or f"group {group_id!r}")

    # -- replication (docs/replication.md) ----------------------------------------------------

    def elect_leaders(self, partitions: Iterable[tuple[str, int]] | None = None, *,
                      raise_errors: bool = True) -> dict[tuple[str, int], RilletError | None]:
        """Preferred-leader election (Kafka's electLeaders, PREFERRED): leadership goes back
        to each partition's first replica if it is in sync. ``None``: every partition (the
        answer then lists only those that needed an election)."""
        topics = None
        if partitions is not None:
            by_topic: dict[str, list[int]] = {}
            for t, n in partitions:
                by_topic.setdefault(t, []).append(int(n))
            topics = tuple(p.GroupTopicPartitions(topic=t, partitions=tuple(ps))
                           for t, ps in by_topic.items())
        req = p.ElectLeadersRequest(topics=topics)
        resp = self._controller_call(req, self.config.request_timeout_ms, _codes)
        if isinstance(resp, p.ErrorResponse):
            raise error_for_code(resp.error_code, resp.error_message)
        results = {(r.topic, r.partition): _err(r.error_code, r.error_message)
                   for r in resp.results}
        if raise_errors:
            for error in results.values():
                if error is not None and error.code != p.ErrorCode.ELECTION_NOT_NEEDED:
                    raise error
        return results

    def alter_partition_reassignments(
            self, reassignments: Mapping[tuple[str, int], Iterable[int] | None], *,
            raise_errors: bool = True) -> dict[tuple[str, int], RilletError | None]:
        """Move partitions to other brokers: ``{(topic, partition): [broker, ...]}`` (the
        target replica list, first = preferred leader), or ``None`` to cancel. The new
        replicas copy the data and join the ISR before the old ones are removed (watch the
        replicas in :meth:`describe_topics`)."""
        req = p.AlterPartitionReassignmentsRequest(partitions=tuple(
            p.ReassignPartition(topic=t, partition=int(n),
                                replicas=None if r is None else tuple(int(b) for b in r))
            for (t, n), r in reassignments.items()))
        resp = self._controller_call(req, self.config.request_timeout_ms, _codes)
        if isinstance(resp, p.ErrorResponse):
            raise error_for_code(resp.error_code, resp.error_message)
        results = {(r.topic, r.partition): _err(r.error_code, r.error_message)
                   for r in resp.results}
        if raise_errors:
            for error in results.values():
                if error is not None:
                    raise error
        return results

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _codes(resp: Any) -> list[int]:
    if isinstance(resp, p.ErrorResponse):
        return [resp.error_code]
    return [resp.error_code, *(r.error_code for r in resp.results)]


def _result_codes(resp: Any) -> list[int]:
    return [r.error_code for r in resp.results]


def _err(code: int, message: str | None) -> RilletError | None:
    return None if code == p.ErrorCode.NONE else error_for_code(code, message)


def _finish(results: dict[str, RilletError | None], raise_errors: bool
            ) -> dict[str, RilletError | None]:
    if raise_errors:
        for error in results.values():
            if error is not None:
                raise error
    return results
