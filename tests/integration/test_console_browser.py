"""The web console in headless Chromium (playwright-core from npm, Debian's chromium),
served by the real ``rillet console`` command for a real broker; data made with the CLI.

Screenshots of every page are kept as test artifacts in ``tests/artifacts/console/<test>/``
(gitignored; ``$RILLET_TEST_ARTIFACTS`` moves it), their paths printed.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_tool, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

RILLET = [sys.executable, "-m", "rillet.cli.main"]
BROWSER_DIR = Path(__file__).resolve().parents[1] / "tools" / "browser"


@pytest.fixture
def cluster(shared_cluster):
    return shared_cluster


@pytest.fixture
def env(cluster, tmp_path):
    e = dict(os.environ)
    e["RILLET_BROKERS"] = cluster.bootstrap_servers  # found like the profile is, no -b
    e["RILLET_CONFIG_DIR"] = str(tmp_path / "config")
    return e


@pytest.fixture
def console_url(env, cluster):
    """`rillet console --port 0` as a user runs it (with the broker's metrics URL, which
    `rillet cluster up` would put in the profile); its URL from the line it prints."""
    proc = subprocess.Popen([*RILLET, "console", "--port", "0",
                             "--metrics", cluster.metrics_url(1)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"no URL in {line!r}; stderr: {proc.stderr.read() if proc.poll() else ''}"
        url = match.group(0)
        import urllib.request

        wait_until(lambda: _get(urllib.request, url), 30, "the console to answer")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _get(urllib_request, url: str) -> bool:
    try:
        with urllib_request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """``drive.js --serve``: one headless Chromium for the module's pages (a launch per page
    cost seconds of CI time each), a job per line in, a result per line out."""
    node = require_tool("node")
    chromium = require_tool("chromium", "/usr/bin/chromium")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        require_tool("playwright-core", str(BROWSER_DIR / "node_modules" / "playwright-core"))
    log = tmp_path_factory.mktemp("browser") / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([node, str(BROWSER_DIR / "drive.js"), "--serve"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True, env={**os.environ, "CHROMIUM": chromium})
    try:
        yield proc, log
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def browse(request, driver):
    proc, log = driver
    root = Path(os.environ.get("RILLET_TEST_ARTIFACTS")
                or Path(__file__).resolve().parents[1] / "artifacts")
    shots = root / "console" / request.node.name
    shots.mkdir(parents=True, exist_ok=True)

    def run(url: str, name: str, steps=(), texts=None) -> dict[str, str]:
        job = {"url": url, "steps": list(steps), "texts": texts or {},
               "screenshot": str(shots / f"{name}.png")}
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline() if ready else ""
        assert line, f"the browser gave no answer for {url}:\n{log.read_text()[-3000:]}"
        out = json.loads(line)
        assert "failure" not in out, f"browser failed on {url}:\n{out.get('failure')}"
        assert out["errors"] == [], f"JavaScript errors on {url}: {out['errors']}"
        assert (shots / f"{name}.png").stat().st_size > 1000
        print(f"screenshot: {shots / f'{name}.png'}")
        return out["texts"]

    return run


def cli(env, *args: str, input_: str | None = None) -> str:
    proc = subprocess.run([*RILLET, *args], input=input_, capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, f"rillet {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_records_made_with_the_cli_show_in_the_message_browser(env, console_url, browse):
    cli(env, "topic", "create", "web-orders", "-p", "2")
    cli(env, "produce", "web-orders", "-p", "1", "-K", "-H", "source=web-test",
        input_='order-1\t{"id": 1, "item": "tea"}\norder-2\tplain words\n')
    texts = browse(console_url + "#/topics", "topics", [{"wait": "#topics"}],
                   {"topics": "#topics"})
    assert re.search(r"web-orders\s+2\s+1\s+2\s+0", texts["topics"]), texts["topics"]
    texts = browse(console_url + "#/topic/web-orders", "topic", [{"wait": "#partitions"}],
                   {"partitions": "#partitions", "configs": "#configs"})
    assert re.search(r"^1\s+1\s+1\s+1\s+0\s+2$", texts["partitions"], re.M)
    assert "retention.ms" in texts["configs"]
    # through the form: topic, partition 1, offset 0
    texts = browse(console_url + "#/messages", "messages", [
        {"select": "select[name=topic]", "value": "web-orders"},
        {"fill": "input[name=partition]", "value": "1"},
        {"fill": "input[name=offset]", "value": "0"},
        {"click": "button[type=submit]"},
        {"waitText": "#range", "text": "web-orders-1"}],
        {"messages": "#messages"})
    rows = texts["messages"]
    assert "order-1" in rows and '"item": "tea"' in rows and "plain words" in rows
    assert re.search(r"source:\s+web-test", rows)


def test_bad_browser_requests_show_clear_messages(env, console_url, browse) -> None:
    cli(env, "topic", "create", "web-bad")
    cli(env, "produce", "web-bad", input_="x" * 300_000 + "\n")
    texts = browse(console_url + "#/messages/web-bad?partition=0&offset=10", "past-end",
                   [{"wait": "#error"}], {"error": "#error"})
    assert "offset 10 is past the end of web-bad-0" in texts["error"]
    texts = browse(console_url + "#/topic/nope", "unknown-topic", [{"wait": "#error"}],
                   {"error": "#error"})
    assert "topic 'nope' does not exist" in texts["error"]
    texts = browse(console_url + "#/messages/web-bad?partition=0&offset=0", "huge",
                   [{"wait": "#messages"}], {"messages": "#messages"})
    assert "of 300000 bytes shown" in texts["messages"]
    texts = browse(console_url + "#/overview", "after-bad", [{"wait": "#brokers"}],
                   {"main": "#main"})
    assert "healthy" in texts["main"]  # the broker is unharmed


def test_group_lag_shows_then_drops_to_zero(env, console_url, browse) -> None:
    cli(env, "topic", "create", "web-lag")
    cli(env, "produce", "web-lag", "-q", input_="".join(f"r{i}\n" for i in range(5)))
    cli(env, "consume", "web-lag", "-g", "web-group", "--from-beginning", "-n", "2")
    texts = browse(console_url + "#/group/web-group", "group-lagging",
                   [{"wait": "#lag-chart svg"}], {"lag": "#lag", "total": "#total-lag"})
    assert texts["total"] == "3" and re.search(r"web-lag-0\s+2\s+5\s+3", texts["lag"])
    cli(env, "consume", "web-lag", "-g", "web-group", "-n", "3")
    texts = browse(console_url + "#/group/web-group", "group-caught-up",
                   [{"wait": "#lag-chart svg"}, {"waitText": "#total-lag", "text": "0"}],
                   {"total": "#total-lag", "lag": "#lag"})
    assert texts["total"] == "0" and re.search(r"web-lag-0\s+5\s+5\s+0", texts["lag"])
    texts = browse(console_url + "#/groups", "groups", [{"wait": "#groups"}],
                   {"groups": "#groups"})
    assert re.search(r"web-group\s+\S+\s+0", texts["groups"])
    texts = browse(console_url + "#/connectors", "connectors", [{"wait": "#error"}],
                   {"error": "#error"})
    assert "--connect-url" in texts["error"]


def _scraped(cluster, name: str, topic: str) -> float:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(cluster.metrics_url(1), timeout=10) as r:
        text = r.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and s.labels.get("topic") == topic)


def test_overview_lists_the_brokers_and_rates_from_their_metrics(env, cluster, console_url,
                                                                 browse):
    """The overview: the brokers, and (with records produced and consumed all along) the
    rates per broker and per topic from the brokers' metrics; a quiet topic at 0."""
    import threading

    from rillet import Consumer, Producer, TopicPartition

    cli(env, "topic", "create", "web-rates")
    cli(env, "topic", "create", "web-quiet")
    cli(env, "produce", "web-quiet", input_="only one\n")
    stop = threading.Event()
    tp = TopicPartition("web-rates", 0)

    def traffic() -> None:  # records in and out all along, until the pages are read
        config = {"bootstrap.servers": cluster.bootstrap_servers}
        with Producer({**config, "linger.ms": 5}) as p, Consumer(config) as c:
            c.assign([tp])
            c.seek(tp, 0)
            while not stop.is_set():
                for i in range(20):
                    p.send("web-rates", b"r%d" % i, partition=0)
                p.flush(10)
                c.poll(100)
                stop.wait(0.05)  # pacing: a few hundred records/s is traffic enough

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        # both counters exist before the page's first sample, so its first interval has rates
        wait_until(lambda: _scraped(cluster, "rillet_topic_messages_out_total", "web-rates") > 0,
                   30, "records in and out of web-rates")
        texts = browse(console_url + "#/overview", "overview",
                       [{"wait": "#brokers"}, {"waitText": "#rates-state", "text": "measured"}],
                       {"brokers": "#broker-rates", "topics": "#topic-rates",
                        "listed": "#brokers", "main": "#main"})
    finally:
        stop.set()
        thread.join(30)
    assert re.search(r"^1\s+127\.0\.0\.1:\d+", texts["listed"], re.M), texts["listed"]
    assert "controller" in texts["listed"] and "healthy" in texts["main"]
    number = r"(\d+\.\d)"
    size = r"(\d+\.\d) (?:B|KiB|MiB|GiB)/s"
    for table in (texts["topics"],):  # the topics page shows the same table (showRates)
        row = re.search(rf"^web-rates\s+{number}\s+{number}\s+{size}\s+{size}$", table, re.M)
        assert row, table
        assert all(float(v) > 0 for v in row.groups()), row.group(0)  # in and out, both kinds
        quiet = re.search(rf"^web-quiet\s+{number}\s+{number}\s+{size}\s+{size}$", table, re.M)
        assert quiet and all(float(v) == 0 for v in quiet.groups()), table
    broker = re.search(rf"^1\s+{number}\s+{number}\s+{size}\s+{size}$", texts["brokers"], re.M)
    assert broker and all(float(v) > 0 for v in broker.groups()), texts["brokers"]
