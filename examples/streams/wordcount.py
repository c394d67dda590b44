"""Word count with rillet.streams (docs/streams.md "Quick start").

Reads lines from ``text``, splits them into words, counts each word in the store ``counts``
(SQLite under state.dir, logged to ``wordcount-counts-changelog``) and writes every new count
to ``word-counts`` (key: the word, value: the count as an 8-byte big-endian Long).

    rillet cluster up
    rillet topic create text --partitions 2 && rillet topic create word-counts --partitions 2
    rillet streams run examples/streams/wordcount.py:app       # Ctrl-C stops it cleanly
    # elsewhere:
    rillet produce text <<< "the quick brown fox jumps over the lazy dog"

Or run this file: it feeds a few lines itself, waits for the counts, prints them and stops.
"""

from __future__ import annotations

import argparse
import sys
import time

from rillet import Admin, Consumer, NewTopic, Producer
from rillet.errors import TopicAlreadyExistsError
from rillet.streams import App, serdes


def _arg(flag: str) -> str | None:
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else None


config = {"commit.interval.ms": 200}
if _arg("--bootstrap"):
    config["bootstrap.servers"] = _arg("--bootstrap")
if _arg("--state-dir"):
    config["state.dir"] = _arg("--state-dir")

app = App("wordcount", config)
counts = (app.stream("text", value_serde=serdes.String)
          .flat_map_values(lambda line: line.lower().split())
          .group_by(lambda _key, word: word, key_serde=serdes.String)
          .count(store="counts"))
counts.to_stream().to("word-counts", key_serde=serdes.String, value_serde=serdes.Long)

LINES = ["the quick brown fox", "jumps over the lazy dog", "the dog sleeps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="host:port (default: $RILLET_BROKERS / profile)")
    parser.add_argument("--state-dir", help="where the stores live")
    parser.parse_args()  # (read above, where the app is configured)
    bootstrap = app.config.bootstrap_servers
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        for name in ("text", "word-counts"):
            try:
                admin.create_topics([NewTopic(name, 2)])
            except TopicAlreadyExistsError:
                pass
    with Producer({"bootstrap.servers": bootstrap}) as producer:
        for i, line in enumerate(LINES):
            producer.send("text", line.encode(), key=str(i).encode())
    expected: dict[str, int] = {}
    for line in LINES:
        for word in line.split():
            expected[word] = expected.get(word, 0) + 1
    app.start()
    latest: dict[str, int] = {}
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}) as out:
        out.assign([(("word-counts", p)) for p in range(2)])
        deadline = time.monotonic() + 60
        while latest != expected and time.monotonic() < deadline:
            for records in out.poll(500).values():
                for r in records:
                    latest[r.key.decode()] = serdes.Long.deserialize("word-counts", r.value)
    print("interactive query: the =", app.store("counts").get("the"))
    app.close()
    for word in sorted(latest):
        print(f"{word}\t{latest[word]}")
    if latest != expected:
        sys.exit(f"unexpected counts: {latest} (expected {expected})")


if __name__ == "__main__":
    main()
