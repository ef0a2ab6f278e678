"""Routers come back after a reboot by themselves (issue 16), on a real systemd host.

One test host (tests/hosts/hosts.sh: a systemd-nspawn machine booted from a cached Debian 12
image, its own network namespace, ports published on 127.0.0.1 only). The router role runs
over SSH as the unprivileged user `deploy` with become, using the host's /usr/bin/python3.
Two busybox HTTP backends on the host answer 1.0.0 (port 9001) and 2.0.0 (port 9002).

Routers on the host:
- shop (HAProxy, systemd unit from the start): 1.0.0 live, 2.0.0 warm in drain;
- shopn (nginx, systemd unit): 1.0.0 live, 2.0.0 in preview;
- legacy (HAProxy started without systemd, as older versions of the role did, then taken
  over by the unit): 2.0.0 live.
The machine reboots (systemctl reboot inside); with no Ansible run afterwards every router
answers with its live release only, the warm server is still in drain with its address, and
the units are enabled. router_state=absent then removes the units.
"""
from __future__ import annotations

import http.client
import os
import shlex
import time
import uuid
from collections import Counter
from typing import Any, Dict, List

import pytest
import yaml

from machines import Machines, nspawn_unavailable
from net import Load

SHOP_PORT, SHOPN_PORT, LEGACY_PORT = 8080, 8081, 8082
BACKENDS = {9001: "1.0.0", 9002: "2.0.0"}
STATE = "/var/lib/immutable-deploy/router"
ROLE = "immutable.deploy.router : "

SHOP = {"router_app": "shop", "router_bind": "127.0.0.1:%d" % SHOP_PORT, "router_preview_bind": "127.0.0.1:18080",
        "router_health_interval": "500ms", "router_health_rise": 1}
SHOPN = {"router_app": "shopn", "router_kind": "nginx", "router_bind": "127.0.0.1:%d" % SHOPN_PORT,
         "router_preview_bind": "127.0.0.1:18081", "router_servers": [{"address": "127.0.0.1", "port": 9001}],
         "router_preview_servers": [{"address": "127.0.0.1", "port": 9002}]}
LEGACY = {"router_app": "legacy", "router_bind": "127.0.0.1:%d" % LEGACY_PORT,
          "router_preview_bind": "127.0.0.1:18082", "router_health_interval": "500ms", "router_health_rise": 1}


@pytest.fixture(scope="session")
def machines():
    """One systemd test host (image built or taken from the cache); stopped and deleted afterwards."""
    reason = nspawn_unavailable()
    if reason:
        pytest.skip("systemd-nspawn cannot run here: " + reason)
    hosts = Machines("rr%s" % uuid.uuid4().hex[:6], [22, SHOP_PORT, SHOPN_PORT, LEGACY_PORT])
    hosts.timings["image_build_s"] = round(hosts.build(), 1)
    started = time.monotonic()
    hosts.start(1)
    hosts.timings["start_to_ssh_s"] = round(time.monotonic() - started, 1)
    try:
        yield hosts
    finally:
        hosts.stop()


class FreshLoad(Load):
    """A new connection per request: what a reload promises is that no connection is refused. The old
    process closes its idle keep-alive connections, which can race with a client's next request on one
    (HTTP lets a server close idle connections; clients retry idempotent requests): not measured here."""

    keep_alive = False
    pause = 0.02  # ~50 requests/s per thread: enough to hit a gap, light on a shared 2-core machine


def role(router_vars: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    return {"name": "router %s" % router_vars["router_app"], "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
            "vars": dict(router_vars, **extra)}


def backend(app: str, servers: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"name": "backend %s" % app, "immutable.deploy.haproxy_backend": {
        "socket": "%s/%s/haproxy.sock" % (STATE, app), "state_file": "%s/%s/server-state" % (STATE, app),
        "backend": app, "servers": servers, "exclusive": True, "wait_up": True}}


def changed(run, task: str) -> List[bool]:
    """Whether each run of the role task changed something, in play order (skipped: False)."""
    return [bool(row["result"].get("changed")) for row in run.rows if row["task"] == ROLE + task]


def get(port: int, timeout: float = 5) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace").strip()
    finally:
        conn.close()


def first_answer(port: int, want: str, timeout: float = 120) -> float:
    """Wall-clock time of the first 200 answer WANT on 127.0.0.1:PORT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(port, timeout=2) == (200, want):
                return time.time()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.02)
    raise AssertionError("no answer %r on 127.0.0.1:%d within %ss" % (want, port, timeout))


def count(port: int, requests: int) -> Counter:
    answers: Counter = Counter()
    for dummy in range(requests):
        try:
            status, body = get(port)
            answers[body if status == 200 else "status %d" % status] += 1
        except (OSError, http.client.HTTPException) as exc:
            answers[type(exc).__name__] += 1
    return answers


def test_routers_come_back_after_reboot(machines, play, tmp_path, record_property):
    name = machines.names[0]
    inventory = machines.inventory(str(tmp_path / "hosts.ini"))
    timings: Dict[str, Any] = dict(machines.timings)

    def run(tasks: List[Dict[str, Any]], what: str):
        playbook = tmp_path / ("%s.yml" % what)
        playbook.write_text(yaml.safe_dump([{"hosts": "test_hosts", "gather_facts": False, "become": True,
                                             "tasks": tasks}]))
        started = time.monotonic()
        out = play(None, playbook=str(playbook), args=["-i", inventory], env={"ANSIBLE_PIPELINING": "1"})
        timings["play_%s_s" % what] = round(time.monotonic() - started, 1)
        assert out.rc == 0, out.stdout[-4000:]
        return out

    def sh(command: str) -> str:
        return machines.ssh(name, "sudo sh -c %s" % shlex.quote(command)).strip()

    sh("; ".join("mkdir -p /srv/web/{p} && echo {v} >/srv/web/{p}/index.html && echo ok >/srv/web/{p}/health"
                 .format(p=port, v=version) for port, version in BACKENDS.items())
       + "; systemctl enable -q --now test-web@9001 test-web@9002")
    port = {app: machines.port(name, inside) for app, inside in
            (("shop", SHOP_PORT), ("shopn", SHOPN_PORT), ("legacy", LEGACY_PORT))}

    # 1. shop and shopn as systemd units; legacy as a plain daemon (what older versions did).
    first = run([role(SHOP),
                 backend("shop", [{"name": "blue1", "address": "127.0.0.1", "port": 9001, "weight": 100, "state": "ready"},
                                  {"name": "green1", "address": "127.0.0.1", "port": 9002, "weight": 0, "state": "drain"}]),
                 role(SHOPN), role(LEGACY, router_service="none"),
                 backend("legacy", [{"name": "blue1", "address": "127.0.0.1", "port": 9002, "weight": 100, "state": "ready"}])],
                "setup")
    facts = [row["result"] for row in first.rows if row["task"] == ROLE + "Publish the HAProxy router facts"]
    assert [f["ansible_facts"]["router_haproxy"]["service"] for f in facts] == ["immutable-deploy-router-shop.service", ""]
    assert sh("systemctl is-enabled immutable-deploy-router-shop.service immutable-deploy-router-shopn-nginx.service") \
        == "enabled\nenabled"
    assert sh("test -e /etc/systemd/system/immutable-deploy-router-legacy.service || echo none") == "none"
    assert count(port["shop"], 20) == Counter({"1.0.0": 20})

    # 2. Under load: a config change reloads shop through systemd, and legacy is taken over.
    with FreshLoad(port["shop"], path="/", threads=1) as shop_load, \
            FreshLoad(port["legacy"], path="/", threads=1) as legacy_load:
        second = run([role(SHOP, router_retries=2), role(LEGACY)], "reload")
    # per router in play order: shop, then legacy
    assert changed(second, "Reload HAProxy seamlessly through systemd") == [True, False]
    assert changed(second, "Let the HAProxy started without systemd finish") == [False, True]
    assert not shop_load.errors and set(shop_load.versions) == {"1.0.0"}, shop_load.snapshot()
    assert set(legacy_load.versions) == {"2.0.0"}, legacy_load.snapshot()
    timings["takeover_failed_requests"] = sum(legacy_load.errors.values())
    timings["takeover_requests"] = legacy_load.total
    deadline = time.monotonic() + 15  # the legacy daemon finishes its connections and exits
    # [/]: the pattern must not match the shell that runs pgrep
    while sh("pgrep -fc '[/]usr/sbin/haproxy -f %s/legacy/haproxy.cfg' || true" % STATE) != "1":
        assert time.monotonic() < deadline, sh("pgrep -af haproxy")
        time.sleep(0.3)
    assert sh("systemctl show -p MainPID --value immutable-deploy-router-legacy.service") \
        == sh("cat %s/legacy/haproxy.pid" % STATE)

    # 3. Reboot from inside, then no Ansible: the routers are back on their own.
    boots = len(machines.boots(name))
    rebooted = time.time()
    machines.ssh(name, "sudo systemctl reboot", check=False)
    deadline = time.monotonic() + 60
    while len(machines.boots(name)) == boots:
        assert time.monotonic() < deadline, "the machine did not boot again"
        time.sleep(0.05)
    boot = machines.boots(name)[-1]
    shop_up = first_answer(port["shop"], "1.0.0")
    timings["boot_to_first_answer_s"] = round(shop_up - boot, 2)
    timings["reboot_to_first_answer_s"] = round(shop_up - rebooted, 2)
    timings["boot_to_nginx_answer_s"] = round(first_answer(port["shopn"], "1.0.0") - boot, 2)
    timings["boot_to_legacy_answer_s"] = round(first_answer(port["legacy"], "2.0.0") - boot, 2)
    assert count(port["shop"], 300) == Counter({"1.0.0": 300})
    assert count(port["shopn"], 300) == Counter({"1.0.0": 300})
    assert count(port["legacy"], 100) == Counter({"2.0.0": 100})
    machines.run("wait", name)
    servers = machines.servers_state(name, "%s/shop/haproxy.sock" % STATE, "shop")
    assert (servers["blue1"]["address"], servers["blue1"]["port"], servers["blue1"]["weight"],
            servers["blue1"]["state"]) == ("127.0.0.1", 9001, 100, "ready")
    assert (servers["green1"]["address"], servers["green1"]["port"], servers["green1"]["weight"],
            servers["green1"]["state"]) == ("127.0.0.1", 9002, 0, "drain")
    assert {s["state"] for k, s in servers.items() if k not in ("blue1", "green1")} == {"maint"}
    units = " ".join("immutable-deploy-router-%s.service" % app for app in ("shop", "shopn-nginx", "legacy"))
    assert sh("systemctl is-enabled %s" % units).split() == ["enabled"] * 3
    assert sh("systemctl is-active %s" % units).split() == ["active"] * 3
    # The image stays as built: the units live in this machine's own layer.
    assert os.path.exists(os.path.join(machines.machine_dir(name), "upper", "etc", "systemd", "system",
                                       "immutable-deploy-router-shop.service"))
    assert not os.path.exists(os.path.join(machines.image_dir(name), "rootfs", "etc", "systemd", "system",
                                           "immutable-deploy-router-shop.service"))

    # 4. router_state=absent stops, disables and removes the units and the routers' files.
    run([role(SHOP, router_state="absent"), role(SHOPN, router_state="absent"), role(LEGACY, router_state="absent")],
        "absent")
    assert sh("ls /etc/systemd/system | grep -c immutable-deploy-router || true") == "0"
    assert sh("systemctl list-units --all --plain --no-legend 'immutable-deploy-router-*' | wc -l") == "0"
    assert sh("pgrep -af '[/]var/lib/immutable-deploy/router' || true") == ""
    assert sh("ls -A %s 2>/dev/null || true" % STATE) == ""
    for key, value in timings.items():
        record_property(key, value)
    print("router reboot timings: %s" % timings)
