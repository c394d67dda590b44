"""``rillet top``: a live terminal view of the cluster from the brokers' Prometheus
endpoints (docs/metrics.md): brokers, per-topic rates, under-replicated partitions, and
consumer groups with lag (the group coordinators' ``rillet_consumer_group_lag``).

Rates are the difference of two scrapes divided by the time between them; ``--once`` takes
two scrapes ``--interval`` apart and prints one frame (for scripts and tests)."""

from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass, field

import click
from prometheus_client.parser import text_string_to_metric_families

from rillet.profile import read_profile


@dataclass
class Scrape:
    """One scrape of one broker: ``samples`` {(name, sorted labels): value}, or ``error``."""

    url: str
    at: float
    samples: dict[tuple[str, tuple], float] = field(default_factory=dict)
    error: str | None = None

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for (n, labels), v in self.samples.items():
            if n == name:
                key = dict(labels).get(label)
                if key is not None:
                    out[key] = out.get(key, 0.0) + v
        return out


def scrape(url: str, timeout_s: float = 2.0) -> Scrape:
    at = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            text = r.read().decode()
    except Exception as e:  # noqa: BLE001 - a broker down is a row saying so, not a crash
        return Scrape(url, at, error=str(getattr(e, "reason", e)))
    s = Scrape(url, at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            s.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return s


def _topic_totals(scrapes: list[Scrape]) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = {}
    for s in scrapes:
        for key, name in (
            ("msgs", "rillet_topic_messages_in_total"),
            ("in", "rillet_topic_bytes_in_total"),
            ("out", "rillet_topic_bytes_out_total"),
            ("msgs_out", "rillet_topic_messages_out_total"),
        ):
            for topic, v in s.by(name, "topic").items():
                totals.setdefault(topic, dict.fromkeys(_KEYS, 0.0))[key] += v
    return totals


_KEYS = ("msgs", "in", "out", "msgs_out")


def _quorum(before: list[Scrape], after: list[Scrape]) -> str:
    """One line on the controller quorum, from the active controller's scrape."""
    for b, a in zip(before, after, strict=False):
        if a.error or not a.get("rillet_active_controller"):
            continue
        if not any(name == "rillet_raft_current_epoch" for name, _ in a.samples):
            return "controller quorum: the active controller exports no Raft metrics"
        count = a.get("rillet_raft_commit_latency_seconds_count") - b.get(
            "rillet_raft_commit_latency_seconds_count")
        total = a.get("rillet_raft_commit_latency_seconds_sum") - b.get(
            "rillet_raft_commit_latency_seconds_sum")
        latency = f"{total / count * 1000:.1f} ms avg over {count:.0f}" if count > 0 else "-"
        lag = " ".join(f"{v}:{n:.0f}" for v, n in sorted(a.by("rillet_raft_voter_lag", "voter").items()))
        return (f"controller quorum: epoch {a.get('rillet_raft_current_epoch'):.0f}, "
                f"commit latency {latency}, voter lag (entries) {lag or '-'}")
    return "controller quorum: no active controller among the endpoints"


def _human(n: float) -> str:
    for unit in ("", "K", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"


def _table(headers: list[str], rows: list[tuple]) -> list[str]:
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


def group_lags(scrapes: list[Scrape]) -> tuple[list[tuple[str, int, int]], str | None]:
    """[(group, total lag, partitions with lag)] of every consumer group with committed
    offsets, from the brokers' ``rillet_consumer_group_lag`` (each group's coordinator
    reports every partition it has committed offsets for; docs/metrics.md), or an error."""
    committed: set[str] = set()
    lags: dict[tuple[str, str, str], float] = {}
    up = 0
    for s in scrapes:
        if s.error:
            continue
        up += 1
        for (name, labels), v in s.samples.items():
            if name == "rillet_consumer_group_committed_offset":
                committed.add(dict(labels)["group"])
            elif name == "rillet_consumer_group_lag":
                d = dict(labels)
                key = (d["group"], d["topic"], d["partition"])
                lags[key] = max(v, lags.get(key, 0.0))  # two reports while a group moves
    if not up:
        return [], "no broker answered"
    out: dict[str, list[float]] = {g: [] for g in committed}
    for (group, _topic, _partition), v in lags.items():
        out.setdefault(group, []).append(v)
    return [(g, int(sum(v)), sum(1 for lag in v if lag > 0)) for g, v in sorted(out.items())], None


def render(before: list[Scrape], after: list[Scrape], groups, groups_error) -> str:
    lines = [time.strftime("rillet top - %H:%M:%S"), ""]
    rows = []
    dt = max((after[0].at - before[0].at) if after and before else 0.0, 1e-3)
    for b, s in zip(before, after, strict=False):
        if s.error:
            rows.append((s.url, "DOWN", "-", "-", "-", "-", "-", "-", s.error[:40]))
            continue
        shrinks = s.get("rillet_isr_shrinks_total") - b.get("rillet_isr_shrinks_total")
        expands = s.get("rillet_isr_expands_total") - b.get("rillet_isr_expands_total")
        rows.append((
            s.url, "up", int(s.get("rillet_leader_count")), int(s.get("rillet_partition_count")),
            int(s.get("rillet_under_replicated_partitions")),
            int(sum(s.by("rillet_connection_count", "listener").values())),  # every listener
            f"{max(0.0, shrinks) / dt:.1f}/{max(0.0, expands) / dt:.1f}",
            f"{s.get('rillet_purgatory_size', delayed_operation='Produce'):.0f}/"
            f"{s.get('rillet_purgatory_size', delayed_operation='Fetch'):.0f}",
            "active controller" if s.get("rillet_active_controller") else "",
        ))
    lines += _table(["BROKER", "STATE", "LEADERS", "PARTITIONS", "URP", "CONNS",
                     "ISR-/+ PER S", "PURGATORY P/F", ""], rows)
    lines.append(_quorum(before, after))
    lines.append("")
    old, new = _topic_totals(before), _topic_totals(after)
    trows = []
    for topic in sorted(new):
        n, o = new[topic], old.get(topic, dict.fromkeys(_KEYS, 0.0))
        trows.append((
            topic, _human((n["msgs"] - o["msgs"]) / dt), _human((n["in"] - o["in"]) / dt),
            _human((n["msgs_out"] - o["msgs_out"]) / dt), _human((n["out"] - o["out"]) / dt),
            _human(n["msgs"]),
        ))
    lines += _table(["TOPIC", "MSG/S IN", "BYTES/S IN", "MSG/S OUT", "BYTES/S OUT",
                     "MSGS TOTAL"], trows)
    lines.append("")
    urp = sorted(
        (dict(labels)["topic"], dict(labels)["partition"], s.url)
        for s in after
        for (name, labels), v in s.samples.items()
        if name == "rillet_partition_under_replicated" and v
    )
    if urp:
        lines += _table(["UNDER-REPLICATED", "PARTITION", "LEADER"], urp)
    else:
        lines.append("under-replicated partitions: none")
    lines.append("")
    if groups_error:
        lines.append(f"consumer groups: unavailable ({groups_error[:80]})")
    else:
        lagging = sorted((g for g in groups if g[1] > 0), key=lambda g: -g[1])
        lines += _table(["LAGGING GROUP", "LAG", "PARTITIONS LAGGING"], lagging)
        lines.append(f"({len(groups)} group(s), {len(lagging)} lagging)")
    return "\n".join(lines)


def metrics_urls(urls: tuple[str, ...]) -> list[str]:
    if urls:
        return list(urls)
    found = read_profile().get("metrics")
    if isinstance(found, dict) and found:
        return [str(u) for _, u in sorted(found.items(), key=lambda kv: int(kv[0]))]
    raise click.UsageError(
        "no metrics endpoints: pass --metrics URL (repeatable) or start a local cluster with "
        "`rillet cluster up` (its profile lists them)")


@click.command("top")
@click.option("--metrics", "urls", multiple=True, metavar="URL",
              help="A broker's metrics URL (repeatable; default: the profile's).")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame (two scrapes --interval apart).")
def top(urls, interval, once) -> None:
    """Live view of the cluster: brokers, topic rates, under-replicated partitions, lagging
    consumer groups (Ctrl-C to quit)."""
    targets = metrics_urls(urls)
    before = [scrape(u) for u in targets]
    try:
        while True:
            time.sleep(interval)  # the refresh period of the view, not a synchronisation
            after = [scrape(u) for u in targets]
            groups, error = group_lags(after)
            frame = render(before, after, groups, error)
            if once:
                click.echo(frame)
                return
            click.echo("\x1b[H\x1b[2J" + frame, nl=True)
            before = after
    except KeyboardInterrupt:
        pass
