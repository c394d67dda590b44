"""Scale: a 3-broker cluster (RF=3) with many partitions, measured per broker.

For each partition count P: a fresh 3-broker cluster, a topic "spread" with P partitions and a
topic "three" with 3 partitions (both RF=3, min.insync.replicas=2). Reported: time to create
and settle (every partition has a leader and a full ISR, as seen by Metadata, AND every broker
has opened every replica's log: BrokerCounters ``partition_logs_opened``; the metadata alone
is "full" long before that), then per
broker threads, RSS and open files (from /proc), idle CPU over a quiet window, ISR shrinks
while idle (full ISRs before vs after), then ``rillet perf produce`` of N keyed records to
"spread" (keys cover every partition) next to the same to "three", with acks=1 and acks=all,
in the same run: the ratio spread/three is the figure. The load average is printed, and each
broker's ``replica_fetch_polls`` / ``replica_fetch_partition_reads`` after the idle window.

    .venv/bin/python bench/scale_bench.py --partitions 300,1000,3000 --records 200000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.protocol import BrokerCountersRequest, MetadataRequest

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]
TICK = os.sysconf("SC_CLK_TCK")


def proc_stats(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(re.search(r"Threads:\s+(\d+)", status)[1])
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status)[1])
    files = len(os.listdir(f"/proc/{pid}/fd"))
    return {"threads": threads, "rss_mb": rss_kb / 1024, "open_files": files}


def user_sys_s(pid: int, tid: str | None = None) -> tuple[float, float]:
    """CPU seconds in user and in system mode of process ``pid`` (of its thread ``tid``)."""
    stat = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_s(pid: int) -> float:
    return sum(user_sys_s(pid))


def py_spy_record(pid: int, out: str) -> subprocess.Popen:
    """Sample process ``pid`` with py-spy into ``out`` (raw format, 400 Hz, ``--gil``: the
    threads holding the interpreter lock, i.e. Python CPU) until it is sent SIGINT."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-r", "400",
         "-f", "raw", "--gil", "--nonblocking", "-o", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def full_isrs(cluster: LocalCluster, topic: str, replicas: int = 3) -> tuple[int, int]:
    """(partitions with a leader and a full ISR, partitions) as broker 1 sees them."""
    with ClientEndpoint() as endpoint:
        try:
            meta = endpoint.request(
                cluster.address(1), MetadataRequest(topics=(topic,)), 10_000
            ).result(15)
        except Exception:  # noqa: BLE001 - busy: count as not settled
            return 0, -1
    if not meta.topics or not meta.topics[0].partitions:
        return 0, -1
    parts = meta.topics[0].partitions
    good = sum(1 for p in parts if p.leader >= 0 and len(p.isr) == replicas)
    return good, len(parts)


def counters(cluster: LocalCluster, broker_id: int) -> dict[str, int]:
    """The broker's BrokerCounters ({} if it does not answer)."""
    with ClientEndpoint() as endpoint:
        try:
            r = endpoint.request(cluster.address(broker_id), BrokerCountersRequest(), 10_000)
            return {c.name: c.value for c in r.result(15).counters}
        except Exception:  # noqa: BLE001 - busy: the caller polls again
            return {}


def perf(env: dict, topic: str, records: int, acks: str, keys: int) -> float:
    out = subprocess.run(
        [*RILLET, "perf", "produce", "--topic", topic, "--num-records", str(records),
         "--record-size", "100", "--key-count", str(keys), "--producer-props", f"acks={acks}"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    m = re.findall(r"([\d.]+) records/sec", out.stdout)
    if out.returncode != 0 or not m:
        raise RuntimeError(f"perf produce failed:\n{out.stdout}\n{out.stderr}")
    return float(m[-1])


def replicated(bootstrap: str, topic: str, expected: int, timeout_s: float = 600) -> float:
    """Wait until the topic's high watermarks add up to ``expected`` records (every follower
    has them: after an acks=1 run replication is still catching up, and the next run would
    pay for it); returns the seconds waited."""
    from rillet import Consumer, TopicPartition

    t0 = time.monotonic()
    with Consumer({"bootstrap.servers": bootstrap}) as c:
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
        while True:
            try:  # leaders may be moving: ask again
                if sum(c.end_offsets(tps).values()) >= expected:
                    break
            except Exception:  # noqa: BLE001 - the deadline below bounds it
                pass
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"{topic}: not replicated after {timeout_s} s")
            time.sleep(0.2)
    return time.monotonic() - t0


def elections(cluster: LocalCluster) -> int:
    """How many times a broker became the active controller over the run (1: the quorum
    kept its first leader), from the brokers' logs."""
    return sum((cluster.broker_dir(b) / "stderr.log").read_text(errors="replace")
               .count("became the active controller") for b in cluster.broker_ids)


def create_topic(env: dict, topic: str, partitions: int) -> None:
    """``rillet topic create`` of ``topic``, RF=3, min.insync.replicas=2."""
    created = subprocess.run(
        [*RILLET, "topic", "create", topic, "-p", str(partitions), "-r", "3",
         "--config", "min.insync.replicas=2", "--timeout-ms", "600000"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    # a retry after a controller change may find its first attempt done
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise RuntimeError(f"topic create {topic} failed: {created.stderr.strip()}")


def settle(cluster: LocalCluster, topic: str, partitions: int, logs: int, t0: float,
           limit_s: float) -> tuple[float, float]:
    """(seconds since ``t0`` to full ISRs of ``topic`` in the metadata, to settled): settled
    is full ISRs AND ``logs`` replica logs open on every broker (each hosts all partitions
    with RF=3 on 3 brokers); the metadata alone says "full" long before the brokers have
    opened thousands of logs."""
    isr_s = None
    while True:
        if isr_s is None:
            good, total = full_isrs(cluster, topic)
            if good == total == partitions:
                isr_s = time.monotonic() - t0
        if isr_s is not None and all(
            counters(cluster, b).get("partition_logs_opened", 0) >= logs
            for b in cluster.broker_ids
        ):
            return isr_s, time.monotonic() - t0
        if time.monotonic() - t0 > limit_s:
            raise RuntimeError(f"not settled after {limit_s} s: {good}/{partitions}")
        time.sleep(0.5)


@contextlib.contextmanager
def scratch_cluster(prefix: str, configs: dict[str, str] | None = None):
    """A fresh 3-broker cluster in a temporary directory (with broker ``configs``), with the
    environment for ``rillet`` commands against it: ``(cluster, env)``; stopped and removed
    after."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        cluster = LocalCluster(Path(tmp), brokers=3, configs=configs)
        cluster.start(timeout_s=60)
        try:
            yield cluster, {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                            "RILLET_CONFIG_DIR": tmp}
        finally:
            cluster.stop()


def run(partitions: int, records: int, idle_s: float) -> dict:
    with scratch_cluster("rillet-scale-") as (cluster, env):
        t0 = time.monotonic()
        for topic, count in (("spread", partitions), ("three", 3)):
            create_topic(env, topic, count)
        isr_s, settle_s = settle(cluster, "spread", partitions, partitions + 3, t0, 900)
        time.sleep(5)  # let creation's tail (first fetches, sessions) pass
        pids = {b: cluster.pid(b) for b in cluster.broker_ids}
        before = {b: cpu_s(pid) for b, pid in pids.items()}
        isr_before = full_isrs(cluster, "spread")[0]
        time.sleep(idle_s)
        idle = {b: 100 * (cpu_s(pid) - before[b]) / idle_s for b, pid in pids.items()}
        polls = {b: counters(cluster, b) for b in pids}
        isr_after = full_isrs(cluster, "spread")[0]
        stats = {b: proc_stats(pid) for b, pid in pids.items()}
        for b in pids:  # what the leader did for follower polls over the whole run
            stats[b]["replica_fetch_polls"] = polls[b].get("replica_fetch_polls")
            stats[b]["replica_fetch_partition_reads"] = polls[b].get(
                "replica_fetch_partition_reads"
            )
        result = {
            "partitions": partitions,
            "settle_s": round(settle_s, 1),
            "full_isrs_in_metadata_s": round(isr_s, 1),
            "per_broker": {b: {**stats[b], "idle_cpu_pct": round(idle[b], 2)} for b in pids},
            "isr_full_before_after_idle": [isr_before, isr_after],
        }
        print(json.dumps(result), file=sys.stderr, flush=True)  # kept if produce fails
        sent = {"spread": 0, "three": 0}
        for acks in ("1", "all"):
            try:
                spread = perf(env, "spread", records, acks, max(partitions * 4, 1000))
                sent["spread"] += records
                # each run starts on a quiet cluster: an acks=1 run returns before its
                # records are replicated, and that catch-up would slow the next run
                catch_up = replicated(cluster.bootstrap_servers, "spread", sent["spread"])
                three = perf(env, "three", records, acks, 1000)
                sent["three"] += records
                replicated(cluster.bootstrap_servers, "three", sent["three"])
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                result[f"acks={acks}"] = {"error": str(e)[-400:]}
                continue
            result[f"acks={acks}"] = {
                "spread_rec_s": spread, "three_rec_s": three, "ratio": spread / three,
                "spread_replication_catch_up_s": round(catch_up, 1),
            }
        result["controller_elections"] = elections(cluster)
        for b in cluster.broker_ids:  # the collector's pauses (actors/gc_watch.py)
            c = counters(cluster, b)
            result["per_broker"][b]["gc"] = {
                k[3:]: c.get(k) for k in ("gc_collections_gen2", "gc_pause_ms_max",
                                          "gc_pause_ms_total")}
        return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", default="300,1000,3000")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--idle-s", type=float, default=10.0)
    args = ap.parse_args()
    for p in (int(x) for x in args.partitions.split(",")):
        load = os.getloadavg()[0]
        r = run(p, args.records, args.idle_s)
        r["load_average_before"] = round(load, 2)
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
