"""The background scrub's cost and the time to heal a corrupted partition (issue 11).

1. Throughput with the scrubber on vs off, same run, rounds interleaved: a fresh one-broker
   cluster per round holding ``--cold-mib`` of sealed segments, ``log.scrub.interval.ms=1``
   so the scrubber never rests (the worst case: a pass restarts as soon as one ends) at the
   default ``log.scrub.bytes.per.second`` (32 MiB/s) unless ``--rate`` says otherwise; then
   ``rillet perf produce`` (acks=1) and ``rillet perf consume`` of ``--records`` records.
2. The scrub's own speed: ``PartitionLog.scrub`` over ``--cold-mib`` of a log reopened after
   a clean shutdown (page cache warm), in this process: CPU per MiB, so the scrubber's share
   of one core at a given rate is rate / speed (the number that does not drown in the noise
   of a shared machine, as the throughput rounds do).
3. Heal time: a 3-broker cluster, RF=3, min.insync.replicas=2; ``--heal-mib`` produced with
   acks=all; the preferred leader is stopped (SIGTERM), a byte near the start of its log is
   flipped, it is restarted: the scrubber finds the batch, the controller takes the replica
   out of the ISR, it truncates and re-fetches nearly everything, and rejoins. Timed from
   "restarted and ready" to "damage recorded" and to "back in the ISR, mark cleared".

    .venv/bin/python bench/scrub_bench.py --records 500000 --rounds 3 --cold-mib 256 \\
        --heal-mib 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.logstore.batch import iter_batches
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]
MIB = 1 << 20


def broker_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cli(args: list[str], env: dict) -> str:
    out = subprocess.run([*RILLET, *args], capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"rillet {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def preload(env: dict, topic: str, mib: int, acks: str) -> None:
    size = 10_000
    cli(["perf", "produce", "--topic", topic, "--num-records", str(mib * MIB // size),
         "--record-size", str(size), "--throughput", "-1", "--producer-props", f"acks={acks}"],
        env)


def throughput_round(scrub: bool, records: int, cold_mib: int, rate: int | None) -> dict:
    configs = {"log.scrub.enable": "true" if scrub else "false", "log.scrub.interval.ms": "1"}
    if rate:
        configs["log.scrub.bytes.per.second"] = str(rate)
    with tempfile.TemporaryDirectory(prefix="rillet-scrub-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, configs=configs)
        cluster.start()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            cli(["topic", "create", "cold", "-p", "1", "--config", "segment.bytes=16777216"], env)
            preload(env, "cold", cold_mib, "1")
            cli(["topic", "create", "bench", "-p", "1"], env)
            pid = cluster.pid(1)
            b0 = broker_cpu_s(pid)
            out = cli(["perf", "produce", "--topic", "bench", "--num-records", str(records),
                       "--record-size", "100", "--throughput", "-1",
                       "--producer-props", "acks=1"], env)
            produce = float(out.strip().splitlines()[-1].split(" records/sec")[0].split(", ")[-1])
            out = cli(["perf", "consume", "--topic", "bench", "--messages", str(records)], env)
            consume = float(out.strip().splitlines()[-1].split(", ")[5])
            b1 = broker_cpu_s(pid)
        finally:
            cluster.stop()
    return {"produce": produce, "consume": consume, "broker_cpu_s": b1 - b0}


def scrub_speed(mib: int) -> dict:
    from rillet.logstore.batch import BatchBuilder
    from rillet.logstore.log import LogConfig, PartitionLog

    with tempfile.TemporaryDirectory(prefix="rillet-scrub-speed-") as tmp:
        config = LogConfig(segment_bytes=64 * MIB)
        log = PartitionLog.open(Path(tmp), config, 0)
        value = os.urandom(1000)
        while log.size_in_bytes < mib * MIB:
            b = BatchBuilder()
            for _ in range(64):
                b.append(0, None, value)
            log.append(b.build(), 0, 0)
        log.close()
        log = PartitionLog.open(Path(tmp), config, 0)
        t, c = time.perf_counter(), time.process_time()
        checked = 0
        while True:
            step = log.scrub(4 * MIB)
            checked += step.bytes_checked
            if step.pass_done:
                break
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        log.close()
    return {"mib": checked / MIB, "mib_per_s": checked / MIB / wall,
            "mib_per_cpu_s": checked / MIB / cpu}


def _meta(cluster: LocalCluster, topic: str):
    with ClientEndpoint() as endpoint:
        for b in cluster.broker_ids:
            if cluster.pid(b) is None:
                continue
            try:
                m = endpoint.request(cluster.address(b), P.MetadataRequest(topics=(topic,)),
                                     3000).result(5)
            except Exception:  # noqa: BLE001 - down or busy: try the next one
                continue
            if m.topics and m.topics[0].partitions:
                return m.topics[0].partitions[0]
    return None


def _wait(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def heal_round(mib: int, rate: int | None) -> dict:
    configs = {"replica.lag.time.max.ms": "5000", "broker.session.timeout.ms": "3000",
               "broker.heartbeat.interval.ms": "300"}
    if rate:
        configs["log.scrub.bytes.per.second"] = str(rate)
    with tempfile.TemporaryDirectory(prefix="rillet-heal-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=3, configs=configs)
        cluster.start()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            cli(["topic", "create", "heal", "-p", "1", "-r", "3", "--config",
                 "min.insync.replicas=2", "--config", "segment.bytes=67108864"], env)
            t = time.monotonic()
            preload(env, "heal", mib, "all")
            produce_s = time.monotonic() - t
            _wait(lambda: (m := _meta(cluster, "heal")) and len(m.isr) == 3, 300, "ISR of 3")
            victim = _meta(cluster, "heal").replicas[0]
            cluster.stop_broker(victim)
            segment = sorted((cluster.broker_dir(victim) / "heal-0").glob("*.log"))[0]
            data = bytearray(segment.read_bytes()[: 4 * MIB])
            second = next(iter(iter_batches(bytes(data), validate=False)))[0].length
            with open(segment, "r+b") as f:  # a payload byte of the second batch
                f.seek(second + 200)
                byte = f.read(1)
                f.seek(second + 200)
                f.write(bytes([byte[0] ^ 0x10]))
            size = sum(p.stat().st_size for p in (segment.parent).glob("*.log"))
            cluster.start_broker(victim)
            cluster.wait_ready(60, [victim])
            t0 = time.monotonic()
            _wait(lambda: (m := _meta(cluster, "heal")) and victim in m.damaged_replicas, 300,
                  "damage recorded")
            detected = time.monotonic() - t0
            _wait(lambda: (m := _meta(cluster, "heal")) and victim in m.isr
                  and not m.damaged_replicas, 1800, "healed")
            healed = time.monotonic() - t0
        finally:
            cluster.stop()
    return {"log_mib": size / MIB, "produce_s": produce_s, "detected_s": detected,
            "healed_s": healed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cold-mib", type=int, default=256)
    ap.add_argument("--heal-mib", type=int, default=1024)
    ap.add_argument("--rate", type=int, default=None,
                    help="log.scrub.bytes.per.second (default: the broker's, 32 MiB/s)")
    ap.add_argument("--skip-heal", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    if not args.skip_throughput:
        rows = {True: [], False: []}
        for n in range(args.rounds):
            for scrub in (True, False) if n % 2 == 0 else (False, True):
                r = throughput_round(scrub, args.records, args.cold_mib, args.rate)
                rows[scrub].append(r)
                print(f"round {n + 1} scrub={'on ' if scrub else 'off'}: produce "
                      f"{r['produce']:,.0f} rec/s, consume {r['consume']:,.0f} rec/s, broker "
                      f"CPU {r['broker_cpu_s']:.1f} s", flush=True)
        med = {s: {k: statistics.median(r[k] for r in rows[s]) for k in rows[s][0]}
               for s in rows}
        print(f"median scrub on/off: produce {med[True]['produce'] / med[False]['produce']:.3f},"
              f" consume {med[True]['consume'] / med[False]['consume']:.3f}, broker CPU "
              f"{med[True]['broker_cpu_s']:.1f} s vs {med[False]['broker_cpu_s']:.1f} s")
    speed = scrub_speed(args.cold_mib)
    rate = (args.rate or 32 * MIB) / MIB
    print(f"scrub speed: {speed['mib']:.0f} MiB in one pass, {speed['mib_per_s']:,.0f} MiB/s "
          f"wall, {speed['mib_per_cpu_s']:,.0f} MiB per CPU second: at {rate:.0f} MiB/s the "
          f"scrubber uses {100 * rate / speed['mib_per_cpu_s']:.1f}% of one core", flush=True)
    if not args.skip_heal:
        r = heal_round(args.heal_mib, args.rate)
        print(f"heal: {r['log_mib']:.0f} MiB log (produced with acks=all in "
              f"{r['produce_s']:.0f} s); damage recorded {r['detected_s']:.1f} s after the "
              f"restarted replica was ready, healed (re-fetched, back in the ISR) after "
              f"{r['healed_s']:.1f} s")


if __name__ == "__main__":
    main()
