"""A share-group consumer process, for tests/integration/test_share_faults.py.

    python -m tests.integration.share_worker BOOTSTRAP GROUP TOPIC LOGFILE CLIENT_ID WORK_MS

Appends one JSON line per event to LOGFILE (line-buffered, so a SIGKILL loses nothing
written): ``rec`` (partition, offset, delivery count) when a record is handed out, and
``accepted`` (partition, offsets) once commit_sync() reported those accepts durable. Every
record is accepted after WORK_MS of "work" (explicit acknowledgement). SIGTERM: close().
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time

from rillet import ShareConsumer


def main(argv: list[str]) -> int:
    bootstrap, group, topic, logfile, client_id, work_ms = argv[:6]
    out = open(logfile, "a", buffering=1)  # noqa: SIM115 - line buffered for the process life

    def log(kind: str, **fields) -> None:
        out.write(json.dumps({"kind": kind, "t": time.time(), "who": client_id, **fields})
                  + "\n")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                              "client.id": client_id, "share.acknowledgement.mode": "explicit",
                              "max.poll.records": 50, "retry.backoff.ms": 50,
                              "request.timeout.ms": 5000})
    consumer.subscribe([topic])
    log("started")
    while not stop.is_set():
        try:
            records = consumer.poll(timeout_ms=200)
        except Exception as exc:  # noqa: BLE001 - logged; a leader moving is retriable
            log("poll-error", error=str(exc))
            time.sleep(0.1)
            continue
        mine: dict[int, list[int]] = {}
        for r in records:
            log("rec", partition=r.partition, offset=r.offset, count=r.delivery_count)
            time.sleep(int(work_ms) / 1000)
            consumer.acknowledge(r, "accept")
            mine.setdefault(r.partition, []).append(r.offset)
        if mine:
            results = consumer.commit_sync()
            for tp, error in results.items():
                if error is None and tp.partition in mine:
                    log("accepted", partition=tp.partition, offsets=mine[tp.partition])
                elif error is not None:
                    log("ack-error", partition=tp.partition, error=str(error))
    consumer.close()
    log("closed")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
