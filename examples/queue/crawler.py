"""The crawler of the notes, on a share group: retries with growing delays kept by the
broker, dead letters with their reason, and a redrive once the site is back.

Two share consumers (threads here; processes or machines in real life) crawl the URLs of
topic ``urls``. ``flaky.example`` answers 503 twice, then 200: its records are released
without a delay, so the broker redelivers them after the group's back-off (200 ms, 400 ms,
...). ``down.example`` always answers 503: after ``share.delivery.count.limit`` (4)
deliveries the broker moves each to ``urls.dlq`` with reason "delivery count limit
reached". ``gone.example`` answers 404: rejected at once with that reason. Then the site
comes back and ``rillet queue redrive --from urls.dlq --to urls --filter 'reason~=limit'``
(the library call here) brings the down.example URLs back; they are crawled.

    python examples/queue/crawler.py          # $RILLET_BROKERS or `rillet cluster up`
"""

from __future__ import annotations

import sys
import threading
import time

from rillet import Admin, Consumer, NewTopic, Producer, ShareConsumer, TopicPartition
from rillet.redrive import redrive

GROUP = "crawler"
URLS = [f"https://{site}/page/{i}" for site in ("ok.example", "flaky.example",
                                                "down.example", "gone.example")
        for i in range(2)]


class Site:
    """The web, as seen by the crawler: answers by host (and how often it was asked)."""

    def __init__(self) -> None:
        self.down_is_back = False

    def fetch(self, url: str, delivery_count: int) -> int:
        host = url.split("/")[2]
        if host == "flaky.example":
            return 503 if delivery_count <= 2 else 200
        if host == "down.example":
            return 200 if self.down_is_back else 503
        if host == "gone.example":
            return 404
        return 200


def setup(admin: Admin) -> None:
    topics = set(admin.list_topics())
    for name in ("urls", "urls.dlq"):
        if name in topics:
            admin.delete_topics([name])
    admin.create_topics([NewTopic("urls", 2, 1)])
    admin.alter_group_configs(GROUP, set={
        "share.auto.offset.reset": "earliest", "share.delivery.count.limit": 4,
        "retry.backoff.ms": 200, "retry.backoff.multiplier": 2, "retry.backoff.max.ms": 2000,
        "share.record.lock.duration.ms": 15000})


def crawl(site: Site, done: dict, lock: threading.Lock, stop: threading.Event, t0: float,
          name: str) -> None:
    consumer = ShareConsumer(group_id=GROUP, client_id=name)
    consumer.subscribe(["urls"])
    try:
        while not stop.is_set():
            for record in consumer.poll(timeout_ms=200):
                url = record.value.decode()
                status = site.fetch(url, record.delivery_count)
                at = time.monotonic() - t0
                with lock:
                    print(f"{at:6.2f}s {name} try {record.delivery_count} {url} -> {status}")
                if status == 200:
                    consumer.acknowledge(record, "accept")
                    with lock:
                        done[url] = "crawled"
                elif status == 404:
                    consumer.acknowledge(record, "reject", reason=f"HTTP {status}")
                    with lock:
                        done[url] = "dead-lettered"
                else:
                    consumer.acknowledge(record, "release")  # the group's back-off
                    if record.delivery_count >= 4:  # share.delivery.count.limit: the broker
                        with lock:                  # dead-letters it now
                            done[url] = "gave up"
            consumer.commit_sync()
    finally:
        consumer.close()


def dead_letters(n: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer(auto_offset_reset="earliest")
    consumer.assign([TopicPartition("urls.dlq", 0)])
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(records)
    consumer.close()
    return out


def run_crawlers(site: Site, until, timeout_s: float = 60.0) -> dict:
    done: dict[str, str] = {}
    lock, stop, t0 = threading.Lock(), threading.Event(), time.monotonic()
    threads = [threading.Thread(target=crawl, args=(site, done, lock, stop, t0, f"crawler-{i}"))
               for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout_s
    while not until(done) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(30)
    return done


def main() -> int:
    with Admin() as admin:
        setup(admin)
        servers = admin.config.bootstrap_servers
    with Producer() as producer:
        for url in URLS:
            producer.send("urls", url.encode(), key=url.split("/")[2].encode())
        producer.flush()
    site = Site()
    print("== crawling")
    down = [u for u in URLS if "down.example" in u]
    run_crawlers(site, lambda d: len(d) == len(URLS))
    letters = dead_letters(len(down) + 2)
    for r in sorted(letters, key=lambda r: r.value):
        h = dict(r.headers)
        print(f"dead letter: {r.value.decode()} after {h['rillet.dlq.delivery.count'].decode()}"
              f" deliveries: {h['rillet.dlq.reason'].decode()}")
    print("== down.example is back: redrive")
    site.down_is_back = True
    result = redrive(servers, "urls.dlq", "urls",
                     filters=["reason~=limit"])
    print(f"redrove {result.moved} record(s), skipped {result.skipped}")
    done = run_crawlers(site, lambda d: all(d.get(u) == "crawled" for u in down))
    crawled = sorted(u for u, v in done.items() if v == "crawled")
    print(f"crawled after redrive: {', '.join(crawled)}")
    return 0 if all(u in crawled for u in down) else 1


if __name__ == "__main__":
    sys.exit(main())
