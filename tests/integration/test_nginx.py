"""nginx router against a real nginx: role, nginx_upstream rhythm, rollback, reload under load.

Each test runs its own nginx (started by the role on dynamic 127.0.0.1 ports, files under
tmp_path) and small in-process HTTP backends; the fixture stops nginx and the backends.
"""
from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

import pytest

from net import free_port

NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


def get(port: int, timeout: float = 5.0) -> "tuple[int, str]":
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


class Backend:
    """An HTTP server on 127.0.0.1 answering its own name (a release's container stand-in)."""

    def __init__(self, name: str) -> None:
        body = name.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.name = name
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spec(self, **kw: Any) -> Dict[str, Any]:
        return dict(address="127.0.0.1", port=self.port, **kw)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def nginx_master(pid_file: str) -> Optional[int]:
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return pid if handle.read().startswith(b"nginx: master process") else None
    except (OSError, ValueError):
        return None


def exited(pid: int, timeout: float = 10) -> bool:
    """The process is gone (or a zombie waiting for init to reap it) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid, encoding="utf-8") as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


class Router:
    """Role variables, paths and helpers for one test's nginx router."""

    def __init__(self, play, tmp_path, uid: str) -> None:
        self.play = play
        self.app = "shop_" + uid
        self.port, self.preview_port = free_port(), free_port()
        self.state = str(tmp_path / "state")
        self.dir = os.path.join(self.state, "nginx-" + self.app)
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.pid_file = os.path.join(self.dir, "nginx.pid")
        self.live_file = os.path.join(self.dir, "upstreams", self.app + ".conf")
        self.preview_file = os.path.join(self.dir, "upstreams", self.app + "_preview.conf")
        self.backends: List[Backend] = []

    def backend(self, name: str) -> Backend:
        self.backends.append(Backend(name))
        return self.backends[-1]

    def role(self, live: List[Dict[str, Any]], preview: List[Dict[str, Any]], tasks_from: str = "nginx", **kw):
        extra = dict(router_app=self.app, router_bind="127.0.0.1:%d" % self.port,
                     router_preview_bind="127.0.0.1:%d" % self.preview_port, router_state_dir=self.state,
                     router_servers=live, router_preview_servers=preview, router_nginx_binary=NGINX)
        include = {"name": "immutable.deploy.router", "tasks_from": tasks_from}
        task = {"name": "Router", "ansible.builtin.include_role": include}
        return self.play([task], extra_vars=extra, **kw)

    def upstream(self, servers: List[Dict[str, Any]], name: Optional[str] = None, path: Optional[str] = None,
                 check: bool = False, ignore_errors: bool = False, **options: Any):
        """Run nginx_upstream once (with --diff) and return (Run, result); result["failed"] tells a failure."""
        args = dict(dict(name=name or self.app, path=path or self.live_file, servers=servers, nginx_conf=self.conf,
                         nginx_binary=NGINX), **options)
        task = {"name": "Upstream", "immutable.deploy.nginx_upstream": args, "ignore_errors": ignore_errors}
        run = self.play([task], check=check, diff=True)
        row = run.task("Upstream")
        return run, dict(row["result"], failed=row["status"] == "failed")

    def stop(self) -> None:
        master = nginx_master(self.pid_file)
        if master is None:
            return
        os.kill(master, signal.SIGQUIT)
        deadline = time.monotonic() + 15
        while nginx_master(self.pid_file) == master and time.monotonic() < deadline:
            time.sleep(0.1)
        if nginx_master(self.pid_file) == master:
            os.kill(master, signal.SIGKILL)


@pytest.fixture
def router(play, tmp_path, uid):
    r = Router(play, tmp_path, uid)
    yield r
    r.stop()
    for backend in r.backends:
        backend.stop()


def role_task(run, suffix: str) -> Dict[str, Any]:
    rows = [row for row in run.rows if row["task"].endswith(suffix)]
    assert rows, "no task %r in:\n%s" % (suffix, run.stdout[-3000:])
    return rows[-1]


def test_role_serves_live_and_preview_and_switches(router):
    blue, green = router.backend("blue"), router.backend("green")
    run = router.role([blue.spec()], [], check=True)
    assert run.rc == 0, run.stdout[-3000:]
    assert not os.path.exists(router.state) and nginx_master(router.pid_file) is None

    run = router.role([blue.spec()], [])
    assert run.rc == 0, run.stdout[-3000:]
    master = nginx_master(router.pid_file)
    assert master is not None
    assert get(router.port) == (200, "blue")
    assert get(router.preview_port)[0] == 502  # allow_empty placeholder: preview has no release yet

    run = router.role([blue.spec()], [green.spec()])
    assert run.rc == 0, run.stdout[-3000:]
    assert get(router.preview_port) == (200, "green")
    assert get(router.port) == (200, "blue")

    run = router.role([green.spec()], [blue.spec()])  # the switch
    assert run.rc == 0, run.stdout[-3000:]
    assert get(router.port) == (200, "green") and get(router.preview_port) == (200, "blue")
    assert nginx_master(router.pid_file) == master, "reloads keep the same master"

    again = router.role([green.spec()], [blue.spec()])
    assert again.rc == 0 and [r["task"] for r in again.rows if r["result"].get("changed")] == []

    stop = router.role([], [], tasks_from="nginx_stop")
    assert stop.rc == 0, stop.stdout[-3000:]
    assert role_task(stop, "Ask nginx to quit")["status"] == "ok"
    assert nginx_master(router.pid_file) is None and exited(master)
    assert router.role([], [], tasks_from="nginx_stop").rc == 0  # stopping a stopped router is fine


def test_role_refuses_empty_live_upstream(router):
    run = router.role([], [])
    assert run.rc != 0
    failed = role_task(run, "Render the live and preview upstreams")["result"]
    assert "allow_empty" in str(failed) and nginx_master(router.pid_file) is None


def test_upstream_check_apply_idempotent_with_diff(router):
    blue, green = router.backend("blue"), router.backend("green")
    assert router.role([blue.spec()], []).rc == 0
    master = nginx_master(router.pid_file)
    before = open(router.live_file, encoding="utf-8").read()
    target = [green.spec(weight=3), blue.spec(backup=True)]

    run, res = router.upstream(target, check=True)
    assert run.rc == 0 and res["changed"] and not res["reloaded"]
    assert "+    server 127.0.0.1:%d weight=3;" % green.port in run.stdout  # unified diff shown
    assert "-    server 127.0.0.1:%d weight=1;" % blue.port in run.stdout
    assert open(router.live_file, encoding="utf-8").read() == before
    assert get(router.port) == (200, "blue")

    run, res = router.upstream(target)
    assert run.rc == 0 and res["changed"] and res["validated"] and res["reloaded"], run.stdout[-3000:]
    assert res["master_pid"] == master and res["workers"]
    assert "server 127.0.0.1:%d weight=1 backup;" % blue.port in open(router.live_file, encoding="utf-8").read()
    assert [get(router.port)[1] for _attempt in range(5)] == ["green"] * 5  # the backup gets nothing

    run, res = router.upstream(target, check=True)
    assert run.rc == 0 and not res["changed"]
    run, res = router.upstream(list(reversed(target)))  # order does not matter
    assert run.rc == 0 and not res["changed"] and not res["reloaded"] and res["running"]

    green.stop()  # the backup takes over when the only primary is gone
    assert get(router.port) == (200, "blue")


def test_rejected_upstream_rolls_back_and_keeps_serving(router, tmp_path):
    blue, green = router.backend("blue"), router.backend("green")
    assert router.role([blue.spec()], [blue.spec()]).rc == 0
    master = nginx_master(router.pid_file)
    preview_before = open(router.preview_file, encoding="utf-8").read()

    # The live upstream's name rendered into the preview file: nginx -t finds it defined twice.
    run, res = router.upstream([green.spec()], path=router.preview_file, ignore_errors=True)
    assert res.get("failed") and res["rolled_back"], run.stdout[-3000:]
    assert 'duplicate upstream "%s"' % router.app in res["msg"] and "restored" in res["msg"]
    assert open(router.preview_file, encoding="utf-8").read() == preview_before
    assert get(router.port) == (200, "blue") and get(router.preview_port) == (200, "blue")
    assert nginx_master(router.pid_file) == master

    # A new file that a broken main config makes nginx reject is removed again.
    conf = tmp_path / "broken.conf"
    conf.write_text("events {}\nhttp { include %s; no_such_directive on; }\n" % (tmp_path / "new.conf"))
    run, res = router.upstream([green.spec()], name="other", path=str(tmp_path / "new.conf"),
                               ignore_errors=True, nginx_conf=str(conf), reload=False)
    assert res.get("failed") and 'unknown directive "no_such_directive"' in res["nginx_output"]
    assert not (tmp_path / "new.conf").exists()


def test_reload_under_load_drops_nothing(router):
    blue, green = router.backend("blue"), router.backend("green")
    assert router.role([blue.spec()], []).rc == 0
    stop = threading.Event()
    seen: Dict[str, int] = {}
    failures: List[str] = []

    def load() -> None:
        deadline = time.monotonic() + 120  # bounded even if the test body hangs
        for _request in range(20000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            try:
                status, body = get(router.port)
                if status == 200:
                    seen[body] = seen.get(body, 0) + 1
                else:
                    failures.append("HTTP %d" % status)
            except OSError as exc:
                failures.append(repr(exc))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        reloads = 0
        for servers in ([green.spec()], [blue.spec()], [green.spec()]):
            run, res = router.upstream(servers)
            assert run.rc == 0 and res["reloaded"], run.stdout[-3000:]
            reloads += 1
    finally:
        stop.set()
        thread.join(30)
    print("load during 3 reloads: %s requests answered, %d failed" % (seen, len(failures)))
    assert failures == [], failures[:5]
    assert reloads == 3 and seen.get("blue", 0) > 0 and seen.get("green", 0) > 0, seen
    assert get(router.port) == (200, "green")


BAD_INPUTS = [
    ([{"address": "127.0.0.1", "port": 8080, "weight": 0}], {}, ["'servers[0].weight'", "0", "1 to 1000"]),
    ([{"address": "127.0.0.1", "port": 70000}], {}, ["'servers[0].port'", "70000", "1 to 65535"]),
    ([{"address": "127.0.0.1;", "port": 80}], {}, ["'servers[0].address'", "127.0.0.1;"]),
    ([], {}, ["'servers'", "allow_empty"]),
    ([{"address": "127.0.0.1", "port": 80}], {"nginx_binary": "/nonexistent/nginx"},
     ["'nginx_binary'", "/nonexistent/nginx"]),
]


def test_bad_input_fails_and_changes_nothing(play, tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("events {}\n")
    path = tmp_path / "up.conf"
    tasks = [{"name": "Bad %d" % i, "ignore_errors": True, "immutable.deploy.nginx_upstream": dict(
        dict(name="shop", path=str(path), servers=servers, nginx_conf=str(conf), nginx_binary=NGINX), **options)}
        for i, (servers, options, _expect) in enumerate(BAD_INPUTS)]
    run = play(tasks)
    for i, (_servers, _options, expect) in enumerate(BAD_INPUTS):
        row = run.task("Bad %d" % i)
        assert row["status"] == "failed", row
        for word in expect:
            assert word in row["result"]["msg"], row["result"]["msg"]
    assert not path.exists()
