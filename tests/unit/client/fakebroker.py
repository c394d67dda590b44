"""An in-memory broker speaking the real wire protocol over a real ServerEndpoint.

Client tests run against it in-process (milliseconds instead of broker processes): it stores
batches as the real broker does (validate, stamp base offset, keep bytes), serves Fetch with a
short long-poll, ListOffsets, Metadata and the admin APIs. It is a test double of the protocol,
not of the broker's internals; integration tests use real broker processes.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

from rillet.logstore import batch as rb
from rillet.transport import protocol as p
from rillet.transport.codec import decode_request, encode_response
from rillet.transport.endpoint import ServerEndpoint


@dataclass
class _Log:
    batches: list[tuple[int, bytes]] = field(default_factory=list)  # (base_offset, bytes)
    log_end_offset: int = 0
    log_start_offset: int = 0


class FakeBroker:
    def __init__(self, broker_id: int = 1) -> None:
        self.broker_id = broker_id
        self.logs: dict[str, list[_Log]] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.fail_next: dict[str, list[int]] = {}  # api -> error codes to answer next
        self.requests: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._parked: list = []
        self._lock = threading.Lock()
        self.server = ServerEndpoint("127.0.0.1:0", self._on_frames)
        self.address = self.server.address.replace("tcp://", "")
        self.host, port = self.address.rsplit(":", 1)
        self.port = int(port)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FakeBroker:
        self.server.start()
        self._worker.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._worker.join(5)
        self.server.close()

    def create(self, name: str, partitions: int = 1) -> None:
        with self._lock:
            self.logs[name] = [_Log() for _ in range(partitions)]

    # -- I/O thread -> worker ----------------------------------------------------------------

    def _on_frames(self, peer: bytes, frames: list[bytes], lease=None) -> None:
        if lease is not None:
            lease.release()  # no in-flight bound here
        self._queue.put((peer, frames))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                peer, frames = self._queue.get(timeout=0.005)
                cid, msg = decode_request(frames)
                self.requests.append(msg.API)
                reply = self._handle(msg)
                if reply is not None:
                    self.server.send(peer, encode_response(reply, cid))
                elif hasattr(msg, "max_wait_ms"):  # Fetch, ShareFetch: a long poll
                    self._parked.append((time.monotonic() + msg.max_wait_ms / 1000, peer, cid, msg))
            except queue.Empty:
                pass
            now = time.monotonic()
            parked, self._parked = self._parked, []
            for deadline, peer, cid, msg in parked:
                reply = self._fetch(msg, force=now >= deadline)
                if reply is None:
                    self._parked.append((deadline, peer, cid, msg))
                else:
                    self.server.send(peer, encode_response(reply, cid))

    # -- handlers ------------------------------------------------------------------------------

    def _handle(self, msg):
        codes = self.fail_next.get(msg.API)
        if codes and isinstance(msg, p.ProduceRequest):
            code = codes.pop(0)
            return p.ProduceResponse(topics=tuple(p.ProduceTopicResponse(
                name=t.name, partitions=tuple(p.ProducePartitionResponse(
                    partition=pp.partition, error_code=code) for pp in t.partitions))
                for t in msg.topics))
        if isinstance(msg, p.MetadataRequest):
            names = msg.topics if msg.topics is not None else tuple(self.logs)
            topics = []
            for name in names:
                logs = self.logs.get(name)
                if logs is None:
                    topics.append(p.TopicMetadata(
                        name=name, error_code=p.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                    continue
                topics.append(p.TopicMetadata(name=name, partitions=tuple(
                    p.PartitionMetadata(partition=i, leader=self.broker_id, leader_epoch=0,
                                        replicas=(self.broker_id,), isr=(self.broker_id,))
                    for i in range(len(logs)))))
            return p.MetadataResponse(
                brokers=(p.BrokerMetadata(broker_id=self.broker_id, host=self.host,
                                          port=self.port),),
                cluster_id="fake", controller_id=self.broker_id, topics=tuple(topics))
        if isinstance(msg, p.ProduceRequest):
            return self._produce(msg)
        if isinstance(msg, p.FetchRequest):
            return self._fetch(msg, force=msg.max_wait_ms == 0)
        if isinstance(msg, p.ListOffsetsRequest):
            return self._list_offsets(msg)
        if isinstance(msg, p.CreateTopicsRequest):
            results = []
            for t in msg.topics:
                if t.name in self.logs:
                    results.append(p.CreatableTopicResult(
                        name=t.name, error_code=p.ErrorCode.TOPIC_ALREADY_EXISTS,
                        error_message=f"Topic '{t.name}' already exists."))
                    continue
                self.create(t.name, max(1, t.num_partitions))
                self.configs[t.name] = dict(t.configs)
                results.append(p.CreatableTopicResult(name=t.name))
            return p.CreateTopicsResponse(topics=tuple(results))
        if isinstance(msg, p.DeleteTopicsRequest):
            results = []
            for name in msg.topic_names:
                code = 0 if self.logs.pop(name, None) is not None else 3
                results.append(p.TopicResult(name=name, error_code=code))
            return p.DeleteTopicsResponse(results=tuple(results))
        if isinstance(msg, p.CreatePartitionsRequest):
            for t in msg.topics:
                self.logs[t.name].extend(_Log() for _ in range(t.count - len(self.logs[t.name])))
            return p.CreatePartitionsResponse(
                results=tuple(p.TopicResult(name=t.name) for t in msg.topics))
        if isinstance(msg, p.DescribeConfigsRequest):
            return p.DescribeConfigsResponse(results=tuple(p.DescribeConfigsResult(
                resource_type=r.resource_type, resource_name=r.resource_name,
                configs=(p.ConfigEntry(name="retention.ms", value=self.configs.get(
                    r.resource_name, {}).get("retention.ms", "604800000"),
                    is_default="retention.ms" not in self.configs.get(r.resource_name, {})),))
                for r in msg.resources))
        if isinstance(msg, p.AlterConfigsRequest):
            for r in msg.resources:
                for c in r.configs:
                    if c.op == p.AlterConfigOp.SET:
                        self.configs.setdefault(r.resource_name, {})[c.name] = c.value
                    else:
                        self.configs.get(r.resource_name, {}).pop(c.name, None)
            return p.AlterConfigsResponse(results=tuple(p.AlterConfigsResult(
                resource_type=r.resource_type, resource_name=r.resource_name)
                for r in msg.resources))
        return p.ErrorResponse(error_code=p.ErrorCode.UNSUPPORTED_VERSION, error_message="no")

    def _produce(self, msg: p.ProduceRequest):
        topics = []
        for t in msg.topics:
            parts = []
            for pp in t.partitions:
                logs = self.logs.get(t.name)
                if logs is None or pp.partition >= len(logs):
                    parts.append(p.ProducePartitionResponse(
                        partition=pp.partition, error_code=p.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                    continue
                log = logs[pp.partition]
                base = log.log_end_offset
                data = bytearray(pp.records)
                pos = 0
                for header, _mv in rb.iter_batches(bytes(data)):
                    rb.stamp(data, pos, log.log_end_offset, 0)
                    log.batches.append((log.log_end_offset, bytes(data[pos:pos + header.length])))
                    log.log_end_offset += header.last_offset_delta + 1
                    pos += header.length
                parts.append(p.ProducePartitionResponse(partition=pp.partition, base_offset=base))
            topics.append(p.ProduceTopicResponse(name=t.name, partitions=tuple(parts)))
        return None if msg.acks == 0 else p.ProduceResponse(topics=tuple(topics))

    def _fetch(self, msg: p.FetchRequest, force: bool):
        topics = []
        total = 0
        for t in msg.topics:
            parts = []
            for fp in t.partitions:
                logs = self.logs.get(t.name)
                if logs is None or fp.partition >= len(logs):
                    parts.append(p.FetchPartitionResponse(partition=fp.partition, error_code=3))
                    continue
                log = logs[fp.partition]
                if not log.log_start_offset <= fp.fetch_offset <= log.log_end_offset:
                    parts.append(p.FetchPartitionResponse(partition=fp.partition, error_code=1))
                    total += 1
                    continue
                out = []
                size = 0
                for base, data in log.batches:
                    last = base + rb.read_header(data).last_offset_delta
                    if last < fp.fetch_offset:
                        continue
                    out.append(data)
                    size += len(data)
                    if size >= fp.partition_max_bytes:
                        break
                total += size
                parts.append(p.FetchPartitionResponse(
                    partition=fp.partition, high_watermark=log.log_end_offset,
                    log_start_offset=log.log_start_offset, records=b"".join(out)))
            topics.append(p.FetchTopicResponse(name=t.name, partitions=tuple(parts)))
        if total < msg.min_bytes and not force:
            return None
        return p.FetchResponse(topics=tuple(topics))

    def _list_offsets(self, msg: p.ListOffsetsRequest):
        topics = []
        for t in msg.topics:
            parts = []
            for lp in t.partitions:
                logs = self.logs.get(t.name)
                if logs is None or lp.partition >= len(logs):
                    parts.append(p.ListOffsetsPartitionResponse(partition=lp.partition,
                                                                error_code=3))
                    continue
                log = logs[lp.partition]
                if lp.timestamp == p.EARLIEST_TIMESTAMP:
                    off = log.log_start_offset
                elif lp.timestamp == p.LATEST_TIMESTAMP:
                    off = log.log_end_offset
                else:
                    off = -1
                    for _base, data in log.batches:
                        for rec in rb.decode_records(data):
                            if rec.timestamp >= lp.timestamp:
                                off = rec.offset
                                break
                        if off >= 0:
                            break
                parts.append(p.ListOffsetsPartitionResponse(partition=lp.partition, offset=off))
            topics.append(p.ListOffsetsTopicResponse(name=t.name, partitions=tuple(parts)))
        return p.ListOffsetsResponse(topics=tuple(topics))
