"""Transactions from the command line, run as a user runs it: `rillet transactions
list|describe|force-terminate`, `rillet consume --isolation-level read_committed` and
`rillet perf produce --transaction-size` against a real broker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rillet import Admin, NewTopic, Producer
from rillet.errors import ProducerFencedError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def run(args, bootstrap, check: bool = True):
    env = {k: v for k, v in os.environ.items() if k != "RILLET_BROKERS"}
    proc = subprocess.run([*RILLET, *args, "-b", bootstrap], capture_output=True, env=env,
                          timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"rillet {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout.decode()}\n{proc.stderr.decode()}")
    return proc.stdout.decode() if check else (proc.returncode, proc.stderr.decode())


def consume(bootstrap, isolation: str) -> list[str]:
    out = run(["consume", "t", "--from-beginning", "-e", "--timeout-ms", "5000",
               "--isolation-level", isolation], bootstrap)
    return out.splitlines()


def test_an_open_transaction_is_listed_described_hidden_and_force_terminated(cluster_factory):
    bootstrap = cluster_factory(1).bootstrap_servers
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic("t", 2, 1)])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "cli-app"})
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("t", b"pending", partition=1)
        producer.flush(30)
        listed = run(["transactions", "list"], bootstrap).splitlines()
        assert listed[0].split() == ["TransactionalId", "Coordinator", "ProducerId",
                                     "TransactionState"]
        assert ["cli-app", "Ongoing"] == [listed[1].split()[0], listed[1].split()[3]]
        assert run(["transactions", "list", "--state", "Empty"], bootstrap).count("\n") == 1
        described = run(["transactions", "describe", "--transactional-id", "cli-app"],
                        bootstrap).splitlines()
        row = dict(zip(described[0].split(), described[1].split(), strict=True))
        assert row["TransactionState"] == "Ongoing" and row["TopicPartitions"] == "t-1"
        # the open transaction holds read_committed consumers back; read_uncommitted sees it
        assert consume(bootstrap, "read_committed") == []
        assert consume(bootstrap, "read_uncommitted") == ["pending"]
        out = run(["transactions", "force-terminate", "--transactional-id", "cli-app"],
                  bootstrap)
        assert "terminated" in out
        with pytest.raises(ProducerFencedError):
            producer.commit_transaction(timeout=15)
    finally:
        producer.close()
    assert consume(bootstrap, "read_committed") == []  # aborted: never visible
    state = run(["transactions", "describe", "--transactional-id", "cli-app"], bootstrap)
    assert "CompleteAbort" in state or "Empty" in state
    code, err = run(["transactions", "describe", "--transactional-id", "nobody"], bootstrap,
                    check=False)
    assert code == 1 and "nobody" in err and "Traceback" not in err, err


def test_perf_produce_in_transactions_commits_every_record(cluster_factory):
    bootstrap = cluster_factory(1).bootstrap_servers
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic("t", 1, 1)])
    out = run(["perf", "produce", "-t", "t", "-n", "250", "-s", "10", "--transaction-size",
               "100"], bootstrap)
    assert "250 records sent" in out
    assert len(consume(bootstrap, "read_committed")) == 250
