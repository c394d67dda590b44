"""The Controller actor: owns the metadata log and image; executes admin requests.

Decisions come from the pure core (coordinator/metadata.py): a request becomes a list of
records or a ``MetadataError``. The actor appends the records to the ``MetadataLog`` (durable
before anything is acknowledged), applies them to the image, publishes the new image
(``publish(old, new)``: the node reconciles its partition actors and swaps the image that
sessions read) and answers through the request's reply callback.

``FileMetadataLog`` keeps the records as JSON lines in ``DATA_DIR/__cluster_metadata``; the
cluster issue replaces it with the Raft-replicated log behind the same ``MetadataLog`` seam.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pykka
from loguru import logger
from rillet.coordinator import metadata as md
from rillet.transport import protocol as P

from .configs import ConfigError, validate_topic_configs

E = P.ErrorCode


class FileMetadataLog:
    """``md.MetadataLog`` as an append-only JSON-lines file, fsynced on every append.

    A torn last line (a crash mid-write) is cut off on open."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "records.jsonl"
        self._records: list[object] = []
        good = 0
        if self.path.exists():
            data = self.path.read_bytes()
            for line in data.splitlines(keepends=True):
                if not line.endswith(b"\n"):
                    break
                try:
                    self._records.append(md.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    break
                good += len(line)
            if good != len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(good)
                    os.fsync(f.fileno())
        self._file = open(self.path, "ab")  # noqa: SIM115 - held open for the broker's life
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read_all(self) -> list[object]:
        return list(self._records)

    def append(self, records: Sequence[object]) -> None:
        data = b"".join(
            json.dumps(md.to_dict(r), separators=(",", ":")).encode() + b"\n" for r in records
        )
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._records.extend(records)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class Admin:
    """An admin request and where its response goes."""

    request: object
    reply: Callable[[object], None]


@dataclass(frozen=True, slots=True)
class RegisterSelf:
    broker_id: int
    host: str
    port: int


class Controller(pykka.ThreadingActor):
    """Single-node controller. ``publish(old_image, new_image)`` runs on this actor's thread
    after every change; it must not block on other actors."""

    def __init__(
        self,
        metadata_log: md.MetadataLog,
        publish: Callable[[md.MetadataImage, md.MetadataImage], None],
        broker_configs: Mapping[str, str],
        broker_id: int,
    ) -> None:
        super().__init__()
        self.metadata_log = metadata_log
        self.publish = publish
        self.broker_configs = dict(broker_configs)
        self.image = md.MetadataImage()
        self._log = logger.bind(broker=broker_id, actor="controller")

    def on_start(self) -> None:
        records = self.metadata_log.read_all()
        image = md.replay(records)
        self._log.info("metadata replayed: {} records, {} topics", len(records), len(image.topics))
        self._set_image(image)

    def on_stop(self) -> None:
        self.metadata_log.close()

    def _set_image(self, image: md.MetadataImage) -> None:
        old, self.image = self.image, image
        self.publish(old, image)

    def _commit(self, records: Sequence[object]) -> None:
        if not records:
            return
        self.metadata_log.append(records)
        self._set_image(md.replay(records, self.image))

    def on_receive(self, message: object) -> None:
        if isinstance(message, RegisterSelf):
            self._commit(
                md.register_broker(self.image, message.broker_id, message.host, message.port)
            )
            return
        if not isinstance(message, Admin):
            self._log.warning("ignoring unknown message {!r}", type(message).__name__)
            return
        handler = self._HANDLERS.get(type(message.request))
        try:
            if handler is None:
                raise ValueError(f"controller cannot handle {type(message.request).__name__}")
            response = handler(self, message.request)
        except Exception as e:  # noqa: BLE001 - poison request: error reply, actor lives on
            self._log.exception("admin request failed")
            message.reply(P.ErrorResponse(error_code=E.UNKNOWN_SERVER_ERROR, error_message=str(e)))
            return
        message.reply(response)

    # ------------------------------------------------------------------------------- topics

    def _default_int(self, value: int, key: str) -> int:
        return value if value != -1 else int(self.broker_configs[key])

    def _create_topics(self, req: P.CreateTopicsRequest) -> P.CreateTopicsResponse:
        results = []
        for t in req.topics:
            partitions = self._default_int(t.num_partitions, "num.partitions")
            rf = self._default_int(t.replication_factor, "default.replication.factor")
            try:
                validate_topic_configs(t.configs)
                records = md.create_topic(
                    self.image, t.name, partitions, rf, t.configs, uuid.uuid4().hex
                )
            except ConfigError as e:
                results.append(_topic_error(t.name, E.INVALID_CONFIG, str(e)))
                continue
            except md.MetadataError as e:
                results.append(_topic_error(t.name, E[e.kind], e.message))
                continue
            if not req.validate_only:
                self._commit(records)
                self._log.info(
                    "created topic {} with {} partition(s), replication factor {}",
                    t.name,
                    partitions,
                    rf,
                )
            results.append(
                P.CreatableTopicResult(
                    name=t.name,
                    topic_id=records[0].topic_id,
                    num_partitions=partitions,
                    replication_factor=rf,
                )
            )
        return P.CreateTopicsResponse(topics=tuple(results))

    def _delete_topics(self, req: P.DeleteTopicsRequest) -> P.DeleteTopicsResponse:
        results = []
        for name in req.topic_names:
            try:
                self._commit(md.delete_topic(self.image, name))
                self._log.info("deleted topic {}", name)
                results.append(P.TopicResult(name=name))
            except md.MetadataError as e:
                results.append(
                    P.TopicResult(name=name, error_code=E[e.kind], error_message=e.message)
                )
        return P.DeleteTopicsResponse(results=tuple(results))

    def _create_partitions(self, req: P.CreatePartitionsRequest) -> P.CreatePartitionsResponse:
        results = []
        for t in req.topics:
            try:
                records = md.create_partitions(self.image, t.name, t.count)
                if not req.validate_only:
                    self._commit(records)
                    self._log.info("topic {} now has {} partitions", t.name, t.count)
                results.append(P.TopicResult(name=t.name))
            except md.MetadataError as e:
                results.append(
                    P.TopicResult(name=t.name, error_code=E[e.kind], error_message=e.message)
                )
        return P.CreatePartitionsResponse(results=tuple(results))

    def _alter_configs(self, req: P.AlterConfigsRequest) -> P.AlterConfigsResponse:
        results = []
        for r in req.resources:
            code, message = E.NONE, None
            try:
                if r.resource_type != P.ConfigResourceType.TOPIC:
                    raise ConfigError(
                        "only topic configs can be altered; broker configs are set with "
                        "--config at startup"
                    )
                changes = []
                for c in r.configs:
                    if c.op == P.AlterConfigOp.SET and c.value is None:
                        raise ConfigError(f"{c.name}: SET needs a value")
                    if c.op not in (P.AlterConfigOp.SET, P.AlterConfigOp.DELETE):
                        raise ConfigError(f"{c.name}: unknown operation {c.op}")
                    changes.append((c.name, c.value if c.op == P.AlterConfigOp.SET else None))
                topic = self.image.topics.get(r.resource_name)
                merged = {**(topic.configs if topic else {}), **dict(changes)}
                validate_topic_configs(merged)
                records = md.alter_configs(self.image, r.resource_name, changes)
                if not req.validate_only:
                    self._commit(records)
                    self._log.info("altered configs of {}: {}", r.resource_name, dict(changes))
            except ConfigError as e:
                code, message = E.INVALID_CONFIG, str(e)
            except md.MetadataError as e:
                code, message = E[e.kind], e.message
            results.append(
                P.AlterConfigsResult(
                    resource_type=r.resource_type,
                    resource_name=r.resource_name,
                    error_code=code,
                    error_message=message,
                )
            )
        return P.AlterConfigsResponse(results=tuple(results))

    _HANDLERS = {
        P.CreateTopicsRequest: _create_topics,
        P.DeleteTopicsRequest: _delete_topics,
        P.CreatePartitionsRequest: _create_partitions,
        P.AlterConfigsRequest: _alter_configs,
    }


def _topic_error(name: str, code: int, message: str) -> P.CreatableTopicResult:
    return P.CreatableTopicResult(name=name, error_code=code, error_message=message)
