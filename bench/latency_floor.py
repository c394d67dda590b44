"""What end-to-end latency this machine allows three Python processes over ZeroMQ: the floor
under ``e2e_latency.py``'s figures.

The same workload as ``e2e_latency.py`` (W3: 5,000 messages a second of 100 bytes, one
producer, latency = the consumer's receive time minus the send time written into the message,
CLOCK_MONOTONIC) through the thinnest pipeline of the same parts: a producer process PUSHes
each message, a "broker" process PULLs it and PUSHes it on, a consumer process PULLs it. One
Python thread per process (ZeroMQ's I/O threads aside), no encoding, no log, no batching.

* ``direct``: the broker forwards on the thread that received;
* ``hop``: the broker hands each message to a second thread (a queue) that sends it, to show
  what one thread hand-off costs when the threads have nothing else to do.

rillet's own path has ten such hand-offs, and work on each (docs/runtime.md, "Latency"); what
this prints is what no design of three Python processes over ZeroMQ gets under on this machine
at its current load (printed with the figures: the machine is shared).

    .venv/bin/python bench/latency_floor.py [--records 10000] [--rate 5000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import socket
import struct
import threading
import time

import zmq

END = b"END"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _producer(address: str, records: int, rate: int) -> None:
    ctx = zmq.Context()
    out = ctx.socket(zmq.PUSH)
    out.connect(address)
    pad = b"x" * 92
    time.sleep(0.5)  # the pipeline connects
    start, period = time.monotonic(), 1.0 / rate
    for i in range(records):
        delay = start + i * period - time.monotonic()
        if delay > 0:  # paced as e2e_latency.py and the peers' W3: a sleep, no spinning
            time.sleep(delay)
        out.send(struct.pack("<d", time.monotonic()) + pad)
    out.send(END)
    out.close(linger=2000)
    ctx.term()


def _broker(inbound: str, outbound: str, mode: str) -> None:
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    pull.bind(inbound)
    push.bind(outbound)
    if mode == "direct":
        while (message := pull.recv()) != END:
            push.send(message)
    else:
        handed: queue.SimpleQueue = queue.SimpleQueue()

        def send() -> None:
            while (m := handed.get()) != END:
                push.send(m)

        sender = threading.Thread(target=send)
        sender.start()
        while (message := pull.recv()) != END:
            handed.put(message)
        handed.put(END)
        sender.join()
    push.send(END)
    pull.close(linger=0)
    push.close(linger=2000)
    ctx.term()


def _consumer(address: str, results) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(address)
    latencies = []
    while (message := pull.recv()) != END:
        latencies.append((time.monotonic() - struct.unpack("<d", message[:8])[0]) * 1e6)
    pull.close(linger=0)
    ctx.term()
    latencies.sort()
    n = len(latencies)
    results.put((n, latencies[n // 2], latencies[int(n * 0.99)], latencies[int(n * 0.999)]))


def run(mode: str, records: int, rate: int) -> tuple[int, float, float, float]:
    """(messages received, p50, p99, p99.9 in microseconds) of one pipeline run."""
    inbound = f"tcp://127.0.0.1:{_free_port()}"
    outbound = f"tcp://127.0.0.1:{_free_port()}"
    results: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_broker, args=(inbound, outbound, mode)),
             mp.Process(target=_consumer, args=(outbound, results)),
             mp.Process(target=_producer, args=(inbound, records, rate))]
    try:
        for p in procs:
            p.start()
        return results.get(timeout=60 + records / rate)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--rate", type=int, default=5_000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"{'run':<10} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9}  load average")
    for _ in range(args.rounds):
        for mode in ("direct", "hop"):
            n, p50, p99, p999 = run(mode, args.records, args.rate)
            print(f"{mode:<10} {p50:8.0f} {p99:8.0f} {p999:9.0f}  {os.getloadavg()[0]:.1f}"
                  f"   ({n}/{args.records} received)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
