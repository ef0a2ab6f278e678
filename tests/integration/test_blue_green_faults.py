"""Blue-green under faults: a deploy SIGKILLed at several points, and a fleet that must switch all or none."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from typing import Dict, List

import docker
import pytest
import yaml

from conftest import BIN, HERE, ROOT, run_playbook
from net import Load, free_port
from test_blue_green import bg_vars, deploy, env, images, info, served  # noqa: F401 pylint: disable=unused-import

LABEL_APP = "io.immutable-deploy.app"
LABEL_RELEASE = "io.immutable-deploy.release"
REPLICAS = 2  # two replicas, so a kill can leave a release half-created


def ansible_env(record: str) -> Dict[str, str]:
    """The environment conftest.run_playbook gives ansible-playbook, unbuffered so lines arrive as printed."""
    return dict(os.environ, RECORD_RESULTS=record, ANSIBLE_CALLBACKS_ENABLED="record_results",
                ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
                ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
                ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0", PYTHONUNBUFFERED="1")


def containers(app: str) -> List[docker.models.containers.Container]:
    return docker.from_env().containers.list(all=True, filters={"label": "%s=%s" % (LABEL_APP, app)})


# -- 1. SIGKILL at several points of a deploy ------------------------------------------------------
# A point is reached when the banner of the task (by name fragment) has been printed and, when
# `module` is set, ansible has started that module's AnsiballZ payload (-vvv prints the EXEC line).
# "start" additionally waits until the first container of the new release exists (half-created).
POINTS = {
    "start": {"task": "Start 2.0.0 in slot", "module": "docker_release", "container": True},
    "preview-done": {"task": "Smoke-test 2.0.0 through the preview frontend", "module": None},
    "switch": {"task": "Switch {app} to 2.0.0", "module": "docker_switch"},
    "watch": {"task": "Watch the live frontend after the switch", "module": "http_check"},
}


def _module_started(line: str, module: str) -> bool:
    return "EXEC" in line and ("AnsiballZ_%s.py" % module) in line and "chmod" not in line


def deploy_and_kill(env, image: str, point: Dict[str, object], tmp_path, timeout: float = 300) -> str:
    """Run the v2 deploy in its own process group and SIGKILL the group at `point`; return its output."""
    playbook = str(tmp_path / ("kill-%s.yml" % uuid.uuid4().hex[:8]))
    tasks = [{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
              "vars": bg_vars(env, image, blue_green_replicas=REPLICAS, blue_green_watch_seconds=20)}]
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], handle)
    cmd = [os.path.join(BIN, "ansible-playbook"), "-vvv", "-i", os.path.join(HERE, "inventory.ini"), playbook]
    proc = subprocess.Popen(cmd, env=ansible_env(str(tmp_path / "kill-results.jsonl")), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    task = str(point["task"]).format(app=env["app"])
    lines: List[str] = []
    banner, deadline = False, time.monotonic() + timeout
    try:
        for line in proc.stdout:
            lines.append(line)
            banner = banner or (line.startswith("TASK [") and task in line)
            if banner and (not point.get("module") or _module_started(line, str(point["module"]))):
                break
            assert time.monotonic() < deadline, "point %r not reached in %ss" % (point, timeout)
        else:
            pytest.fail("the deploy ended before %r:\n%s" % (point, "".join(lines[-80:])))
        if point.get("container"):
            while not [c for c in containers(env["app"]) if c.labels.get(LABEL_RELEASE) == "2.0.0"]:
                assert time.monotonic() < deadline and proc.poll() is None, "no 2.0.0 container was created"
                time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "deploy was not killed (rc %s)" % proc.returncode
    return "".join(lines)


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_deploy_never_drops_traffic_and_a_rerun_converges(play, env, images, point, tmp_path):
    first = deploy(play, env, images["1.0.0"], blue_green_replicas=REPLICAS)
    assert first.rc == 0, first.stdout[-4000:]
    lock = os.path.join(env["lock_dir"], env["app"] + ".lock")
    with Load(env["port"]) as load:
        out = deploy_and_kill(env, images["2.0.0"], POINTS[point], tmp_path)
        assert os.path.exists(lock), "the killed run should have left its lock:\n" + out[-3000:]
        after_kill = served(env)
        assert after_kill and after_kill <= {"1.0.0", "2.0.0"}, after_kill

        again = deploy(play, env, images["2.0.0"], blue_green_replicas=REPLICAS, blue_green_break_lock=True)
        assert again.rc == 0, again.stdout[-5000:]
        assert served(env) == {"2.0.0"}
        releases = info(play, env)
        assert set(releases) == {"1.0.0", "2.0.0"}, releases
        assert releases["2.0.0"]["live"] and not releases["1.0.0"]["live"], releases
        assert releases["1.0.0"]["state"] == "running" and releases["2.0.0"]["state"] == "running", releases
        by_release: Dict[str, int] = {}
        for container in containers(env["app"]):
            assert container.status == "running", (container.name, container.status)
            by_release[container.labels[LABEL_RELEASE]] = by_release.get(container.labels[LABEL_RELEASE], 0) + 1
        assert by_release == {"1.0.0": REPLICAS, "2.0.0": REPLICAS}, by_release
        assert not os.path.exists(lock)

        third = deploy(play, env, images["2.0.0"], blue_green_replicas=REPLICAS)
        assert third.rc == 0, third.stdout[-4000:]
        assert third.result("result")["blue_green_result"]["changed"] is False
        # Only the lock comes and goes; no container or router change.
        changed = [r["task"] for r in third.rows if r["result"].get("changed") and r["action"] != "immutable.deploy.deploy_lock"]
        assert changed == [], changed
    assert load.errors == {}, load.snapshot()
    assert set(load.versions) <= {"1.0.0", "2.0.0"} and load.versions["2.0.0"] > 0, load.snapshot()


# -- 2. A fleet of two "hosts" on this machine, all or none ----------------------------------------
@pytest.fixture
def fleet(play, uid, tmp_path):
    """Two inventory hosts (both local), each with its own app, router, ports and lock directory."""
    hosts = {}
    for name in ("a", "b"):
        app = "bgf%s-%s" % (name, uid)
        state = tmp_path / ("router-" + name)
        hosts["fleet-%s-%s" % (name, uid)] = {
            "app": app, "port": free_port(), "preview": free_port(), "state_dir": str(state),
            "lock_dir": str(tmp_path / ("locks-" + name))}
    routers = []
    for h in hosts.values():
        router_vars = {"router_app": h["app"], "router_bind": "127.0.0.1:%d" % h["port"],
                       "router_preview_bind": "127.0.0.1:%d" % h["preview"], "router_state_dir": h["state_dir"],
                       "router_health_interval": "500ms", "router_health_rise": 1, "router_health_path": "/health"}
        routers.append(router_vars)
        run = play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
                     "vars": router_vars}])
        assert run.rc == 0, run.stdout[-3000:]
    yield hosts
    for router_vars in routers:
        play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
               "vars": dict(router_vars, router_state="absent")}])
    for h in hosts.values():
        for container in containers(h["app"]):
            container.remove(force=True)
        shutil.rmtree(h["lock_dir"], ignore_errors=True)


def fleet_deploy(fleet, tmp_path, image_of: Dict[str, str], **extra):
    """Deploy to every fleet host at once; image_of maps host -> image. Host vars carry each router."""
    inventory = str(tmp_path / ("fleet-%s.yml" % uuid.uuid4().hex[:8]))
    hosts = {host: dict(bg_vars(h, image_of[host], blue_green_wait_timeout=15, **extra),
                        ansible_connection="local", ansible_python_interpreter=sys.executable)
             for host, h in fleet.items()}
    with open(inventory, "w", encoding="utf-8") as handle:
        yaml.safe_dump({"fleet": {"hosts": hosts}}, handle)
    playbook = str(tmp_path / ("fleet-%s.yml" % uuid.uuid4().hex[:8]))
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"hosts": "fleet", "gather_facts": False, "tasks": [
            {"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"}},
            {"name": "result", "ansible.builtin.debug": {"var": "blue_green_result"}}]}], handle)
    return run_playbook(None, tmp_path, playbook=playbook, args=["-i", inventory])


def releases_at(h) -> set:
    """Release ids that have containers for one fleet host's app (read from the engine directly)."""
    return {c.labels[LABEL_RELEASE] for c in containers(h["app"])}


def test_fleet_all_or_none_switches_no_host_when_one_fails(fleet, images, tmp_path):
    host_a, host_b = sorted(fleet)
    first = fleet_deploy(fleet, tmp_path, {host_a: images["1.0.0"], host_b: images["1.0.0"]})
    assert first.rc == 0, first.stdout[-4000:]
    loads = {host: Load(h["port"]) for host, h in fleet.items()}
    for load in loads.values():
        load.__enter__()
    try:
        bad = fleet_deploy(fleet, tmp_path, {host_a: images["2.0.0"], host_b: images["9.9.9"]},
                           blue_green_all_or_none=True)
        assert bad.rc != 0, bad.stdout[-4000:]
        assert "2.0.0" not in loads[host_a].versions, loads[host_a].snapshot()  # host a never switched
        for host, h in fleet.items():
            assert served(h) == {"1.0.0"}, (host, bad.stdout[-5000:])
            assert releases_at(h) == {"1.0.0"}, host  # the new release was removed on both hosts
        good = fleet_deploy(fleet, tmp_path, {host_a: images["2.0.0"], host_b: images["2.0.0"]},
                            blue_green_all_or_none=True)
        assert good.rc == 0, good.stdout[-4000:]
        for host, h in fleet.items():
            assert served(h) == {"2.0.0"}, host
    finally:
        for load in loads.values():
            load.__exit__(None, None, None)
    for host, load in loads.items():
        assert load.errors == {}, (host, load.snapshot())
    assert set(loads[host_a].versions) == {"1.0.0", "2.0.0"}
