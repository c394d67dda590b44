"""A consumer process in a group, for tests/integration/test_groups_*.py.

    python -m tests.integration.groups_worker BOOTSTRAP GROUP TOPIC LOGFILE CLIENT_ID

Appends one JSON line per event to LOGFILE (flushed at once, so a SIGKILL loses nothing
written): ``assigned`` / ``revoked`` / ``lost`` (time, member epoch, partitions), ``rec``
(partition, offset, value) for each processed record, ``commit`` (offsets, after the broker
acknowledged). Commits every 300 ms (commit_async) and, synchronously, in
on_partitions_revoked. SIGTERM: close() (revoke + commit + leave), exit 0.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from rillet import ConsumerRebalanceListener
from rillet.consumer import Consumer


def main(argv: list[str]) -> int:
    bootstrap, group, topic, logfile, client_id = argv[:5]
    session_ms = argv[5] if len(argv) > 5 else "4000"
    out = open(logfile, "a", buffering=1)  # noqa: SIM115 - line buffered for the process life
    lock = threading.Lock()

    def log(kind: str, **fields) -> None:
        with lock:
            out.write(json.dumps({"kind": kind, "t": time.time(), "who": client_id, **fields})
                      + "\n")

    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "client.id": client_id,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "session.timeout.ms": session_ms, "heartbeat.interval.ms": 300,
        "retry.backoff.ms": 50, "request.timeout.ms": 5000,
    })

    def epoch() -> int:
        m = consumer._membership
        return -1 if m is None else m.member_epoch

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            offsets = {tp: consumer.position(tp) for tp in revoked}
            try:
                consumer.commit(offsets)
                log("commit", offsets=[[tp.partition, o] for tp, o in offsets.items()])
            except Exception as exc:  # noqa: BLE001 - logged; the test judges the outcome
                log("commit-failed", error=str(exc))
            log("revoked", epoch=epoch(), partitions=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            log("assigned", epoch=epoch(), partitions=sorted(tp.partition for tp in assigned))

        def on_partitions_lost(self, lost):
            log("lost", epoch=epoch(), partitions=sorted(tp.partition for tp in lost))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def committed(offsets, error) -> None:
        if error is None:
            log("commit", offsets=[[tp.partition, o] for tp, o in offsets.items()])

    consumer.subscribe([topic], listener=Listener())
    log("started")
    next_commit = time.monotonic() + 0.3
    while not stop.is_set():
        for records in consumer.poll(100).values():
            for r in records:
                log("rec", partition=r.partition, offset=r.offset, value=r.value.decode())
        if time.monotonic() >= next_commit:
            next_commit = time.monotonic() + 0.3
            if consumer.assignment():
                consumer.commit_async(callback=committed)
    consumer.close()
    log("closed")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
