"""``rillet top``'s frame from two scrapes (rillet/cli/top.py): the broker row's ISR
shrink/expand rates and purgatory sizes, the controller quorum line, messages out per topic.
Scrapes parsed from exposition text as a broker serves it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from rillet.cli.top import Scrape, render


def _scrape(at: float, text: str, url: str = "http://b1/metrics") -> Scrape:
    s = Scrape(url, at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            s.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return s


def _text(shrinks: int, commits: int, latency_sum: float, out: int) -> str:
    return f"""# TYPE rillet_active_controller gauge
rillet_active_controller 1.0
# TYPE rillet_isr_shrinks counter
rillet_isr_shrinks_total {shrinks}.0
# TYPE rillet_isr_expands counter
rillet_isr_expands_total 0.0
# TYPE rillet_purgatory_size gauge
rillet_purgatory_size{{delayed_operation="Produce"}} 2.0
rillet_purgatory_size{{delayed_operation="Fetch"}} 5.0
# TYPE rillet_raft_current_epoch gauge
rillet_raft_current_epoch 7.0
# TYPE rillet_raft_commit_latency_seconds histogram
rillet_raft_commit_latency_seconds_bucket{{le="+Inf"}} {commits}.0
rillet_raft_commit_latency_seconds_count {commits}.0
rillet_raft_commit_latency_seconds_sum {latency_sum}
# TYPE rillet_raft_voter_lag gauge
rillet_raft_voter_lag{{voter="2"}} 0.0
rillet_raft_voter_lag{{voter="3"}} 12.0
# TYPE rillet_topic_messages_in counter
rillet_topic_messages_in_total{{topic="t"}} {out}.0
# TYPE rillet_topic_messages_out counter
rillet_topic_messages_out_total{{topic="t"}} {out}.0
"""


def test_frame_shows_isr_rates_purgatories_quorum_and_messages_out() -> None:
    before = _scrape(10.0, _text(shrinks=1, commits=10, latency_sum=0.05, out=100))
    after = _scrape(12.0, _text(shrinks=5, commits=14, latency_sum=0.07, out=300))
    frame = render([before], [after], [], None)
    row = next(line for line in frame.splitlines() if line.startswith("http://b1/metrics"))
    assert "2.0/0.0" in row.split() and "2/5" in row.split(), frame  # 4 shrinks in 2 s
    assert ("controller quorum: epoch 7, commit latency 5.0 ms avg over 4, "
            "voter lag (entries) 2:0 3:12") in frame, frame
    topic = next(line for line in frame.splitlines() if line.startswith("t "))
    assert topic.split() == ["t", "100", "0", "100", "0", "300"], frame


def test_frame_says_when_no_endpoint_is_the_active_controller() -> None:
    s = _scrape(1.0, "# TYPE rillet_leader_count gauge\nrillet_leader_count 1.0\n")
    frame = render([s], [s], [], None)
    assert "controller quorum: no active controller among the endpoints" in frame


def test_group_lag_comes_from_the_coordinators_metrics_and_connections_add_up() -> None:
    from rillet.cli.top import group_lags

    b1 = _scrape(1.0, """# TYPE rillet_consumer_group_committed_offset gauge
rillet_consumer_group_committed_offset{group="slow",topic="t",partition="0"} 15.0
rillet_consumer_group_committed_offset{group="slow",topic="t",partition="1"} 3.0
rillet_consumer_group_committed_offset{group="done",topic="t",partition="0"} 40.0
# TYPE rillet_consumer_group_lag gauge
rillet_consumer_group_lag{group="slow",topic="t",partition="0"} 25.0
rillet_consumer_group_lag{group="slow",topic="t",partition="1"} 0.0
rillet_consumer_group_lag{group="done",topic="t",partition="0"} 0.0
# TYPE rillet_connection_count gauge
rillet_connection_count{listener="CLIENT"} 2.0
rillet_connection_count{listener="KAFKA"} 3.0
""")
    b2 = _scrape(1.0, """# TYPE rillet_consumer_group_committed_offset gauge
rillet_consumer_group_committed_offset{group="other",topic="u",partition="4"} 1.0
# TYPE rillet_consumer_group_lag gauge
rillet_consumer_group_lag{group="other",topic="u",partition="4"} 6.0
""", url="http://b2/metrics")
    down = Scrape("http://b3/metrics", 1.0, error="connection refused")
    groups, error = group_lags([b1, b2, down])
    assert error is None
    assert groups == [("done", 0, 0), ("other", 6, 1), ("slow", 25, 1)]
    frame = render([b1, b2, down], [b1, b2, down], groups, error)
    assert "(3 group(s), 2 lagging)" in frame, frame
    slow = next(line for line in frame.splitlines() if line.startswith("slow "))
    assert slow.split() == ["slow", "25", "1"], frame
    row = next(line for line in frame.splitlines() if line.startswith("http://b1/metrics"))
    assert row.split()[5] == "5", frame  # CONNS: both listeners
    assert group_lags([down]) == ([], "no broker answered")
