"""An engine restart (a package upgrade, a reboot) keeps live traffic on the live release and the
warm release warm, with no Ansible run: containers keep the host ports they were created with,
so the router's addresses stay true. A router that does point at the wrong containers is
reported, refused by blue-green, and re-pointed by a rollback that names its target."""
from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from engine import PrivateEngine, restart_under_load
from net import get
from test_blue_green import bg_vars, env  # noqa: F401  # pylint: disable=unused-import
from test_docker_switch import images  # noqa: F401  # pylint: disable=unused-import


@pytest.fixture
def engine():
    private = PrivateEngine()
    private.start()
    yield private
    private.destroy()


def deploy(play, env, image, engine, **extra):
    return play([{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
                  "vars": bg_vars(env, image, blue_green_docker_host=engine.url, blue_green_replicas=2, **extra)}])


def rollback(play, env, engine, **extra):
    values = {"rollback_app": env["app"], "rollback_router_state_dir": env["state_dir"],
              "rollback_router_bind": "127.0.0.1:%d" % env["port"], "rollback_lock_dir": env["lock_dir"],
              "rollback_docker_host": engine.url, "rollback_watch_seconds": 0}
    values.update(extra)
    return play([{"name": "rb", "ansible.builtin.include_role": {"name": "immutable.deploy.rollback"},
                  "vars": values}])


def info(play, env, engine):
    run = play([{"name": "info", "immutable.deploy.docker_release_info": {
        "app": env["app"], "router_socket": os.path.join(env["state_dir"], "haproxy.sock"),
        "router_backend": env["app"], "docker_host": engine.url}}])
    assert run.rc == 0, run.stdout[-2000:]
    return run.result("info")


def servers(play, env):
    run = play([{"name": "servers", "immutable.deploy.haproxy_backend": {
        "socket": os.path.join(env["state_dir"], "haproxy.sock"), "backend": env["app"]}}])
    assert run.rc == 0, run.stdout[-2000:]
    return {s["name"]: s for s in run.result("servers")["servers"]}


def answers(env, count=300):
    return Counter(get(env["port"])[1] for dummy in range(count))


def test_engine_restart_keeps_live_and_warm_and_rollback_still_means_what_it_says(play, env, images, engine):
    for image in (images["1.0.0"], images["2.0.0"]):
        run = deploy(play, env, image, engine)
        assert run.rc == 0, run.stdout[-4000:]
    back = rollback(play, env, engine)
    assert back.rc == 0, back.stdout[-4000:]
    before = info(play, env, engine)
    live = {r["id"]: r["live"] for r in before["releases"]}
    assert live == {"1.0.0": True, "2.0.0": False} and before["router_mismatches"] == []
    assert all(r["restart_safe"] for r in before["releases"])

    figures = restart_under_load(engine, env["port"], "1.0.0")
    print("engine restart figures: " + json.dumps(figures))
    # no answer ever came from the warm release: not during the restart, not after it
    assert set(figures["answers"]) == {"1.0.0"} and figures["live_again_after_engine_start_s"] is not None, figures
    assert answers(env) == {"1.0.0": 300}

    after = info(play, env, engine)
    assert {r["id"]: (r["live"], r["state"], r["slot"]) for r in after["releases"]} == \
        {r["id"]: (r["live"], r["state"], r["slot"]) for r in before["releases"]}
    assert after["router_mismatches"] == []
    warm = after["releases"][[r["id"] for r in after["releases"]].index("2.0.0")]
    deadline = time.monotonic() + 20  # health checks bring the warm servers back UP, in drain
    while time.monotonic() < deadline:
        warm_servers = [servers(play, env)["%s%d" % (warm["slot"], n)] for n in (1, 2)]
        if all(s["op_state"] == "running" for s in warm_servers):
            break
        time.sleep(0.5)
    assert [(s["state"], s["op_state"]) for s in warm_servers] == [("drain", "running")] * 2, warm_servers

    again = rollback(play, env, engine)  # warm: nothing started, one router write
    assert again.rc == 0, again.stdout[-4000:]
    switch = [r for r in again.rows if r["action"] == "immutable.deploy.docker_switch"][0]["result"]
    assert switch["target"]["id"] == "2.0.0" and switch["started"] is False
    assert answers(env, 100) == {"2.0.0": 100}


def test_a_router_pointing_at_other_containers_is_reported_refused_and_repaired(play, env, images, engine):
    for image in (images["1.0.0"], images["2.0.0"]):
        run = deploy(play, env, image, engine)
        assert run.rc == 0, run.stdout[-4000:]
    releases = {r["id"]: r for r in info(play, env, engine)["releases"]}
    live, warm = releases["2.0.0"], releases["1.0.0"]
    # What an engine restart did to containers published on ephemeral ports: the live slot's
    # second server now points at a container of the warm release.
    swap = play([{"name": "swap", "immutable.deploy.haproxy_backend": {
        "socket": os.path.join(env["state_dir"], "haproxy.sock"), "backend": env["app"],
        "servers": [{"name": "%s2" % live["slot"], "address": "127.0.0.1", "port": warm["endpoints"][0]["port"]}]}}])
    assert swap.rc == 0, swap.stdout[-2000:]
    assert set(answers(env, 60)) == {"1.0.0", "2.0.0"}  # the split the issue saw

    wrong = info(play, env, engine)["router_mismatches"]
    assert [(m["server"], m["found"]["release"], m["expected"]["release"]) for m in wrong] == \
        [("%s2" % live["slot"], "1.0.0", "2.0.0")]

    refused = deploy(play, env, images["1.0.0"], engine)
    assert refused.rc != 0 and "the router points at containers its slots do not hold" in refused.stdout
    assert "%s2 -> 127.0.0.1:%d" % (live["slot"], warm["endpoints"][0]["port"]) in refused.stdout
    guess = rollback(play, env, engine)  # which release is previous cannot be known: named, nothing written
    assert guess.rc != 0 and "Name the release that must be live (option 'to')" in guess.stdout

    repaired = rollback(play, env, engine, rollback_to="2.0.0")
    assert repaired.rc == 0, repaired.stdout[-3000:]
    assert answers(env, 100) == {"2.0.0": 100}
    assert info(play, env, engine)["router_mismatches"] == []
    assert rollback(play, env, engine).rc == 0 and answers(env, 50) == {"1.0.0": 50}
