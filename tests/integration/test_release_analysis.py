"""release_analysis against real parts on 127.0.0.1: HAProxy with real traffic, a JSON endpoint,
commands, and a real Prometheus (Debian package) scraping itself."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.parse
import urllib.request
from typing import Any, Dict, List

import pytest

from net import Load, free_port

HAPROXY = "/usr/sbin/haproxy"
PROMETHEUS = "/usr/bin/prometheus"

# Answers 200 "ok", or 500 for every Nth request (argv[3], 0 = never): an exact share of errors.
SERVER = textwrap.dedent('''
    import http.server, itertools, sys, threading
    every, counter, lock = int(sys.argv[3]), itertools.count(1), threading.Lock()
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        def do_GET(self):
            with lock:
                n = next(counter)
            code = 500 if every and n % every == 0 else 200
            body = b"ok\\n"
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
''')

HAPROXY_CFG = textwrap.dedent('''
    global
        stats socket {sock} mode 600 level admin
    defaults
        mode http
        timeout connect 2s
        timeout client 10s
        timeout server 10s
    frontend fe
        bind 127.0.0.1:{port}
        default_backend web
    backend web
        balance roundrobin
        server blue1 127.0.0.1:{blue}
        server green1 127.0.0.1:{green}
''')


def wait_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, "nothing listens on 127.0.0.1:%d" % port
            time.sleep(0.05)


def analysis_task(name: str, metrics: List[Dict[str, Any]], **options: Any) -> Dict[str, Any]:
    args = {"interval": 1, "count": 2, "metrics": metrics}
    args.update(options)
    return {"name": name, "immutable.deploy.release_analysis": args, "ignore_errors": True}


def outcome(run, name: str) -> Dict[str, Any]:
    row = run.task(name)
    return dict(row["result"], failed=row["status"] == "failed")


@pytest.fixture
def router(tmp_path):
    """start(canary_fail_every) -> (frontend port, stats socket) of a real HAProxy: blue1 always 200, green1 500 every Nth."""
    procs: List[subprocess.Popen] = []
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    state_dir = tempfile.mkdtemp(prefix="ra-", dir="/tmp")  # unix socket paths must stay short

    def start(canary_fail_every: int):
        blue, green, port = free_port(), free_port(), free_port()
        for srv_port, every in ((blue, 0), (green, canary_fail_every)):
            procs.append(subprocess.Popen([sys.executable, str(script), "127.0.0.1", str(srv_port), str(every)]))
            wait_port(srv_port)
        sock = os.path.join(state_dir, "haproxy.sock")
        cfg = os.path.join(state_dir, "haproxy.cfg")
        with open(cfg, "w", encoding="utf-8") as handle:
            handle.write(HAPROXY_CFG.format(sock=sock, port=port, blue=blue, green=green))
        procs.append(subprocess.Popen([HAPROXY, "-db", "-f", cfg]))
        wait_port(port)
        return port, sock

    yield start
    for proc in reversed(procs):
        proc.kill()
        proc.wait()
    shutil.rmtree(state_dir, ignore_errors=True)


def haproxy_metric(sock: str, **extra: Any) -> Dict[str, Any]:
    metric = {"name": "error-rate", "provider": "haproxy", "query": "error_ratio", "min_requests": 20,
              "haproxy": {"socket": sock, "backend": "web", "canary": "green", "stable": "blue"},
              "success": "result < 0.05 and result <= stable * 2 + 0.005"}
    metric.update(extra)
    return metric


@pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed")
def test_haproxy_bad_canary_fails_at_once(router, play):
    port, sock = router(3)  # every 3rd canary answer is a 500
    with Load(port, "/", threads=4) as load:
        run = play([analysis_task("analyse", [haproxy_metric(sock)], interval=1.5, count=3)])
    assert load.total > 0
    out = outcome(run, "analyse")
    assert out["failed"] and out["verdict"] == "fail", run.stdout[-3000:]
    assert len(out["measurements"]) == 1 and out["rounds"]["run"] == 1  # stopped after the first failed round
    entry = out["measurements"][0]["metrics"]["error-rate"]
    assert entry["passed"] is False and entry["requests"] >= 20
    # HAProxy's own counters give the server's exact share (+/- the requests in flight at the snapshots).
    assert abs(entry["value"] - 1 / 3) < 0.05, entry
    assert entry["stable"] == 0.0 and entry["stable_requests"] >= 20
    assert out["msg"].startswith("Release analysis verdict fail:") and "error-rate=0.3" in out["msg"]
    assert out["summary"] == {"error-rate": {"passes": 0, "failures": 1, "inconclusive": 0}}


@pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed")
def test_haproxy_good_canary_passes_in_check_mode(router, play):
    port, sock = router(0)
    latency = {"name": "latency", "provider": "haproxy", "query": "mean_response_time", "min_requests": 20,
               "haproxy": {"socket": sock, "backend": "web", "canary": "green", "stable": "blue"},
               "success": "result < 1000 and stable >= 0"}
    with Load(port, "/", threads=4):
        run = play([analysis_task("analyse", [haproxy_metric(sock), latency], count=2)], check=True)
    out = outcome(run, "analyse")
    assert not out["failed"] and out["verdict"] == "pass", run.stdout[-3000:]
    assert out["changed"] is False
    assert [r["outcome"] for r in out["measurements"]] == ["pass", "pass"]
    for rnd in out["measurements"]:
        assert rnd["metrics"]["error-rate"]["value"] == 0.0 and rnd["metrics"]["error-rate"]["requests"] >= 20
        assert isinstance(rnd["metrics"]["latency"]["value"], (int, float))
    assert out["elapsed"] >= 2


@pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed")
def test_haproxy_below_min_requests_is_inconclusive(router, play):
    port, sock = router(3)
    run = play([analysis_task("pause", [haproxy_metric(sock)], inconclusive="pause", count=1),
                analysis_task("fail", [haproxy_metric(sock)], inconclusive="fail", count=1),
                analysis_task("bad prefix", [haproxy_metric(sock, haproxy={"socket": sock, "backend": "web", "canary": "red"})])])
    paused = outcome(run, "pause")
    assert not paused["failed"] and paused["verdict"] == "inconclusive", run.stdout[-3000:]
    entry = paused["measurements"][0]["metrics"]["error-rate"]
    assert entry["passed"] is None and entry["requests"] == 0
    assert "only 0 canary requests in the interval, min_requests is 20" in entry["reason"]
    failed = outcome(run, "fail")
    assert failed["failed"] and failed["verdict"] == "fail" and "inconclusive=fail" in failed["msg"]
    bad = outcome(run, "bad prefix")
    assert bad["failed"] and "metrics[0].haproxy.canary" in bad["msg"] and "blue1, green1" in bad["msg"]
    assert bad["measurements"] == []
    assert port  # no traffic was sent on purpose


class JsonHandler(http.server.BaseHTTPRequestHandler):
    documents: Dict[str, Any] = {}
    hits: List[str] = []

    def do_GET(self):  # noqa: N802
        self.hits.append(self.path)
        path = urllib.parse.urlparse(self.path).path
        if path == "/error":
            self.send_error(500, "broken")
            return
        body = json.dumps(self.documents.get(path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def json_server():
    JsonHandler.documents = {"/good": {"latency": {"p99": 120}}, "/slow": {"latency": {"p99": 450}},
                             "/text": {"latency": {"p99": "fast"}}}
    JsonHandler.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), JsonHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def http_metric(url: str, path: str = "latency.p99", success: str = "result < 300") -> Dict[str, Any]:
    return {"name": "p99", "provider": "http", "http": {"url": url, "jmespath": path, "timeout": 2,
                                                        "headers": {"Authorization": "Bearer s3cret-token"}},
            "success": success}


def test_http_provider(json_server, play):
    dead = "http://127.0.0.1:%d/metrics.json" % free_port()
    run = play([
        analysis_task("good", [http_metric(json_server + "/good")]),
        analysis_task("slow", [http_metric(json_server + "/slow")]),
        analysis_task("unreachable pause", [http_metric(dead)], inconclusive="pause", count=1),
        analysis_task("unreachable fail", [http_metric(dead)], count=1),
        analysis_task("http error", [http_metric(json_server + "/error")], inconclusive="pause", count=1),
        analysis_task("missing", [http_metric(json_server + "/good", "latency.p50")], inconclusive="pause", count=1),
        analysis_task("not a number", [http_metric(json_server + "/text")], inconclusive="pause", count=1),
    ], args=["-v"])
    good = outcome(run, "good")
    assert not good["failed"] and good["verdict"] == "pass", run.stdout[-3000:]
    assert [r["metrics"]["p99"]["value"] for r in good["measurements"]] == [120, 120]
    slow = outcome(run, "slow")
    assert slow["failed"] and slow["verdict"] == "fail" and "p99=450" in slow["msg"]
    paused = outcome(run, "unreachable pause")
    assert not paused["failed"] and paused["verdict"] == "inconclusive"
    assert "cannot reach %s" % dead in paused["measurements"][0]["metrics"]["p99"]["reason"]
    failed = outcome(run, "unreachable fail")
    assert failed["failed"] and failed["verdict"] == "fail" and "cannot reach" in failed["msg"]
    assert "HTTP 500" in outcome(run, "http error")["measurements"][0]["metrics"]["p99"]["reason"]
    assert "'latency.p50' found nothing" in outcome(run, "missing")["measurements"][0]["metrics"]["p99"]["reason"]
    assert '"fast", not a number' in outcome(run, "not a number")["measurements"][0]["metrics"]["p99"]["reason"]
    assert "s3cret-token" not in run.stdout  # headers are no_log


def test_bad_input_fails_before_measuring(json_server, play):
    run = play([
        analysis_task("bad jmespath", [http_metric(json_server + "/good"),
                                       dict(http_metric(json_server + "/good", "latency.[p99"), name="p99b")]),
        analysis_task("bad condition", [http_metric(json_server + "/good", success="result.__class__ == 1")]),
        analysis_task("missing block", [{"name": "x", "provider": "prometheus", "success": "result < 1"}]),
        analysis_task("bad interval", [http_metric(json_server + "/good")], interval=0),
        analysis_task("bad count", [http_metric(json_server + "/good")], count=0),
    ])
    jm = outcome(run, "bad jmespath")
    assert jm["failed"] and "metrics[1].http.jmespath" in jm["msg"] and "latency.[p99" in jm["msg"]
    cond = outcome(run, "bad condition")
    assert cond["failed"] and "metric 'p99'" in cond["msg"] and "attribute access" in cond["msg"]
    block = outcome(run, "missing block")
    assert block["failed"] and "metrics[0].prometheus" in block["msg"] and "missing" in block["msg"]
    assert "option 'interval'" in outcome(run, "bad interval")["msg"]
    assert "option 'count'" in outcome(run, "bad count")["msg"]
    assert JsonHandler.hits == []  # nothing was measured


def test_command_provider(play, tmp_path):
    run = play([
        analysis_task("number", [{"name": "q", "provider": "command", "command": {"argv": ["/bin/sh", "-c", "echo 42"]},
                                  "success": "exit_code == 0 and result == 42 and output == '42'"}]),
        analysis_task("exit", [{"name": "smoke", "provider": "command",
                                "command": {"argv": ["/bin/sh", "-c", "echo broken >&2; exit 3"]}, "success": "exit_code == 0"}]),
        analysis_task("timeout", [{"name": "slow", "provider": "command", "command": {"argv": ["sleep", "5"], "timeout": 0.5},
                                   "success": "exit_code == 0"}], count=1, inconclusive="pause"),
    ])
    number = outcome(run, "number")
    assert not number["failed"] and number["verdict"] == "pass", run.stdout[-3000:]
    assert number["measurements"][0]["metrics"]["q"]["value"] == 42
    exit_ = outcome(run, "exit")
    assert exit_["failed"] and exit_["verdict"] == "fail"
    entry = exit_["measurements"][0]["metrics"]["smoke"]
    assert entry["exit_code"] == 3 and entry["stderr"] == "broken" and entry["passed"] is False
    slow = outcome(run, "timeout")
    assert not slow["failed"] and slow["verdict"] == "inconclusive" and slow["elapsed"] < 4
    assert "did not finish within 0.5s" in slow["measurements"][0]["metrics"]["slow"]["reason"]


@pytest.fixture
def prometheus():
    """A real Prometheus on 127.0.0.1 scraping itself every second; its base URL once 'up' has a sample."""
    port = free_port()
    data = tempfile.mkdtemp(prefix="prom-")
    cfg = os.path.join(data, "prometheus.yml")
    with open(cfg, "w", encoding="utf-8") as handle:
        handle.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                     "scrape_configs:\n  - job_name: self\n    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % port)
    proc = subprocess.Popen([PROMETHEUS, "--config.file", cfg, "--storage.tsdb.path", os.path.join(data, "tsdb"),
                             "--web.listen-address", "127.0.0.1:%d" % port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "prometheus exited with %s" % proc.returncode
            try:
                with urllib.request.urlopen(base + "/api/v1/query?query=up", timeout=2) as resp:
                    if json.load(resp)["data"]["result"]:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "prometheus did not scrape itself within 60 s"
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def prom_metric(base: str, query: str, success: str = "result == 1") -> Dict[str, Any]:
    return {"name": "prom", "provider": "prometheus", "prometheus": {"url": base, "query": query, "timeout": 5},
            "success": success}


@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="prometheus is not installed (apt-get install prometheus)")
def test_prometheus_provider(prometheus, play):
    run = play([
        analysis_task("up", [prom_metric(prometheus, 'up{job="self"}')]),
        analysis_task("scalar", [prom_metric(prometheus, "scalar(up) + 1", "result == 2")], count=1),
        analysis_task("too high", [prom_metric(prometheus, 'sum(up{job="self"})', "result > 1")], count=1),
        analysis_task("empty", [prom_metric(prometheus, "no_such_metric_xyz")], count=1, inconclusive="pause"),
        analysis_task("series", [prom_metric(prometheus, '{__name__=~"up|scrape_samples_scraped"}')], count=1, inconclusive="pause"),
        analysis_task("syntax", [prom_metric(prometheus, "sum(")], count=1, inconclusive="pause"),
    ])
    up = outcome(run, "up")
    assert not up["failed"] and up["verdict"] == "pass", run.stdout[-3000:]
    assert [r["metrics"]["prom"]["value"] for r in up["measurements"]] == [1.0, 1.0]
    assert outcome(run, "scalar")["verdict"] == "pass"
    high = outcome(run, "too high")
    assert high["failed"] and high["verdict"] == "fail" and "prom=1.0" in high["msg"]
    assert "empty vector" in outcome(run, "empty")["measurements"][0]["metrics"]["prom"]["reason"]
    assert "returned 2 series" in outcome(run, "series")["measurements"][0]["metrics"]["prom"]["reason"]
    syntax = outcome(run, "syntax")
    assert syntax["verdict"] == "inconclusive" and "HTTP 400" in syntax["measurements"][0]["metrics"]["prom"]["reason"]
