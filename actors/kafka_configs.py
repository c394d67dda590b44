"""Configs on the KAFKA listener (docs/kafka-compat.md): DescribeConfigs, AlterConfigs and
IncrementalAlterConfigs.

DescribeConfigs answers from this broker's metadata image and configs, as the native
session does, with the values of actors/configs.py (``effective_topic_configs``: a topic's
override, else the broker's synonym, else Kafka's default) and what Kafka clients also
show: each value's source (DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG),
its synonyms (``include_synonyms``) and its type. A BROKER resource is this broker (its id) or
the cluster-wide default (''), as Kafka; its values come from the dynamic broker configs
(actors/dynamic_configs.py: DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG), else the
static ones (a value that differs from the default counts as set: STATIC_BROKER_CONFIG);
only the dynamic keys are not read-only. GROUP (share group)
resources are the session's. TOPIC, BROKER and GROUP are served; other types get
INVALID_REQUEST.

Both alter APIs become the native incremental AlterConfigs (SET/DELETE, all of a
resource's changes or none) to the Controller (kafka_admin.to_controller), so unknown keys
get rillet's INVALID_CONFIG with its did-you-mean hint. IncrementalAlterConfigs' APPEND
and SUBTRACT act on list configs (``cleanup.policy``) by computing the new list from this
broker's image and SETting it; on other keys they are INVALID_CONFIG, as in Kafka. The
legacy AlterConfigs replaces a resource's whole set of overrides: a key it does not name
is DELETEd (reverts to its default).
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode
from rillet.coordinator import broker_configs
from rillet.coordinator.metadata import MetadataImage
from rillet.transport import protocol as P

from . import dynamic_configs
from .configs import (
    BROKER_DEFAULTS,
    BROKER_TOPIC_SYNONYMS,
    effective_topic_configs,
    topic_defaults,
)
from .kafka_admin import NO_THROTTLE, kcode, response, to_controller
from .kafka_auth import describe_configs_denied
from .kafka_dispatch import Call, api
from .kafka_metadata import build
from .session import _group_config_entries

TOPIC, BROKER, GROUP = 2, 4, 32  # Kafka's ConfigResource.Type
DYNAMIC_TOPIC, STATIC_BROKER, DEFAULT, GROUP_CONFIG = 1, 4, 5, 8  # Kafka's ConfigSource
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3  # Kafka's AlterConfigOp
LIST_KEYS = frozenset({"cleanup.policy"})  # Kafka's LIST-typed topic configs rillet has
TOPIC_SYNONYM = {t: b for b, t in BROKER_TOPIC_SYNONYMS.items()}  # topic key -> broker key
_SENSITIVE = ("password", "secret")

# Kafka's ConfigEntry.ConfigType
BOOLEAN, STRING, INT, LONG, LIST = 1, 2, 3, 5, 7


def config_type(name: str, default: str) -> int:
    if name in LIST_KEYS or name == "listeners" or name.endswith(".listeners"):
        return LIST
    if default in ("true", "false"):
        return BOOLEAN
    if default.lstrip("-").isdigit():
        return LONG if name.endswith((".ms", ".bytes", ".second")) else INT
    return STRING


# ------------------------------------------------------------------------ DescribeConfigs


def topic_entries(ctx: Any, topic_configs: dict[str, str]) -> list[tuple]:
    """``(name, value, source, synonyms, read_only, type)`` of every config of a topic with
    these overrides; synonyms as ``(name, value, source)``, most specific first."""
    broker = ctx.broker_configs
    live = getattr(ctx, "live_configs", None)  # actors/dynamic_configs.py
    defaults = topic_defaults({})  # Kafka's own
    values = effective_topic_configs(topic_configs, broker)
    out = []
    for name, value in sorted(values.items()):
        synonyms = []
        if name in topic_configs:
            synonyms.append((name, topic_configs[name], DYNAMIC_TOPIC))
        bkey = TOPIC_SYNONYM.get(name)
        if bkey is not None and bkey in broker:
            source = dynamic_configs.topic_synonym_source(live, ctx.image, bkey)
            if source is not None:
                synonyms.append((bkey, broker[bkey], source))
            elif live is None and broker[bkey] != BROKER_DEFAULTS.get(bkey):
                synonyms.append((bkey, broker[bkey], STATIC_BROKER))
        synonyms.append((bkey or name, defaults[name], DEFAULT))
        out.append((name, value, synonyms[0][2], tuple(synonyms), False,
                    config_type(name, defaults[name])))
    return out


def broker_entries(ctx: Any, resource_name: str | None = None) -> list[tuple]:
    """A BROKER resource's entries (``""``: the cluster-wide dynamic defaults); a
    ``ValueError`` names a resource only another broker can describe."""
    live = getattr(ctx, "live_configs", None)
    if live is not None and resource_name is not None:
        entries, error = dynamic_configs.broker_resource(ctx, resource_name)
        if error is not None:
            raise ValueError(error)
        return [(name, value, source,
                 live.synonyms(ctx.image, name) if resource_name else ((name, value, source),),
                 read_only, config_type(name, BROKER_DEFAULTS.get(name, "")))
                for name, value, source, read_only in entries]
    if resource_name not in (None, "", str(ctx.broker_id)):
        raise ValueError(f"broker {resource_name!r}: ask that broker (this is broker "
                         f"{ctx.broker_id})")
    out = []
    for name, value in sorted(ctx.broker_configs.items()):
        default = BROKER_DEFAULTS.get(name, "")
        source = STATIC_BROKER if value != default else DEFAULT
        synonyms = ((name, value, source),) if source == DEFAULT else (
            (name, value, STATIC_BROKER), (name, default, DEFAULT))
        out.append((name, value, source, synonyms, True, config_type(name, default)))
    return out


def group_entries(ctx: Any, group_id: str) -> list[tuple]:
    out = []
    for e in _group_config_entries(ctx.image, group_id, ctx.broker_configs):
        source = GROUP_CONFIG if e.source == P.ConfigSource.GROUP_CONFIG else DEFAULT
        out.append((e.name, e.value, source, ((e.name, e.value, source),), e.read_only,
                    config_type(e.name, e.value or "")))
    return out


def _config(mod: Any, cls_name: str, entry: tuple, synonyms: bool, docs: bool) -> Any:
    name, value, source, syn, read_only, ctype = entry
    sensitive = any(s in name for s in _SENSITIVE)
    return build(
        getattr(mod, cls_name), name=name, value=None if sensitive else value,
        read_only=read_only, config_source=source, is_sensitive=sensitive,
        is_default=source == DEFAULT,
        synonyms=tuple(build(mod.DescribeConfigsSynonym, name=n, value=v, source=s)
                       for n, v, s in syn) if synonyms and hasattr(mod, "DescribeConfigsSynonym")
        else (),
        config_type=ctype, documentation=None)


def created_topic_configs(ctx: Any, mod: Any, name: str, created: list) -> tuple:
    """CreateTopics v5+: the new topic's configs (its overrides from the request)."""
    overrides = next((t.configs for t in created if t.name == name), {})
    return tuple(_config(mod, "CreatableTopicConfigs", e, False, False)
                 for e in topic_entries(ctx, dict(overrides)))


@api(32, 1, 4)
def describe_configs(call: Call):
    body, ctx = call.request.body, call.broker
    cls, mod = response(call, 32)
    results = []
    for r in body.resources:
        code, message, entries = ErrorCode.none, None, []
        refused = describe_configs_denied(call, r.resource_type, r.resource_name)  # ACLs
        if refused is not None:
            code, message = ErrorCode(refused[0]), refused[1]
        elif r.resource_type == TOPIC:
            topic = ctx.image.topics.get(r.resource_name)
            if topic is None:
                code = ErrorCode.unknown_topic_or_partition
                message = f"topic {r.resource_name!r} does not exist"
            else:
                entries = topic_entries(ctx, dict(topic.configs))
        elif r.resource_type == BROKER:
            try:
                entries = broker_entries(ctx, r.resource_name)
            except ValueError as e:
                code, message = ErrorCode.invalid_request, str(e)
        elif r.resource_type == GROUP:
            entries = group_entries(ctx, r.resource_name)
        else:
            code = ErrorCode.invalid_request
            message = f"config resource type {r.resource_type} is not supported"
        if r.configuration_keys is not None:
            wanted = set(r.configuration_keys)
            entries = [e for e in entries if e[0] in wanted]
        results.append(build(
            mod.DescribeConfigsResult, error_code=code, error_message=message,
            resource_type=r.resource_type, resource_name=r.resource_name,
            configs=tuple(_config(mod, "DescribeConfigsResourceResult", e,
                                  bool(getattr(body, "include_synonyms", False)), False)
                          for e in entries)))
    return build(cls, throttle_time=NO_THROTTLE, results=tuple(results))


# ----------------------------------------------------------------- (Incremental)AlterConfigs


def _current(image: MetadataImage, resource_type: int, name: str) -> dict[str, str]:
    """The resource's overrides in this broker's image."""
    if resource_type == TOPIC:
        topic = image.topics.get(name)
        return dict(topic.configs) if topic else {}
    if resource_type == GROUP:
        return dict(image.group_configs.get(name, {}))
    if resource_type == BROKER:
        try:
            return dict(image.broker_configs.get(broker_configs.resource_key(name), {}))
        except ValueError:
            return {}
    return {}


def _list_op(ctx: Any, r: Any, c: Any) -> str:
    """The new value of list config ``c.name`` after APPEND/SUBTRACT ``c.value``."""
    overrides = _current(ctx.image, r.resource_type, r.resource_name)
    now = effective_topic_configs(overrides, ctx.broker_configs).get(c.name, "")
    items = [v.strip() for v in now.split(",") if v.strip()]
    given = [v.strip() for v in (c.value or "").split(",") if v.strip()]
    if c.config_operation == APPEND:
        items += [v for v in given if v not in items]
    else:
        items = [v for v in items if v not in given]
    return ",".join(sorted(set(items)))  # a set, as Kafka's cleanup.policy; one spelling


def _alter(call: Call, key: int, changes_of) -> None:
    """Both alter APIs: ``changes_of(resource)`` -> the native (name, op, value) changes, or
    ``(code, message)`` to refuse that resource here."""
    body = call.request.body
    cls, mod = response(call, key)
    refused: dict[int, tuple[int, str]] = {}
    native = []
    for i, r in enumerate(body.resources):
        if r.resource_type not in (TOPIC, BROKER, GROUP):
            refused[i] = (P.ErrorCode.INVALID_REQUEST,
                          f"config resource type {r.resource_type} is not supported")
            continue
        names = [c.name for c in r.configs]
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            refused[i] = (P.ErrorCode.INVALID_REQUEST, f"duplicate config keys: {dups}")
            continue
        changes = changes_of(r)
        if isinstance(changes, tuple):
            refused[i] = changes
            continue
        native.append((i, P.AlterConfigsResource(
            resource_type=r.resource_type, resource_name=r.resource_name,
            configs=tuple(P.AlterableConfig(name=n, value=v, op=op) for n, op, v in changes))))

    def result(r: Any, code: int, message: str | None):
        return build(mod.AlterConfigsResourceResponse, error_code=kcode(code),
                     error_message=message, resource_type=r.resource_type,
                     resource_name=r.resource_name)

    def answer(resp: P.AlterConfigsResponse | None):
        got = {i: (x.error_code, x.error_message)
               for (i, _), x in zip(native, resp.results if resp else (), strict=False)}
        out = []
        for i, r in enumerate(body.resources):
            code, message = refused.get(i) or got.get(i) or (P.ErrorCode.UNKNOWN_SERVER_ERROR,
                                                              "no answer")
            out.append(result(r, code, message))
        return build(cls, throttle_time=NO_THROTTLE, responses=tuple(out))

    def fail(code: int, message: str):
        return answer(P.AlterConfigsResponse(results=tuple(
            P.AlterConfigsResult(resource_type=n.resource_type, resource_name=n.resource_name,
                                 error_code=code, error_message=message) for _, n in native)))

    def settled(image: MetadataImage, resp: P.AlterConfigsResponse) -> bool:
        if body.validate_only:
            return True
        for (_, n), x in zip(native, resp.results, strict=False):
            if not x.error_code and n.resource_type == BROKER:  # this broker's image has it
                have = _current(image, BROKER, n.resource_name)
                if any(have.get(c.name) != c.value for c in n.configs):
                    return False
            if x.error_code or n.resource_type != TOPIC:
                continue
            topic = image.topics.get(n.resource_name)
            if topic is None or any(topic.configs.get(c.name) != c.value for c in n.configs):
                return False
        return True

    if not native:
        return answer(None)
    to_controller(call, P.AlterConfigsRequest(resources=tuple(n for _, n in native),
                                              validate_only=bool(body.validate_only)),
                  answer, fail, settled)
    return None


@api(44, 0, 1)
def incremental_alter_configs(call: Call):
    ctx = call.broker

    def changes_of(r: Any):
        out = []
        for c in r.configs:
            op = c.config_operation
            if op in (SET, DELETE):
                out.append((c.name, op, c.value if op == SET else None))
            elif op in (APPEND, SUBTRACT):
                if r.resource_type != TOPIC or c.name not in LIST_KEYS:
                    verb = "append" if op == APPEND else "subtract"
                    return (P.ErrorCode.INVALID_CONFIG,
                            f"Config value {verb} is not allowed for config key: {c.name}")
                out.append((c.name, SET, _list_op(ctx, r, c)))
            else:
                return (P.ErrorCode.INVALID_REQUEST, f"{c.name}: unknown operation {op}")
        return out

    return _alter(call, 44, changes_of)


@api(33, 0, 2)
def alter_configs(call: Call):
    ctx = call.broker

    def changes_of(r: Any):
        nulls = [c.name for c in r.configs if c.value is None]
        if nulls:
            return (P.ErrorCode.INVALID_REQUEST, f"null value not supported for {nulls[0]!r}")
        given = {c.name: c.value for c in r.configs}
        gone = sorted(set(_current(ctx.image, r.resource_type, r.resource_name)) - set(given))
        return [(n, SET, v) for n, v in given.items()] + [(n, DELETE, None) for n in gone]

    return _alter(call, 33, changes_of)
