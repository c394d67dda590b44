"""A file -> topic -> SQLite pipeline, start to finish, with the config files of this folder.

    python examples/connect/pipeline.py                  # starts a throw-away local cluster
    python examples/connect/pipeline.py --bootstrap 127.0.0.1:9092   # or uses yours

It copies worker.properties, file-source.properties, sqlite-sink.json and counter.properties
into a work directory (bootstrap.servers and rest.port filled in), writes orders.jsonl, runs
``rillet connect standalone`` as a separate process, and prints what lands in orders.db,
including a line that is not JSON (it goes to the dead-letter topic ``orders-dlq``) and an
update of an existing order (upsert by id).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDERS = [
    {"id": 1, "item": "tea", "qty": 2},
    {"id": 2, "item": "jam", "qty": 1},
    {"id": 3, "item": "bread", "qty": 4},
]


def wait_for(cond, timeout: float = 30, what: str = "the pipeline"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT id, item, qty, source FROM orders ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def prepare(work: Path, bootstrap: str) -> list[Path]:
    worker = (HERE / "worker.properties").read_text()
    worker = worker.replace("rest.port=8083", "rest.port=0")
    worker += f"bootstrap.servers={bootstrap}\n"
    (work / "worker.properties").write_text(worker)
    for name in ("file-source.properties", "sqlite-sink.json", "counter.properties",
                 "counter.py"):
        shutil.copy(HERE / name, work / name)
    return [work / "worker.properties", work / "file-source.properties",
            work / "sqlite-sink.json", work / "counter.properties"]


def run(bootstrap: str, work: Path) -> None:
    configs = prepare(work, bootstrap)
    src = work / "orders.jsonl"
    db = work / "orders.db"
    src.write_text("".join(json.dumps(o) + "\n" for o in ORDERS))
    print(f"$ rillet connect standalone {' '.join(p.name for p in configs)}")
    log = open(work / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "rillet.cli.connect", "standalone",
                             *map(str, configs)], cwd=work, stdout=subprocess.PIPE,
                            stderr=log, text=True)
    try:
        assert proc.stdout is not None
        url = ""
        for _ in range(4):  # the REST line, then one line per connector
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"the worker exited; see {work / 'worker.log'}")
            print("  " + line.rstrip())
            if line.startswith("REST API listening on "):
                url = line.split()[-1]
        wait_for(lambda: len(rows(db)) == 3, what="3 rows")
        print("\norders.db after the first 3 lines:")
        for r in rows(db):
            print(f"  {r}")
        with open(src, "a") as f:
            f.write("this line is not JSON\n")
            f.write(json.dumps({"id": 2, "item": "jam", "qty": 5}) + "\n")
            f.write(json.dumps({"id": 4, "item": "honey", "qty": 1, "note": "new column"})
                    + "\n")
        wait_for(lambda: len(rows(db)) == 4 and rows(db)[1][2] == 5, what="the update")
        print("\nafter appending a bad line, an update of order 2 and a new order:")
        for r in rows(db):
            print(f"  {r}")
        with urllib.request.urlopen(f"{url}/connectors?expand=status", timeout=10) as resp:
            status = json.load(resp)
        print("\nGET /connectors?expand=status")
        for name, info in sorted(status.items()):
            tasks = ", ".join(f"{t['id']}:{t['state']}" for t in info["status"]["tasks"])
            print(f"  {name:20} {info['status']['type']:6} "
                  f"{info['status']['connector']['state']:8} tasks [{tasks}]")
        dlq = count_dlq(bootstrap)
        print(f"\nrecords in the dead-letter topic orders-dlq: {dlq}")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    print("worker stopped")


def count_dlq(bootstrap: str) -> int:
    from rillet import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"})
    try:
        tp = TopicPartition("orders-dlq", 0)
        c.assign([tp])
        return c.end_offsets([tp])[tp]
    finally:
        c.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="an existing cluster (default: start one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rillet-connect-") as tmp:
        work = Path(tmp)
        if args.bootstrap:
            run(args.bootstrap, work)
            return
        from rillet.launcher import LocalCluster

        cluster = LocalCluster(work / "cluster", 1)
        cluster.start(timeout_s=30)
        print(f"started a local cluster at {cluster.bootstrap_servers}")
        try:
            run(cluster.bootstrap_servers, work)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
