"""Blue-green and rollback behind the nginx router: real engine, real nginx, under load.

The HAProxy suite's images and helpers are reused; only the router (and how the live release
is read back, from the live upstream file) differ.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from typing import Dict, List

import docker
import pytest

from net import Load, free_port, get
# images: the HAProxy suite's module-scoped fixture (v1, v2, v3 and an unhealthy 9.9.9), imported to be used here.
from test_blue_green import deploy, images, rollback, served  # noqa: F401  # pylint: disable=unused-import

NGINX = "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


class FreshLoad(Load):
    """Load with a new connection per request.

    A graceful nginx reload lets old workers finish the requests they are serving but closes
    their idle keep-alive connections at once; a client that then sends on such a connection
    sees it closed (Python's http.client does not retry). New connections measure what the
    reload itself drops: nothing, or it is a bug.
    """

    keep_alive = False


def nginx_master(pid_file: str):
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return pid if handle.read().startswith(b"nginx: master process") else None
    except (OSError, ValueError):
        return None


@pytest.fixture
def env(play, uid, tmp_path):
    """An nginx router (empty live upstream) for a fresh app on free ports; everything removed afterwards."""
    app = "bgn-%s" % uid
    state = tmp_path / "router"
    nginx_dir = state / ("nginx-" + app)
    names = {"app": app, "port": free_port(), "preview": free_port(), "state_dir": str(state),
             "lock_dir": str(tmp_path / "locks"), "pid_file": str(nginx_dir / "nginx.pid"),
             "live_file": str(nginx_dir / "upstreams" / (app + ".conf")),
             "preview_file": str(nginx_dir / "upstreams" / (app + "_preview.conf"))}
    router_vars = {"router_app": app, "router_kind": "nginx", "router_bind": "127.0.0.1:%d" % names["port"],
                   "router_preview_bind": "127.0.0.1:%d" % names["preview"], "router_state_dir": str(state),
                   "router_servers": [], "router_allow_empty": True, "router_nginx_binary": NGINX}
    run = play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
                 "vars": router_vars}])
    assert run.rc == 0, run.stdout[-3000:]
    master = nginx_master(names["pid_file"])
    assert master is not None
    yield names
    play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
           "vars": dict(router_vars, router_state="absent")}])
    if nginx_master(names["pid_file"]) == master:  # the role could not stop it: do not leave it behind
        os.kill(master, signal.SIGKILL)
    remove_containers(app)
    shutil.rmtree(tmp_path / "locks", ignore_errors=True)


def remove_containers(app: str) -> None:
    """Remove the app's containers; a busy engine may refuse once (seen: a kill that outlived the remove)."""
    client = docker.from_env()
    for attempt in range(3):
        try:
            for container in client.containers.list(all=True, filters={"label": "io.immutable-deploy.app=%s" % app}):
                container.remove(force=True)
            return
        except docker.errors.APIError:
            if attempt == 2:
                raise
            time.sleep(2)


def bg(play, env, image, **extra):
    return deploy(play, env, image, blue_green_router_kind="nginx", blue_green_nginx_binary=NGINX, **extra)


def rb(play, env, **extra):
    return rollback(play, env, rollback_router_kind="nginx", rollback_nginx_binary=NGINX, **extra)


def info(play, env) -> Dict[str, Dict]:
    run = play([{"name": "info", "immutable.deploy.docker_release_info": {
        "app": env["app"], "router_kind": "nginx", "router_upstream_file": env["live_file"]}}])
    assert run.rc == 0, run.stdout[-2000:]
    return {r["id"]: r for r in run.result("info")["releases"]}


def upstream_ports(path: str) -> List[int]:
    """Ports of the servers that take traffic in an upstream file (placeholder and down ones excluded)."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.split("#")[0].strip() for line in handle]
    return sorted(int(line.split()[1].rsplit(":", 1)[1]) for line in lines
                  if line.startswith("server ") and " down" not in line and " backup" not in line)


def ports(release: Dict) -> List[int]:
    return sorted(e["port"] for e in release["endpoints"])


def test_deploy_swap_idempotent_rollback(play, env, images):
    first = bg(play, env, images["1.0.0"], blue_green_replicas=2)
    assert first.rc == 0, first.stdout[-4000:]
    assert served(env) == {"1.0.0"}
    releases = info(play, env)
    assert releases["1.0.0"]["live"] and releases["1.0.0"]["weight"] == 200  # 2 servers at weight 100
    master = nginx_master(env["pid_file"])

    # Keep-alive clients are measured too: they may only see their idle connection closed by a reload.
    with FreshLoad(env["port"], threads=2) as load, Load(env["port"], threads=2) as keepalive:
        live_before = os.stat(env["live_file"]).st_mtime_ns
        again = bg(play, env, images["1.0.0"], blue_green_replicas=2)
        assert again.rc == 0 and again.result("result")["blue_green_result"]["changed"] is False, again.stdout[-3000:]
        assert [r["task"] for r in again.rows if r["result"].get("changed")
                and r["action"] != "immutable.deploy.deploy_lock"] == []
        assert os.stat(env["live_file"]).st_mtime_ns == live_before

        second = bg(play, env, images["2.0.0"], blue_green_replicas=2)
        assert second.rc == 0, second.stdout[-4000:]
        assert served(env) == {"2.0.0"} and get(env["preview"])[1] == "2.0.0"
        releases = info(play, env)
        assert releases["2.0.0"]["live"] and not releases["1.0.0"]["live"] and releases["1.0.0"]["weight"] == 0
        assert releases["1.0.0"]["state"] == "running"  # kept warm for rollback
        assert upstream_ports(env["live_file"]) == ports(releases["2.0.0"])
        switched = [r["result"] for r in second.rows if r["action"] == "immutable.deploy.docker_switch"]
        assert [s["router"]["drained"]["done"] for s in switched] == [True]  # old workers finished, then exited

        back = rb(play, env)
        assert back.rc == 0, back.stdout[-4000:]
        expected = {"app": env["app"], "live": "1.0.0", "previous": "2.0.0", "changed": True}
        assert back.result("result")["rollback_result"] == expected
        assert served(env) == {"1.0.0"}
        assert not [r for r in back.rows if r["action"] == "immutable.deploy.docker_release" and r["status"] == "ok"]
        releases = info(play, env)
        assert releases["1.0.0"]["live"] and not releases["2.0.0"]["live"]
        assert upstream_ports(env["live_file"]) == ports(releases["1.0.0"])

        same = rb(play, env, rollback_to="1.0.0")  # already live: nothing to do
        assert same.rc == 0 and same.result("result")["rollback_result"]["changed"] is False
    print("fresh connections: %s; keep-alive: %s" % (load.snapshot(), keepalive.snapshot()))
    assert load.errors == {}, load.snapshot()
    assert load.total > 100 and set(load.versions) == {"1.0.0", "2.0.0"}, load.snapshot()
    assert set(keepalive.errors) <= {"RemoteDisconnected", "ConnectionResetError"}, keepalive.snapshot()
    assert nginx_master(env["pid_file"]) == master, "every switch was a reload of the same master"


def test_unhealthy_release_is_never_switched_to(play, env, images):
    assert bg(play, env, images["1.0.0"]).rc == 0
    live_before = open(env["live_file"], encoding="utf-8").read()
    with FreshLoad(env["port"]) as load:
        bad = bg(play, env, images["9.9.9"], blue_green_wait_timeout=15)
    assert bad.rc != 0
    assert "aborted before the switch" in bad.stdout and "1.0.0 still serves all traffic" in bad.stdout, \
        bad.stdout[-3000:]
    assert load.errors == {} and set(load.versions) == {"1.0.0"}, load.snapshot()
    assert open(env["live_file"], encoding="utf-8").read() == live_before
    assert upstream_ports(env["preview_file"]) == []  # the rescue emptied the preview
    releases = info(play, env)
    assert set(releases) == {"1.0.0"} and releases["1.0.0"]["live"]


def test_failed_watch_sends_traffic_back(play, env, images):
    assert bg(play, env, images["1.0.0"]).rc == 0
    with FreshLoad(env["port"]) as load:
        bad = bg(play, env, images["2.0.0"], blue_green_watch_path="/no-such-page", blue_green_watch_seconds=1)
    assert bad.rc != 0
    assert "rolled back after the switch" in bad.stdout and "1.0.0 serves all traffic again" in bad.stdout, \
        bad.stdout[-3000:]
    assert load.errors == {} and "1.0.0" in load.versions, load.snapshot()
    assert served(env) == {"1.0.0"}
    releases = info(play, env)
    assert releases["1.0.0"]["live"] and not releases["2.0.0"]["live"]
    assert upstream_ports(env["live_file"]) == ports(releases["1.0.0"])


def test_release_info_from_the_upstream_file(play, env, images):
    assert info(play, env) == {}
    assert bg(play, env, images["1.0.0"]).rc == 0
    release = info(play, env)["1.0.0"]
    assert release["live"] and release["weight"] == 100
    port = release["endpoints"][0]["port"]
    # A down or backup server takes no traffic: not live.
    for flag in ("down", "backup"):
        with open(env["live_file"], "w", encoding="utf-8") as handle:
            handle.write("upstream %s {\n    server 127.0.0.1:9;\n    server 127.0.0.1:%d weight=5 %s;\n}\n"
                         % (env["app"], port, flag))
        assert info(play, env)["1.0.0"]["live"] is False
    wrong = play([{"name": "info", "ignore_errors": True, "immutable.deploy.docker_release_info": {
        "app": env["app"], "router_kind": "nginx", "router_upstream_file": env["live_file"],
        "router_socket": "/nonexistent.sock", "router_backend": env["app"]}}])
    assert "Option 'router_socket' does not apply to router_kind=nginx" in wrong.result("info")["msg"]
    missing = play([{"name": "info", "ignore_errors": True, "immutable.deploy.docker_release_info": {
        "app": env["app"], "router_kind": "nginx", "router_upstream_file": env["live_file"] + ".gone"}}])
    assert "'router_upstream_file': cannot read the upstream file" in missing.result("info")["msg"]
