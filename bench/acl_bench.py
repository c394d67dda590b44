"""The cost of authorization per request (issue #19, docs/security.md "Authorization"):
``actors/authorize.gate`` on a Produce of 10 topics, all allowed by one PREFIXED binding,
with 1, 100, 1,000 and 10,000 bindings in the image (the others on other principals and
names), best of 5 runs of N calls, CPU time. In-process: the broker's work per request,
without sockets.

    .venv/bin/python bench/acl_bench.py
"""

from __future__ import annotations

import time

from rillet.actors import authorize
from rillet.actors.authorize import Authorizer, Who
from rillet.coordinator.acl import AclBinding
from rillet.transport import protocol as P


def bindings(n: int) -> frozenset:
    out = {AclBinding(resource_type="TOPIC", resource_name="orders", pattern_type="PREFIXED",
                      principal="User:alice", host="*", operation="WRITE", permission="ALLOW")}
    for i in range(n - 1):
        out.add(AclBinding(resource_type="TOPIC", resource_name=f"t{i}",
                           pattern_type="PREFIXED" if i % 2 else "LITERAL",
                           principal=f"User:u{i}", host="*", operation="READ",
                           permission="ALLOW"))
    return frozenset(out)


def main() -> None:
    req = P.ProduceRequest(acks=-1, timeout_ms=1000, topics=tuple(
        P.ProduceTopic(name=f"orders-{i}", partitions=(P.ProducePartition(partition=0,
                                                                          records=b"x"),))
        for i in range(10)))
    for n in (1, 100, 1000, 10_000):
        who = Who("User:alice", "127.0.0.1", bindings(n), Authorizer(True))
        authorize.gate(who, req, lambda r: None)  # builds the index once, as a broker does
        calls, best = 2000, float("inf")
        for _ in range(5):
            started = time.process_time()
            for _ in range(calls):
                dispatched, _ = authorize.gate(who, req, lambda r: None)
            best = min(best, (time.process_time() - started) / calls)
        assert dispatched is req
        print(f"{n:6d} bindings: {best * 1e6:7.1f} us per 10-topic Produce "
              f"({best * 1e5:5.1f} us per topic)")


if __name__ == "__main__":
    main()
