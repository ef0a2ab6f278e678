"""docker_switch on the real engine behind a real HAProxy: a stopped target is started before the
switch, check mode predicts without changing, a second run changes nothing, bad input changes nothing."""
from __future__ import annotations

import os

import pytest

from conftest import REGISTRY
from images import remove_repos, sample_context
from net import Load
from test_blue_green import deploy, env, info, served  # noqa: F401  # pylint: disable=unused-import


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from conftest import run_playbook
    tmp = tmp_path_factory.mktemp("switch-images")
    repo = "%s/it-switch-%s/app" % (REGISTRY, os.urandom(4).hex())
    tasks = [{"name": v, "immutable.deploy.image_build": {"name": repo, "version": v, "path": sample_context(tmp / v, v),
                                                          "push": True}} for v in ("1.0.0", "2.0.0")]
    run = run_playbook(tasks, tmp)
    assert run.rc == 0, run.stdout[-3000:]
    yield {v: "%s:%s@%s" % (repo, v, run.result(v)["image"]["digest"]) for v in ("1.0.0", "2.0.0")}
    remove_repos([repo])


def switch(play, env, check=False, **extra):
    args = {"app": env["app"], "router_socket": os.path.join(env["state_dir"], "haproxy.sock"),
            "router_state_file": os.path.join(env["state_dir"], "server-state"), **extra}
    return play([{"name": "switch", "immutable.deploy.docker_switch": args}], check=check, diff=True)


def test_stopped_target_is_started_then_switched_and_a_rerun_changes_nothing(play, env, images):
    assert deploy(play, env, images["1.0.0"]).rc == 0
    assert deploy(play, env, images["2.0.0"]).rc == 0
    stop = play([{"name": "stop", "immutable.deploy.docker_release": {"app": env["app"], "release": "1.0.0",
                                                                      "state": "stopped"}}])
    assert stop.rc == 0, stop.stdout[-2000:]
    with Load(env["port"]) as load:
        checked = switch(play, env, check=True)
        assert checked.rc == 0, checked.stdout[-2000:]
        result = checked.result("switch")
        assert result["changed"] and result["started"] and result["target"]["id"] == "1.0.0"
        assert result["diff"] == {"before": {"live": "2.0.0"}, "after": {"live": "1.0.0"}}
        assert info(play, env)["1.0.0"]["state"] == "stopped" and served(env) == {"2.0.0"}

        refused = switch(play, env, start=False)
        assert refused.rc != 0 and "is stopped, not running; set start=true" in refused.stdout
        assert info(play, env)["1.0.0"]["state"] == "stopped" and served(env) == {"2.0.0"}

        done = switch(play, env)
        assert done.rc == 0, done.stdout[-3000:]
        result = done.result("switch")
        assert result["changed"] and result["started"] and result["previous"]["id"] == "2.0.0"
        assert {c["name"] for c in result["router"]["changes"]} >= {"blue1", "green1"}
        assert served(env) == {"1.0.0"}
        releases = info(play, env)
        assert releases["1.0.0"]["live"] and releases["1.0.0"]["state"] == "running"
        assert releases["2.0.0"]["state"] == "running" and not releases["2.0.0"]["live"]  # left warm

        again = switch(play, env, to="1.0.0")
        assert again.rc == 0 and again.result("switch")["changed"] is False
        assert again.result("switch")["router"] == {}
        back = switch(play, env, to=images["2.0.0"].rsplit("@", 1)[1])  # by digest, warm: one router write
        assert back.rc == 0 and back.result("switch")["started"] is False and served(env) == {"2.0.0"}
    assert load.errors == {}, load.snapshot()
    assert set(load.versions) == {"1.0.0", "2.0.0"}


def test_bad_input_fails_clearly_and_changes_nothing(play, env, images):
    assert deploy(play, env, images["1.0.0"]).rc == 0
    before = info(play, env)
    cases = [
        ({}, "no previous release to roll back to (releases here: 1.0.0)"),
        ({"to": "9.9.9"}, "no release '9.9.9' on this host; releases here: 1.0.0"),
        ({"to": "bad id!"}, "Invalid value for option 'to': 'bad id!'"),
        ({"to": "1.0.0", "weight": 300}, "Invalid value for option 'weight': 300"),
        ({"router_kind": "nginx"}, "router_kind is nginx but all of the following are missing: router_upstream_file"),
    ]
    for extra, fragment in cases:
        run = switch(play, env, **extra)
        assert run.rc != 0 and fragment in run.stdout, (extra, run.stdout[-2000:])
    assert info(play, env) == before and served(env) == {"1.0.0"}
