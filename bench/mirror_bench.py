"""Mirror throughput between two one-broker clusters, next to plain produce, in one run.

    .venv/bin/python bench/mirror_bench.py [--records 200000] [--size 100] [--eos]
        [--connect]                # connector mode: a `rillet connect standalone` worker on
                                   # B runs a MirrorSourceConnector (--eos: the worker's
                                   # exactly.once.source.support=enabled)
        [--profile mirror.raw]     # the mirror under py-spy (record -f raw; py-spy on PATH)

1. two fresh one-broker clusters A and B (LocalCluster in a temp dir);
2. **produce**: N records of SIZE bytes to A's ``bench`` (one partition, acks=all), timed;
3. **mirror**: ``rillet mirror start`` (its own process) A->B; timed from its start until
   B's ``A.bench`` holds N records (includes the mirror's start-up and topic creation), and
   again from the first record seen on B (steady state).
Prints both rates and mirror/produce (the issue's target: >= 0.5).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet import Admin, Producer
from rillet.launcher import LocalCluster
from rillet.records import NewTopic, TopicPartition


def _end(bootstrap: str, topic: str) -> int:
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        if topic not in admin.list_topics():
            return 0
        return admin.list_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--eos", action="store_true", help="exactly.once.support = enabled")
    ap.add_argument("--connect", action="store_true",
                    help="a Connect worker's MirrorSourceConnector instead of `mirror start`")
    ap.add_argument("--profile", help="write a py-spy raw profile of the mirror here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        a, b = LocalCluster(Path(tmp) / "a", 1), LocalCluster(Path(tmp) / "b", 1)
        mirror = None
        try:
            a.start(60)
            b.start(60)
            with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
                admin.create_topics([NewTopic("bench", 1)])
            value = b"x" * args.size
            t0, c0 = time.perf_counter(), time.process_time()
            with Producer({"bootstrap.servers": a.bootstrap_servers, "acks": "all"}) as p:
                for _ in range(args.records):
                    p.send("bench", value)
                p.flush()
            produce_s = time.perf_counter() - t0
            produce_cpu = time.process_time() - c0
            props = Path(tmp) / "mm2.properties"
            props.write_text(f"clusters = A, B\nA.bootstrap.servers = {a.bootstrap_servers}\n"
                             f"B.bootstrap.servers = {b.bootstrap_servers}\n"
                             "A->B.enabled = true\nA->B.topics = bench\n"
                             f"exactly.once.support = {'enabled' if args.eos else 'disabled'}\n")
            cmd = [sys.executable, "-m", "rillet.cli.main", "mirror", "start", str(props)]
            if args.connect:
                worker = Path(tmp) / "worker.properties"
                worker.write_text(f"bootstrap.servers={b.bootstrap_servers}\nrest.port=0\n"
                                  "worker.id=bench\nexactly.once.source.support="
                                  f"{'enabled' if args.eos else 'disabled'}\n")
                source = Path(tmp) / "source.properties"
                source.write_text(
                    "name=bench-mirror\nconnector.class=MirrorSourceConnector\n"
                    "source.cluster.alias=A\ntarget.cluster.alias=B\ntopics=bench\n"
                    f"source.cluster.bootstrap.servers={a.bootstrap_servers}\n"
                    f"target.cluster.bootstrap.servers={b.bootstrap_servers}\n")
                cmd = [sys.executable, "-m", "rillet.cli.main", "connect", "standalone",
                       str(worker), str(source)]
            if args.profile:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                cmd = [spy, "record", "-f", "raw", "-r", "200", "-o", args.profile, "--", *cmd]
            t0 = time.perf_counter()
            mirror = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            first = None
            while (done := _end(b.bootstrap_servers, "A.bench")) < args.records:
                if done and first is None:
                    first = (time.perf_counter(), done, _cpu_s(mirror.pid))
                if mirror.poll() is not None:
                    raise SystemExit("the mirror exited")
                time.sleep(0.2)  # polling the result, not synchronising the work
            end, end_cpu = time.perf_counter(), _cpu_s(mirror.pid)
            mirror_s = end - t0
            first = first or (t0, 0, 0.0)
            steady = (args.records - first[1]) / (end - first[0])
            steady_cpu = (end_cpu - first[2]) / max(1, args.records - first[1])
        finally:
            if mirror is not None:
                # py-spy writes its profile on SIGINT (and passes it on to the mirror)
                mirror.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
                mirror.wait(30)
            a.stop(15)
            b.stop(15)
    p_rate, m_rate = args.records / produce_s, args.records / mirror_s
    print(f"records={args.records} size={args.size} eos={args.eos} "
          f"mode={'connector' if args.connect else 'dedicated'}")
    print(f"produce: {p_rate:,.0f} rec/s ({produce_s:.2f} s)")
    print(f"mirror:  {m_rate:,.0f} rec/s ({mirror_s:.2f} s)")
    print(f"mirror/produce: {m_rate / p_rate:.2f}")
    print(f"mirror after its first record on B (no start-up): {steady:,.0f} rec/s, "
          f"mirror/produce {steady / p_rate:.2f}")
    # CPU per record is what a loaded (shared) machine does not blur: wall-clock rates
    # swing 2x with other work, CPU seconds much less
    print(f"CPU per record: produce {produce_cpu / args.records * 1e6:.1f} us (the producer), "
          f"mirror {steady_cpu * 1e6:.1f} us (the mirror process after its first record"
          f"{'; py-spy' if args.profile else ''})")


if __name__ == "__main__":
    main()
