"""HAProxy router: the router role and haproxy_backend against a real haproxy and real HTTP servers.

Everything listens on 127.0.0.1 (one server on 127.0.0.2, also loopback) on free ports.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from typing import Any, Dict, List

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import Runtime
from net import free_port

HAPROXY = "/usr/sbin/haproxy"
ROLE = "immutable.deploy.router : "  # recorded task names carry the role's prefix
pytestmark = pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed")

SERVER = textwrap.dedent('''
    import http.server, sys, time
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        def do_GET(self):
            if self.path.startswith("/slow/"):
                time.sleep(float(self.path.rsplit("/", 1)[1]))
            body = (sys.argv[3] + "\\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
        def handle(self):
            try:
                super().handle()
            except ConnectionError:  # health checks hang up early
                pass
    http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
''')


def wait_port(host: str, port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %s:%d" % (host, port))


def get(port: int, path: str = "/", timeout: float = 10) -> str:
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as resp:
        return resp.read().decode().strip()


@pytest.fixture
def backends(tmp_path):
    """start(version, host='127.0.0.1') -> port of a real HTTP server answering its version."""
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    procs: List[subprocess.Popen] = []

    def start(version: str, host: str = "127.0.0.1") -> int:
        port = free_port(host)
        procs.append(subprocess.Popen([sys.executable, str(script), host, str(port), version]))
        wait_port(host, port)
        return port

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def role_task(**router_vars: Any) -> Dict[str, Any]:
    return {"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
            "vars": router_vars}


def haproxy_pid(state_dir: str) -> int:
    """The pid in the role's pid file, when that process is alive."""
    try:
        with open(os.path.join(state_dir, "haproxy.pid"), encoding="utf-8") as handle:
            pid = int(handle.read().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return 0


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists("/proc/%d" % pid):
        assert time.monotonic() < deadline, "haproxy %d did not exit" % pid
        time.sleep(0.05)


def wait_for(predicate, timeout: float = 15, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out waiting for %s" % what
        time.sleep(0.2)


@pytest.fixture
def router(play, uid):
    """A running router for a unique app; stopped and removed afterwards."""
    # Short path: a unix socket path must stay under 108 characters.
    state_dir = tempfile.mkdtemp(prefix="hx-%s-" % uid, dir="/tmp")
    app = "app%s" % uid
    info = {
        "app": app, "state_dir": state_dir, "bind": free_port(), "preview": free_port(),
        "socket": os.path.join(state_dir, "haproxy.sock"), "state_file": os.path.join(state_dir, "server-state"),
    }
    info["vars"] = {"router_app": app, "router_state_dir": state_dir, "router_max_replicas": 2,
                    "router_bind": "127.0.0.1:%d" % info["bind"],
                    "router_preview_bind": "127.0.0.1:%d" % info["preview"],
                    "router_health_interval": "300ms", "router_health_rise": 1}
    run = play([role_task(**info["vars"])])
    assert run.rc == 0, run.stdout[-3000:]
    info["run"] = run
    info["runtime"] = Runtime(info["socket"], 5)
    yield info
    pid = haproxy_pid(state_dir)
    stop = play([role_task(**dict(info["vars"], router_state="absent"))])
    if pid:
        if os.path.exists("/proc/%d" % pid):  # the role failed to stop it: do not leak it
            os.kill(pid, signal.SIGKILL)
        assert stop.rc == 0, stop.stdout[-3000:]
    leftover = os.listdir(state_dir) if os.path.isdir(state_dir) else []
    shutil.rmtree(state_dir, ignore_errors=True)
    assert leftover == [], "router_state=absent left %s" % leftover


def backend_task(router: Dict[str, Any], servers: List[Dict[str, Any]], name: str = "backend", **extra: Any):
    args = {"socket": router["socket"], "backend": router["app"], "servers": servers,
            "state_file": router["state_file"]}
    args.update(extra)
    return {"name": name, "immutable.deploy.haproxy_backend": args, "register": "out", "ignore_errors": True}


def outcome(run) -> Dict[str, Any]:
    """The 'backend' task's result, with failed set from the recorded status."""
    row = run.task("backend")
    return dict(row["result"], failed=row["status"] == "failed")


def summary(runtime: Runtime, backend: str) -> Dict[str, tuple]:
    return {s["name"]: (s["address"], s["port"], s["weight"], s["state"]) for s in runtime.servers(backend)}


def test_role_renders_starts_and_is_idempotent(router, play):
    state_dir, app = router["state_dir"], router["app"]
    pid = haproxy_pid(state_dir)
    assert pid, "haproxy is not running"
    assert stat.S_IMODE(os.stat(router["socket"]).st_mode) == 0o600
    check = subprocess.run([HAPROXY, "-c", "-f", os.path.join(state_dir, "haproxy.cfg")], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    for backend in (app, app + "_preview"):
        servers = router["runtime"].servers(backend)
        assert [s["name"] for s in servers] == ["blue1", "blue2", "green1", "green2", "amber1", "amber2"]
        assert {(s["state"], s["weight"]) for s in servers} == {("maint", 0)}
    # No server live yet: the frontend answers 503 itself.
    with pytest.raises(urllib.error.HTTPError) as err:
        get(router["bind"])
    assert err.value.code == 503

    again = play([role_task(**router["vars"])])
    assert again.rc == 0, again.stdout[-3000:]
    assert again.task(ROLE + "Start HAProxy")["status"] == "skipped"
    assert again.task(ROLE + "Reload HAProxy seamlessly")["status"] == "skipped"
    assert again.result(ROLE + "Render the HAProxy config")["changed"] is False
    assert haproxy_pid(state_dir) == pid


def test_check_apply_idempotent_traffic_and_preview(router, play, backends):
    app, runtime = router["app"], router["runtime"]
    v1a, v1b, v2 = backends("v1"), backends("v1"), backends("v2")
    blue = [{"name": "blue1", "address": "127.0.0.1", "port": v1a, "weight": 100, "state": "ready"},
            {"name": "blue2", "address": "127.0.0.1", "port": v1b, "weight": 100, "state": "ready"}]
    before = summary(runtime, app)

    check = play([backend_task(router, blue)], check=True, diff=True)
    out = outcome(check)
    assert out["changed"] is True and not out["failed"], out
    assert [c["name"] for c in out["changes"]] == ["blue1", "blue2"]
    assert out["diff"]["before"]["blue1"] == {"address": "127.0.0.1", "port": 1, "weight": 0, "state": "maint"}
    assert out["diff"]["after"]["blue1"] == {"address": "127.0.0.1", "port": v1a, "weight": 100, "state": "ready"}
    assert re.search(r'^\+\s+"port": %d,?$' % v1a, check.stdout, re.M), check.stdout[-2000:]  # --diff shown
    assert summary(runtime, app) == before, "check mode changed HAProxy"

    apply = play([backend_task(router, blue)], diff=True)
    out = outcome(apply)
    assert out["changed"] is True and not out["failed"], out
    assert out["commands"][:3] == ["set server %s/blue1 addr 127.0.0.1 port %d" % (app, v1a),
                                   "set server %s/blue1 weight 100" % app, "set server %s/blue1 state ready" % app]
    live = {s["name"]: s for s in runtime.servers(app)}
    assert (live["blue1"]["port"], live["blue1"]["weight"], live["blue1"]["state"]) == (v1a, 100, "ready")
    assert live["green1"]["state"] == "maint"

    for check_mode in (True, False):
        again = outcome(play([backend_task(router, blue)], check=check_mode, diff=True))
        assert not again["failed"] and again["changed"] is False and again["commands"] == [] and again["diff"]["before"] == {}, again

    # Real traffic through the live frontend, once the health checks pass.
    wait_for(lambda: all(s["health"] == "UP" for s in runtime.servers(app)[:2]), what="blue UP")
    assert {get(router["bind"]) for _request in range(6)} == {"v1"}
    # stats for canary analysis: both servers answered (roundrobin), counted as 2xx
    counts = {s["name"]: s["hrsp_2xx"] for s in runtime.servers(app)}
    assert counts["blue1"] >= 3 and counts["blue2"] >= 3, counts

    # Preview: the new release is reachable on the preview entry while live stays on v1.
    green = [{"name": "green1", "address": "127.0.0.1", "port": v2, "weight": 100, "state": "ready"}]
    preview = outcome(play([backend_task(router, green, backend=app + "_preview", exclusive=True)]))
    assert preview["changed"] is True and not preview["failed"], preview
    wait_for(lambda: {s["name"]: s["health"] for s in runtime.servers(app + "_preview")}["green1"] == "UP",
             what="preview green1 UP")
    assert {get(router["preview"]) for _request in range(4)} == {"v2"}
    assert {get(router["bind"]) for _request in range(4)} == {"v1"}

    # Switch live to green, exclusively: blue goes to maint, weight 0.
    switch = outcome(play([backend_task(router, green, exclusive=True, wait_drained=True, drain_timeout=10)]))
    assert switch["changed"] is True and not switch["failed"], switch
    # green first (gains traffic), then blue loses it
    assert switch["commands"][0].startswith("set server %s/green1 addr" % app), switch["commands"]
    assert switch["commands"].index("set server %s/blue1 state maint" % app) > \
        switch["commands"].index("set server %s/green1 state ready" % app)
    assert switch["drained"]["servers"] == ["blue1", "blue2"]  # green2 was already out
    wait_for(lambda: {s["name"]: s["health"] for s in runtime.servers(app)}["green1"] == "UP", what="green1 UP")
    assert {get(router["bind"]) for _request in range(6)} == {"v2"}
    final = summary(runtime, app)
    assert final["blue1"][2:] == (0, "maint") and final["green1"] == ("127.0.0.1", v2, 100, "ready")


def test_drain_waits_for_sessions(router, play, backends):
    app, runtime = router["app"], router["runtime"]
    port = backends("v1")
    ready = [{"name": "blue1", "address": "127.0.0.1", "port": port, "weight": 10, "state": "ready"}]
    assert play([backend_task(router, ready)]).result("backend")["changed"] is True
    wait_for(lambda: runtime.servers(app)[0]["health"] == "UP", what="blue1 UP")

    answers: List[str] = []
    # 20 s: long enough to still be in flight when a slow (loaded) machine runs the next play.
    slow = threading.Thread(target=lambda: answers.append(get(router["bind"], "/slow/20", timeout=40)))
    slow.start()
    wait_for(lambda: runtime.servers(app)[0]["scur"] >= 1, what="a session on blue1")

    # Too short a timeout fails and says what remains...
    out = outcome(play([backend_task(router, [{"name": "blue1", "state": "drain"}], wait_drained=True, drain_timeout=0.5)]))
    assert out["failed"] is True, out
    assert "still have sessions after drain_timeout=0.5s: blue1=1" in out["msg"], out["msg"]
    assert out["sessions"] == {"blue1": 1}
    assert runtime.servers(app)[0]["state"] == "drain"  # the drain itself was applied

    # ...a long enough one waits until the in-flight request finished, which it did (no cut).
    out = outcome(play([backend_task(router, [{"name": "blue1", "state": "drain"}], wait_drained=True, drain_timeout=40)]))
    assert not out["failed"] and out["changed"] is False, out
    assert out["drained"]["servers"] == ["blue1"]
    slow.join(10)
    assert answers == ["v1"]
    assert runtime.servers(app)[0]["scur"] == 0


def test_live_state_survives_restart_and_reload(router, play, backends):
    app, runtime, state_dir = router["app"], router["runtime"], router["state_dir"]
    far = backends("v-far", host="127.0.0.2")  # another address than the placeholder's 127.0.0.1
    near = backends("v-near")
    wanted = [{"name": "blue1", "address": "127.0.0.2", "port": far, "weight": 37, "state": "ready"},
              {"name": "green2", "address": "127.0.0.1", "port": near, "weight": 5, "state": "drain"}]
    assert play([backend_task(router, wanted)]).result("backend")["changed"] is True
    live = summary(runtime, app)
    assert live["blue1"] == ("127.0.0.2", far, 37, "ready") and live["green2"] == ("127.0.0.1", near, 5, "drain")

    # Full stop (not a reload), then the role starts haproxy again from its files.
    pid = haproxy_pid(state_dir)
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    restart = play([role_task(**router["vars"])])
    assert restart.rc == 0, restart.stdout[-3000:]
    assert restart.result(ROLE + "Start HAProxy")["changed"] is True
    assert haproxy_pid(state_dir) not in (0, pid)
    assert summary(runtime, app) == live
    wait_for(lambda: runtime.servers(app)[0]["health"] == "UP", what="blue1 UP after restart")
    assert get(router["bind"]) == "v-far"

    # A config change reloads seamlessly: requests during the reload all succeed, state kept.
    errors: List[str] = []
    served: List[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                if get(router["bind"], timeout=5) != "v-far":
                    errors.append("wrong answer")
                served.append(1)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append(repr(exc))

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        old = haproxy_pid(state_dir)
        reload = play([role_task(**dict(router["vars"], router_retries=2))])
    finally:
        stop.set()
        thread.join(10)
    assert reload.rc == 0, reload.stdout[-3000:]
    assert reload.result(ROLE + "Reload HAProxy seamlessly")["changed"] is True
    assert haproxy_pid(state_dir) not in (0, old)
    assert errors == [] and len(served) > 20, (errors, len(served))
    assert summary(runtime, app) == live


@pytest.mark.parametrize("case", ["weight", "server", "backend", "socket"])
def test_bad_input_fails_clearly_and_changes_nothing(router, play, backends, case):
    app, runtime = router["app"], router["runtime"]
    port = backends("v1")
    good = {"name": "blue1", "address": "127.0.0.1", "port": port, "weight": 10, "state": "ready"}
    task = {
        "weight": backend_task(router, [good, {"name": "blue2", "weight": 300}]),
        "server": backend_task(router, [good, {"name": "purple1", "weight": 1}]),
        "backend": backend_task(router, [good], backend="nope"),
        "socket": backend_task(router, [good], socket=os.path.join(router["state_dir"], "missing.sock")),
    }[case]
    expected = {
        "weight": "Invalid value for option 'servers[1].weight': 300. Accepted: an integer from 0 to 256.",
        "server": "Unknown server 'purple1' in backend '%s' (option 'servers[1].name'). "
                  "Known servers: amber1, amber2, blue1, blue2, green1, green2." % app,
        "backend": "Unknown backend 'nope' (option 'backend'). Known backends: %s, %s_preview." % (app, app),
        "socket": "Cannot reach the HAProxy runtime API at '%s' (option 'socket')"
                  % os.path.join(router["state_dir"], "missing.sock"),
    }[case]
    before = summary(runtime, app)
    out = outcome(play([task]))
    assert out["failed"] is True, out
    assert expected in out["msg"], out["msg"]
    assert summary(runtime, app) == before, "a refused request changed HAProxy"
