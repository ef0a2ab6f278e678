"""Blue-green and rollback on the real engine behind a real HAProxy, under real load."""
from __future__ import annotations

import json
import os
import shutil

import docker
import pytest

from conftest import REGISTRY
from images import remove_repos, sample_context
from net import Load, free_port, get


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """v1, v2 and a release whose health check fails (no /health file), pushed by digest."""
    from conftest import run_playbook
    tmp = tmp_path_factory.mktemp("bg-images")
    repo = "%s/it-bg-%s/app" % (REGISTRY, os.urandom(4).hex())
    contexts = {v: sample_context(tmp / v, v) for v in ("1.0.0", "2.0.0", "3.0.0", "9.9.9")}
    os.remove(os.path.join(contexts["9.9.9"], "www", "health"))
    tasks = [{"name": v, "immutable.deploy.image_build": {"name": repo, "version": v, "path": c, "push": True}}
             for v, c in contexts.items()]
    run = run_playbook(tasks, tmp)
    assert run.rc == 0, run.stdout[-3000:]
    # name:version@digest: pinned by digest, and the release id defaults to the version.
    yield {v: "%s:%s@%s" % (repo, v, run.result(v)["image"]["digest"]) for v in contexts} | {"repo": repo}
    remove_repos([repo])


@pytest.fixture
def env(play, uid, tmp_path):
    """A router for a fresh app on free ports; everything removed afterwards."""
    app = "bg-%s" % uid
    state = tmp_path / "router"
    names = {"app": app, "port": free_port(), "preview": free_port(), "state_dir": str(state),
             "lock_dir": str(tmp_path / "locks")}
    router_vars = {"router_app": app, "router_bind": "127.0.0.1:%d" % names["port"],
                   "router_preview_bind": "127.0.0.1:%d" % names["preview"], "router_state_dir": str(state),
                   "router_health_interval": "500ms", "router_health_rise": 1, "router_health_path": "/health"}
    names["router_vars"] = router_vars
    run = play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
                 "vars": router_vars}])
    assert run.rc == 0, run.stdout[-3000:]
    yield names
    play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
           "vars": dict(router_vars, router_state="absent")}])
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"label": "io.immutable-deploy.app=%s" % app}):
        container.remove(force=True)
    shutil.rmtree(tmp_path / "locks", ignore_errors=True)


def bg_vars(env, image, **extra):
    values = {"blue_green_app": env["app"], "blue_green_image": image,
              "blue_green_router_state_dir": env["state_dir"],
              "blue_green_router_bind": "127.0.0.1:%d" % env["port"],
              "blue_green_router_preview_bind": "127.0.0.1:%d" % env["preview"],
              "blue_green_lock_dir": env["lock_dir"], "blue_green_watch_seconds": 2,
              "blue_green_healthcheck": {"type": "http", "path": "/health", "interval": 1}}
    values.update(extra)
    return values


def deploy(play, env, image, **extra):
    return play([{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
                  "vars": bg_vars(env, image, **extra)},
                 {"name": "result", "ansible.builtin.debug": {"var": "blue_green_result"}}])


def rollback(play, env, **extra):
    values = {"rollback_app": env["app"], "rollback_router_state_dir": env["state_dir"],
              "rollback_router_bind": "127.0.0.1:%d" % env["port"], "rollback_lock_dir": env["lock_dir"]}
    values.update(extra)
    return play([{"name": "rb", "ansible.builtin.include_role": {"name": "immutable.deploy.rollback"},
                  "vars": values},
                 {"name": "result", "ansible.builtin.debug": {"var": "rollback_result"}}])


def info(play, env):
    run = play([{"name": "info", "immutable.deploy.docker_release_info": {
        "app": env["app"], "router_socket": os.path.join(env["state_dir"], "haproxy.sock"),
        "router_backend": env["app"]}}])
    assert run.rc == 0, run.stdout[-2000:]
    return {r["id"]: r for r in run.result("info")["releases"]}


def served(env):
    """Versions answering through the live frontend over a few requests."""
    return {get(env["port"])[1] for dummy in range(8)}


def test_deploy_swap_idempotent_rollback_retire(play, env, images):
    first = deploy(play, env, images["1.0.0"])
    assert first.rc == 0, first.stdout[-4000:]
    assert served(env) == {"1.0.0"}
    with Load(env["port"]) as load:  # from the first live release on, no request may fail
        again = deploy(play, env, images["1.0.0"])
        assert again.rc == 0 and again.result("result")["blue_green_result"]["changed"] is False
        assert not [r for r in again.rows if r["action"] == "immutable.deploy.docker_release" and r["status"] == "ok"]

        second = deploy(play, env, images["2.0.0"])
        assert second.rc == 0, second.stdout[-4000:]
        assert served(env) == {"2.0.0"}
        releases = info(play, env)
        assert releases["2.0.0"]["live"] and not releases["1.0.0"]["live"]
        assert releases["1.0.0"]["state"] == "running"  # kept warm for rollback
        assert releases["2.0.0"]["slot"] != releases["1.0.0"]["slot"]

        back = rollback(play, env)
        assert back.rc == 0, back.stdout[-4000:]
        expected = {"app": env["app"], "live": "1.0.0", "previous": "2.0.0", "changed": True}
        assert back.result("result")["rollback_result"] == expected
        assert served(env) == {"1.0.0"}
        # warm: one module run (lock, read, switch), nothing started
        ran = [r for r in back.rows if r["action"].startswith("immutable.") and r["status"] != "skipped"]
        assert [r["action"] for r in ran] == ["immutable.deploy.docker_switch"] and ran[0]["result"]["started"] is False
        lock_file = os.path.join(env["lock_dir"], env["app"] + ".lock")
        assert not os.path.exists(lock_file)
        with open(lock_file, "w", encoding="utf-8") as handle:
            json.dump({"owner": "other-operator", "purpose": "blue-green to 0.9", "since": 0}, handle)
        locked = rollback(play, env)  # a deploy holds the lock: fails at once, nothing switched
        assert locked.rc != 0 and "locked by other-operator (blue-green to 0.9)" in locked.stdout
        assert served(env) == {"1.0.0"} and info(play, env)["1.0.0"]["live"]
        os.remove(lock_file)

        third = deploy(play, env, images["3.0.0"])  # third slot; 2.0.0 retired after the switch, 1.0.0 warm
        assert third.rc == 0, third.stdout[-4000:]
        assert set(info(play, env)) == {"3.0.0", "1.0.0"}
        fourth = deploy(play, env, images["2.0.0"], blue_green_keep=1)
        assert fourth.rc == 0, fourth.stdout[-4000:]
        assert set(info(play, env)) == {"2.0.0"}
        assert served(env) == {"2.0.0"}
    assert load.errors == {}, load.snapshot()
    assert load.total > 100 and set(load.versions) == {"1.0.0", "2.0.0", "3.0.0"}


def test_unhealthy_release_is_never_switched_to(play, env, images):
    assert deploy(play, env, images["1.0.0"]).rc == 0
    with Load(env["port"]) as load:
        bad = deploy(play, env, images["9.9.9"], blue_green_wait_timeout=15)
    assert bad.rc != 0
    msg = bad.task("bg").get("result", {}).get("msg", "") or bad.stdout
    assert "aborted before the switch" in bad.stdout and "1.0.0 still serves all traffic" in bad.stdout, msg
    assert load.errors == {} and set(load.versions) == {"1.0.0"}, load.snapshot()
    assert set(info(play, env)) == {"1.0.0"}


def test_bad_input_fails_clearly_and_changes_nothing(play, env, images):
    assert deploy(play, env, images["1.0.0"]).rc == 0
    before = info(play, env)
    cases = [
        ({"blue_green_image": images["repo"] + ":latest"}, "moving tag"),
        ({"blue_green_keep": 5}, "must be one of: 1, 2, got: 5"),
        ({"blue_green_weight": 300}, "blue_green_weight=300 (1 to 256)"),
    ]
    for extra, fragment in cases:
        image = extra.pop("blue_green_image", images["2.0.0"])
        run = deploy(play, env, image, **extra)
        assert run.rc != 0 and fragment in run.stdout, (extra, run.stdout[-3000:])
        assert info(play, env).keys() == before.keys() and served(env) == {"1.0.0"}


def test_concurrent_deploy_is_locked_out_and_stale_lock_can_be_broken(play, env, images):
    os.makedirs(env["lock_dir"], exist_ok=True)
    with open(os.path.join(env["lock_dir"], env["app"] + ".lock"), "w", encoding="utf-8") as handle:
        json.dump({"owner": "other-operator", "purpose": "blue-green to 0.9", "since": 0}, handle)
    locked = deploy(play, env, images["1.0.0"])
    assert locked.rc != 0 and "locked by other-operator (blue-green to 0.9)" in locked.stdout
    assert info(play, env) == {}
    broken = deploy(play, env, images["1.0.0"], blue_green_break_lock=True)
    assert broken.rc == 0, broken.stdout[-3000:]
    assert served(env) == {"1.0.0"}
    assert not os.path.exists(os.path.join(env["lock_dir"], env["app"] + ".lock"))


def test_haproxy_restart_keeps_the_switched_state(play, env, images):
    assert deploy(play, env, images["1.0.0"]).rc == 0
    assert deploy(play, env, images["2.0.0"]).rc == 0
    router = {"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"}}
    assert play([dict(router, vars=dict(env["router_vars"], router_state="stopped"))]).rc == 0
    assert play([dict(router, vars=env["router_vars"])]).rc == 0
    assert served(env) == {"2.0.0"}
    releases = info(play, env)
    assert releases["2.0.0"]["live"] and not releases["1.0.0"]["live"]
