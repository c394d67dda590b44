"""Where end-to-end latency goes, hop by hop (issue #12).

Runs the workload of ``e2e_latency.py`` (a producer at a fixed rate with ``linger.ms=0``, a
consumer polling in another process) with trace marks in every process, then follows each
record from ``send()`` to the consumer's ``poll()`` through the marks that come next in time:

    P.send     the application calls send()              (producer main thread)
    P.req      the sender thread hands a request over    (producer sender thread)
    P.zsend    the I/O thread gives it to ZeroMQ         (producer I/O thread)
    B.recv     the broker's I/O thread reads it          (leader, endpoint I/O thread)
    B.sessP    the client session decodes the Produce    (session actor, default lane)
    B.append   the partition actor starts the append     (partition actor, io lane)
    F.resp / F.appended / B.hw   (acks=all only) a follower's fetch response arrives, its
               append returns, the leader's high watermark moves
    B.wake     a consumer fetch is answered with records (parked waiter or immediate read)
    B.flush    the I/O thread hands a response to ZeroMQ
    C.deliver  the consumer's I/O thread decodes a FetchResponse with records
    C.poll     poll() returns the records                (consumer thread)

The marks are not in the shipped code: apply ``bench/e2e_hops.patch`` to a scratch checkout
(or your worktree, then ``git checkout -- .`` and delete ``rillet/_trace.py``)::

    git apply bench/e2e_hops.patch
    .venv/bin/python bench/e2e_hops.py --records 5000 --rate 5000             # acks=1
    .venv/bin/python bench/e2e_hops.py --brokers 3 --acks all --records 10000

After the chains it prints two legs they hide: the producer's sender wake-up (the answer to
the request in flight -> the next request) and, with acks=all, the high-watermark advance
split by follower (it waits for the slower one). It stops if no broker wrote marks (the
brokers ran a checkout without the patch).

Matching is by time (the next mark of each kind after the previous one), so at high rates
a chain may borrow a neighbour's mark; medians are robust to that, maxima are not. Chains
longer than ``--max-chain-ms`` are left out (``--slow-ms`` shows only the slow ones instead).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_latency as E  # noqa: E402

ORDER = ["P.req", "P.zsend", "B.recv", "B.sessP", "B.append", "B.wake", "B.flush",
         "C.deliver", "C.poll"]
FOLLOWER = ["F.resp", "F.appended", "B.hw"]


def run(brokers: int, acks: str, total: int, rate: int, trace_dir: str) -> dict:
    """e2e_latency's run, with the trace marks on (every process inherits RILLET_TRACE)."""
    os.environ["RILLET_TRACE"] = trace_dir
    return E.rillet_run(brokers, acks, total, rate)


def load(trace_dir: str) -> list[tuple[int, str, str]]:
    events = []
    for f in Path(trace_dir).glob("trace-*.txt"):
        pid = f.stem.split("-")[-1]
        for line in f.read_text().splitlines():
            t, tag = line.split(" ", 1)
            events.append((int(t), pid, tag))
    events.sort()
    return events


def chains(events, follower: bool, max_ms: float, slow_ms: float | None):
    tags: dict[str, set[str]] = {}
    for _, pid, tag in events:
        tags.setdefault(pid, set()).add(tag)
    producer = next(p for p, s in tags.items() if "P.send" in s)
    consumer = next(p for p, s in tags.items() if "C.poll" in s)
    leaders = {p for p, s in tags.items() if "B.append" in s}
    if not leaders:
        import rillet.actors

        sys.exit(f"no broker wrote trace marks: the brokers ran {rillet.actors.__file__}, "
                 "which does not have bench/e2e_hops.patch applied")

    def times(pred) -> list[int]:
        return [t for t, pid, tag in events if pred(pid, tag)]

    streams = {
        "P.req": times(lambda p, g: p == producer and g == "P.req"),
        "P.zsend": times(lambda p, g: p == producer and g == "X.zsend"),
        "B.recv": times(lambda p, g: p in leaders and g == "B.recv"),
        "B.sessP": times(lambda p, g: p in leaders and g == "B.sess:Produce"),
        "B.append": times(lambda p, g: p in leaders and g == "B.append"),
        "F.resp": times(lambda p, g: p not in leaders and g == "F.resp"),
        "F.appended": times(lambda p, g: p not in leaders and g == "F.appended"),
        "B.hw": times(lambda p, g: p in leaders and g == "B.hw"),
        "B.wake": times(lambda p, g: p in leaders and g == "B.wake"),
        "B.flush": times(lambda p, g: p in leaders and g == "B.flush"),
        "C.deliver": times(lambda p, g: p == consumer and g.startswith("X.deliver:Fetch")
                           and not g.endswith(":0")),
        "C.poll": times(lambda p, g: p == consumer and g == "C.poll"),
    }
    order = ORDER[:5] + (FOLLOWER if follower else []) + ORDER[5:]
    sends = times(lambda p, g: p == producer and g == "P.send")
    hops: dict[str, list[float]] = {k: [] for k in order}
    totals = []
    for t0 in sends[E.WARMUP:]:
        t, step = t0, {}
        for k in order:
            xs = streams[k]
            i = bisect.bisect_left(xs, t)
            if i >= len(xs):
                break
            step[k] = (xs[i] - t) / 1e3
            t = xs[i]
        else:
            total = (t - t0) / 1e6
            if (slow_ms is not None and total < slow_ms) or (slow_ms is None and total > max_ms):
                continue
            totals.append(total * 1e3)
            for k in order:
                hops[k].append(step[k])
    return order, hops, totals


def details(events, follower: bool) -> dict[str, list[float]]:
    """Two legs the chains hide. The producer: a request leaves when the answer to the one
    in flight arrives (its coalescing), so ``answer -> P.req`` is the sender thread's
    wake-up. acks=all: the high watermark waits for the slower follower, so each advance is
    split into the leader's append -> each follower's response, and the slower follower's
    append -> the advance."""
    by: dict[tuple[str, str], list[int]] = {}
    for t, pid, tag in events:
        if tag.startswith("X.deliver:"):
            tag = tag.split(":")[1]
        by.setdefault((pid, tag), []).append(t)
    pids = {pid for pid, _ in by}

    def of(tag: str) -> list[str]:
        return sorted(p for p in pids if (p, tag) in by)

    def before(xs: list[int], t: int) -> int | None:
        i = bisect.bisect_left(xs, t)
        return xs[i - 1] if i else None

    out: dict[str, list[float]] = {"producer answer -> P.req": []}
    producer = of("P.send")[0]
    answers = by.get((producer, "ProduceResponse"), [])
    for t in by.get((producer, "P.req"), []):
        a = before(answers, t)
        if a is not None:
            out["producer answer -> P.req"].append((t - a) / 1e3)
    leaders, followers = of("B.hw"), of("F.appended")
    if not follower or not leaders or len(followers) < 2:
        return out
    leader = leaders[0]
    for k in ("B.append -> faster F.resp", "B.append -> slower F.resp",
              "slower F.appended -> B.hw"):
        out[k] = []
    for t in by[(leader, "B.hw")][E.WARMUP // 20:]:
        appended = [before(by[(p, "F.appended")], t) for p in followers]
        resp = [before(by[(p, "F.resp")], t) for p in followers]
        start = before(by[(leader, "B.append")], t)
        if None in appended or None in resp or start is None:
            continue
        slow = max(range(len(followers)), key=lambda i: appended[i])
        out["B.append -> faster F.resp"].append((min(resp) - start) / 1e3)
        out["B.append -> slower F.resp"].append((resp[slow] - start) / 1e3)
        out["slower F.appended -> B.hw"].append((t - appended[slow]) / 1e3)
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--max-chain-ms", type=float, default=50.0)
    ap.add_argument("--slow-ms", type=float, help="show only chains slower than this")
    ap.add_argument("--trace-dir", help="analyse an earlier run's marks instead of running")
    args = ap.parse_args()
    if args.trace_dir is None:
        try:
            import rillet._trace  # noqa: F401
        except ImportError:
            sys.exit("the trace marks are missing: git apply bench/e2e_hops.patch first")
        trace_dir = tempfile.mkdtemp(prefix="rillet-trace-")
        print(f"load average before: {os.getloadavg()[0]:.2f}")
        print(json.dumps(run(args.brokers, args.acks, args.records, args.rate, trace_dir)))
        print(f"marks in {trace_dir}")
    else:
        trace_dir = args.trace_dir
    order, hops, totals = chains(load(trace_dir), args.brokers > 1, args.max_chain_ms,
                                 args.slow_ms)
    print(f"{len(totals)} chains; send -> poll p50 {pct(totals, .5):.0f} us, "
          f"p90 {pct(totals, .9):.0f}, p99 {pct(totals, .99):.0f}")
    prev = "P.send"
    for k in order:
        xs = hops[k]
        print(f"  {prev:>10} -> {k:<10} p50 {pct(xs, .5):6.0f} us   p90 {pct(xs, .9):6.0f}"
              f"   p99 {pct(xs, .99):6.0f}")
        prev = k
    for k, xs in details(load(trace_dir), args.brokers > 1).items():
        print(f"  {k:>34} p50 {pct(xs, .5):6.0f} us   p90 {pct(xs, .9):6.0f}"
              f"   p99 {pct(xs, .99):6.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
