"""Idle connections: what N of them cost one broker, and whether a producer notices.

One broker (a fresh one-broker cluster), in one run:

1. **without**: the broker's threads and RSS (from /proc), then a producer in this process
   sends R records of 100 bytes at a fixed rate (acks=1, linger.ms=0, one partition) and
   the latency of each (send to acknowledgement, on the producer's delivery callback) is
   kept;
2. **with**: a separate process opens N client connections (ZeroMQ DEALER sockets with the
   client's options: heartbeats every second, as ``ClientEndpoint``), each does a Metadata
   request and then sits idle; once the broker counts N more sessions (BrokerStats), the
   same measurements again;
3. that process is killed (SIGKILL) and the time until the broker has released its N
   sessions is measured.

``--rounds`` repeats 1-3 (default 3) so both modes meet the same machine noise; the
latency figures compared are the medians over the rounds, the RSS delta is round 1's (later
rounds reuse memory the allocator kept).

Targets (issue #12): threads <= 64, RSS <= +50 MB, producer p99 within 2x of without.

    .venv/bin/python bench/conn_bench.py --connections 1000 --records 3000 --rate 500
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rillet.transport import protocol as P
from rillet.transport.endpoint import HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS, ClientEndpoint

from rillet.launcher import LocalCluster

WARMUP = 300


def proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    return {
        "threads": int(re.search(r"Threads:\s+(\d+)", status)[1]),
        "rss_mb": round(int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024, 1),
        "open_files": len(os.listdir(f"/proc/{pid}/fd")),
    }


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def broker_stats(address: str) -> P.BrokerStatsResponse:
    with ClientEndpoint() as endpoint:
        return endpoint.request(address, P.BrokerStatsRequest(), 10_000).result(15)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def produce_latency(bootstrap: str, records: int, rate: int) -> dict:
    """Send ``records`` (after WARMUP unmeasured ones) at ``rate``/s; latency percentiles."""
    from rillet import Producer

    value = os.urandom(100)
    latencies: list[float] = []
    lock = threading.Lock()
    config = {"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 0}
    with Producer(config) as producer:
        start = time.monotonic()
        for i in range(WARMUP + records):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the fixed send rate, not synchronisation
            sent = time.monotonic()

            def done(err, _metadata, sent=sent, measured=i >= WARMUP) -> None:
                if err is None and measured:
                    with lock:
                        latencies.append((time.monotonic() - sent) * 1000)

            producer.send("lat", value, partition=0, on_delivery=done)
        producer.flush(60)
    if len(latencies) != records:
        raise RuntimeError(f"{records - len(latencies)} records not acknowledged")
    return {
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
    }


def idle_clients(address: str, connections: int) -> None:
    """Child process: open the connections, one Metadata request each, then sit idle."""
    import zmq
    from rillet.transport import codec

    ctx = zmq.Context.instance()
    ctx.set(zmq.MAX_SOCKETS, connections + 64)
    request = codec.encode_request(P.MetadataRequest(topics=()), 1)
    socks = []
    poller = zmq.Poller()
    for _ in range(connections):
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)  # as ClientEndpoint does
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        sock.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)
        sock.connect(f"tcp://{address}")
        sock.send_multipart(request)
        poller.register(sock, zmq.POLLIN)
        socks.append(sock)
    pending = set(socks)
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for sock, _ in poller.poll(1000):
            cid, response = codec.decode_response(sock.recv_multipart())
            assert cid == 1 and isinstance(response, P.MetadataResponse), response
            pending.discard(sock)
            poller.unregister(sock)
    print("ready" if not pending else f"unanswered {len(pending)}", flush=True)
    signal.pause()  # idle until killed


def open_idle(address: str, connections: int) -> tuple[subprocess.Popen, float]:
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "idle",
            "--address",
            address,
            "--connections",
            str(connections),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    opened = time.monotonic()
    line = child.stdout.readline().strip()
    if line != "ready":
        child.kill()
        raise RuntimeError(f"idle clients: {line!r}")
    return child, time.monotonic() - opened


def measure(cluster: LocalCluster, args) -> dict:
    """``rounds`` x (without, with): the producer runs alternate, so machine noise hits
    both modes alike; the figures compared are the medians over the rounds."""
    address, pid, boot = cluster.address(1), cluster.pid(1), cluster.bootstrap_servers
    produce_latency(boot, 200, args.rate)  # warm the broker up
    base = broker_stats(address).connection_count  # this process's stats connection: 1
    rounds = []
    for _ in range(args.rounds):
        without = {**proc_stats(pid), "sessions": base}
        without["produce"] = produce_latency(boot, args.records, args.rate)
        child, open_s = open_idle(address, args.connections)
        try:
            sessions = wait_for(
                lambda: (
                    (n := broker_stats(address).connection_count) >= base + args.connections and n
                ),
                60,
                "the broker to count the idle sessions",
            )
            time.sleep(args.settle_s)  # a quiet window before reading RSS, not synchronisation
            with_ = {**proc_stats(pid), "sessions": sessions, "open_s": round(open_s, 2)}
            with_["produce"] = produce_latency(boot, args.records, args.rate)
        finally:
            killed = time.monotonic()
            child.kill()
            child.wait(30)
        wait_for(lambda: broker_stats(address).connection_count <= base, 60, "the release")
        with_["release_s"] = round(time.monotonic() - killed, 2)
        rounds.append({"without": without, "with": with_})
    return {"connections": args.connections, "rounds": rounds}


def report(r: dict) -> None:
    n, rounds = r["connections"], r["rounds"]
    print(f"\n{n} idle connections, one broker (load average {os.getloadavg()[0]:.1f})")
    print(
        f"{'round':>5} {'':>8} {'sessions':>8} {'threads':>7} {'RSS MB':>7} {'fds':>5} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
    )
    for i, rnd in enumerate(rounds, 1):
        for name in ("without", "with"):
            row, pr = rnd[name], rnd[name]["produce"]
            print(
                f"{i:>5} {name:>8} {row['sessions']:>8} {row['threads']:>7} "
                f"{row['rss_mb']:>7.1f} {row['open_files']:>5} {pr['p50_ms']:>7.2f} "
                f"{pr['p99_ms']:>7.2f} {pr['max_ms']:>7.2f}"
            )
    first = rounds[0]
    rss_delta = first["with"]["rss_mb"] - first["without"]["rss_mb"]
    threads = max(rnd["with"]["threads"] for rnd in rounds)
    p99 = {
        m: statistics.median(rnd[m]["produce"]["p99_ms"] for rnd in rounds)
        for m in ("without", "with")
    }
    p50 = {
        m: statistics.median(rnd[m]["produce"]["p50_ms"] for rnd in rounds)
        for m in ("without", "with")
    }
    ratio = p99["with"] / p99["without"]
    print(
        f"opened in {first['with']['open_s']} s; released "
        f"{', '.join(str(rnd['with']['release_s']) for rnd in rounds)} s after SIGKILL"
    )
    print(f"RSS per idle connection (round 1): {rss_delta * 1024 / n:.1f} KiB")
    print(
        f"median p50 {p50['without']:.2f} -> {p50['with']:.2f} ms, "
        f"median p99 {p99['without']:.2f} -> {p99['with']:.2f} ms"
    )
    checks = [
        (f"threads with {threads} <= 64", threads <= 64),
        (f"RSS +{rss_delta:.1f} MB <= +50 MB", rss_delta <= 50),
        (f"median p99 with / without = {ratio:.2f} <= 2", ratio <= 2),
    ]
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=500, help="records/s")
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3, help="without/with pairs")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--role", default="bench", choices=["bench", "idle"])
    parser.add_argument("--address")
    args = parser.parse_args()
    if args.role == "idle":
        idle_clients(args.address, args.connections)
        return 0
    with tempfile.TemporaryDirectory(prefix="rillet-conns-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1)
        cluster.start(timeout_s=60)
        try:
            from rillet import Admin, NewTopic

            with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
                admin.create_topics([NewTopic("lat", 1, 1)])
            result = measure(cluster, args)
        finally:
            cluster.stop(timeout_s=30)
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
