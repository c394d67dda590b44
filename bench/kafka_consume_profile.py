"""Where a confluent-kafka consumer's wall time goes on rillet's KAFKA listener.

One one-broker cluster; N records of S bytes produced once by confluent-kafka (topic
``kafka``) and once by ``rillet perf produce`` (topic ``native``); then, alternating for
``--rounds``: ``rillet perf consume`` of ``native`` and a confluent-kafka ``assign()``
consumer of ``kafka`` (and of ``native`` with ``--also-native-topic``), each in its own
process. For each run: wall time, the client process's CPU (``os.wait4``'s rusage), the
broker's CPU (/proc), per record; for the Kafka consumer also its CPU by thread (the Python
thread in ``consume()`` against librdkafka's broker thread that parses the answers), and
with ``--debug protocol,fetch`` from librdkafka's log (ms timestamps on stderr): the Fetch
round trips it saw (sum of ``rtt``), the gaps between an answer received and the next
Fetch sent, and how often it stopped fetching because its queue was full
(``queued.min.messages``; it then waits ``fetch.queue.backoff.ms``, 1000 ms by default).

    .venv/bin/python bench/kafka_consume_profile.py --records 1000000 --rounds 3 \
        --debug protocol,fetch [--client-conf fetch.queue.backoff.ms=10] [--loop batch]

Run it with another checkout's interpreter (its venv) to measure that checkout's broker:
the brokers are started with ``sys.executable``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]
_SENT = re.compile(r"^%7\|(\d+\.\d+)\|SEND\|.*Sent FetchRequest")
_RECV = re.compile(r"^%7\|(\d+\.\d+)\|RECV\|.*Received FetchResponse \(v\d+, (\d+) bytes.*"
                   r"rtt ([\d.]+)ms")


def broker_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_consume(bootstrap: str, topic: str, records: int, loop: str) -> None:
    import confluent_kafka as ck

    conf = {"bootstrap.servers": bootstrap, "group.id": "kafka-profile",
            "enable.auto.commit": False, "fetch.max.bytes": 50 * 1024 * 1024}
    if os.environ.get("PROFILE_DEBUG"):
        conf.update({"debug": os.environ["PROFILE_DEBUG"], "log_level": 7})
    else:
        conf["log_level"] = 0
    for kv in filter(None, os.environ.get("PROFILE_CONF", "").split(",")):
        k, _, v = kv.partition("=")
        conf[k] = v
    consumer = ck.Consumer(conf)
    start = time.perf_counter()
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    seen = 0
    deadline = time.monotonic() + 600
    error, value = ck.Message.error, ck.Message.value
    while seen < records and time.monotonic() < deadline:
        msgs = consumer.consume(10_000, 1.0)
        if loop == "each":  # kafka_bench.py's loop: a Python call per record
            for m in msgs:
                if m.error() is None:
                    seen += 1
        else:  # as `rillet perf consume` counts: C-level loops over the batch
            if any(map(error, msgs)):
                seen += sum(1 for m in msgs if m.error() is None)
            else:
                seen += len(msgs)
                sum(map(len, map(value, msgs)))
    elapsed = time.perf_counter() - start
    threads = thread_cpu_s()
    consumer.close()
    if seen < records:
        raise SystemExit(f"read {seen} of {records}")
    print(" ".join(f"{k}={v:.3f}" for k, v in sorted(threads.items())))
    print(f"{records / elapsed:.0f}")


def thread_cpu_s() -> dict[str, float]:
    """This process's CPU seconds by thread kind: ``app`` (the Python thread calling
    consume()), ``rdk:broker`` (librdkafka's broker threads: requests, parsing answers),
    ``rdk:other`` (its main and internal threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = ("app" if int(task.name) == os.getpid() else
                "rdk:broker" if comm.startswith("rdk:broker") else "rdk:other")
        out[kind] = out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def child_produce(bootstrap: str, topic: str, records: int, size: int) -> None:
    import confluent_kafka as ck

    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                            "enable.idempotence": False, "log_level": 0})
    value = os.urandom(size)
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, value, partition=0)
                break
            except BufferError:
                producer.poll(0.005)
    if producer.flush(300):
        raise SystemExit("undelivered")


def run(args: list[str], env: dict, stderr_path: str | None = None) -> tuple[str, float, float]:
    """stdout, wall seconds, the child's CPU seconds (user+sys, its own rusage)."""
    err = open(stderr_path, "w") if stderr_path else subprocess.PIPE  # noqa: SIM115
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stderr_path:
        err.close()
    if proc.returncode:
        tail = Path(stderr_path).read_text()[-2000:] if stderr_path else proc.stderr.read()[-2000:]
        raise RuntimeError(f"{args[:4]} failed: {out[-1000:]} {tail}")
    return out, wall, ru.ru_utime + ru.ru_stime


def fetch_gaps(log: str) -> dict:
    """Fetch round trips and the client's gaps between answer and next request."""
    sent, recv = [], []
    for line in log.splitlines():
        m = _SENT.match(line)
        if m:
            sent.append(float(m.group(1)))
            continue
        m = _RECV.match(line)
        if m:
            recv.append((float(m.group(1)), int(m.group(2)), float(m.group(3))))
    gaps = [s - r[0] for r, s in zip(recv, sent[1:], strict=False) if s >= r[0]]
    return {"fetches": len(recv), "rtt_s": sum(r[2] for r in recv) / 1000,
            "gap_s": sum(gaps), "avg_bytes": sum(r[1] for r in recv) / max(1, len(recv)),
            "queue_full": sum("|BACKOFF|" in line and "Queue full" in line
                              for line in log.splitlines())}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        if sys.argv[2] == "produce":
            child_produce(sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        else:
            child_consume(sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--loop", choices=("each", "batch"), default="each",
                    help="the Kafka consumer's counting loop (kafka_bench.py's is 'each')")
    ap.add_argument("--debug", nargs="?", const="protocol", default="",
                    help="librdkafka debug contexts (protocol: the Fetch gaps)")
    ap.add_argument("--keep-logs", default="", help="copy the clients' stderr here")
    ap.add_argument("--also-native-topic", action="store_true")
    ap.add_argument("--client-conf", default="", help="extra librdkafka settings k=v,k=v "
                    "(for the Kafka consumer; say so in bench/README.md)")
    a = ap.parse_args()
    me = [sys.executable, os.path.abspath(__file__)]
    n = a.records
    with tempfile.TemporaryDirectory(prefix="rillet-kprof-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, configs={"listeners": "KAFKA://127.0.0.1:0"})
        cluster.start()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            env["PROFILE_CONF"] = a.client_conf
            if a.debug:
                env["PROFILE_DEBUG"] = a.debug
            for topic in ("native", "kafka"):
                run([*RILLET, "topic", "create", topic, "-p", "1"], env)
            bootstrap = (Path(cluster.broker_dir(1)) / "kafka-listener").read_text().strip()
            pid = cluster.pid(1)
            run([*RILLET, "perf", "produce", "--topic", "native", "--num-records", str(n),
                 "--record-size", str(a.record_size), "--throughput", "-1",
                 "--producer-props", "acks=1"], env)
            run([*me, "--child", "produce", bootstrap, "kafka", str(n), str(a.record_size)], env)
            phases = [("native", [*RILLET, "perf", "consume", "--topic", "native",
                                  "--messages", str(n)]),
                      ("kafka", [*me, "--child", "consume", bootstrap, "kafka", str(n), a.loop])]
            if a.also_native_topic:
                phases.append(("kafka_of_native", [*me, "--child", "consume", bootstrap,
                                                   "native", str(n), a.loop]))
            for r in range(a.rounds):
                for name, args in phases:
                    b0 = broker_cpu_s(pid)
                    errf = os.path.join(tmp, f"{name}-{r}.err")
                    out, wall, cpu = run(args, env, errf)
                    bcpu = broker_cpu_s(pid) - b0
                    if a.keep_logs:
                        os.makedirs(a.keep_logs, exist_ok=True)
                        Path(a.keep_logs, os.path.basename(errf)).write_bytes(Path(errf).read_bytes())
                    line = out.strip().splitlines()[-1]
                    rate = (float(line.split(", ")[5]) if name == "native" else float(line))
                    extra = ""
                    if name != "native":
                        extra = " [" + out.strip().splitlines()[-2] + "]"
                    if a.debug and name != "native":
                        g = fetch_gaps(Path(errf).read_text(errors="replace"))
                        extra += (f" fetches {g['fetches']} avg {g['avg_bytes'] / 1024:.0f} KiB"
                                 f" rtt-sum {g['rtt_s']:.2f}s gap-sum {g['gap_s']:.2f}s"
                                  f" queue-full backoffs {g['queue_full']}")
                    print(f"round {r + 1} {name:<16} {rate:>10,.0f} rec/s wall {wall:5.2f}s "
                          f"client {cpu / n * 1e6:.2f} us/rec broker {bcpu / n * 1e6:.2f} "
                          f"us/rec load {os.getloadavg()[0]:.1f}{extra}", flush=True)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
