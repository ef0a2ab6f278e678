"""A failed blue-green deploy never loses the way back (issue 15): a mistyped image and a release that
never gets healthy leave the warm release in place and warm, on a three-slot router and on a router
set up with two slots before the third existed."""
from __future__ import annotations

import os
from typing import Dict, List

from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import Runtime
from net import Load
from test_blue_green import deploy, env, images, info, rollback, served  # noqa: F401 pylint: disable=unused-import


def servers(env, slot: str) -> List[Dict[str, object]]:
    runtime = Runtime(os.path.join(env["state_dir"], "haproxy.sock"))
    return [s for s in runtime.servers(env["app"]) if s["name"].rstrip("0123456789") == slot]


def assert_warm(env, release: Dict[str, object]) -> None:
    """Running, and its slot's servers in drain at its endpoints and UP: a rollback is one router write."""
    assert release["state"] == "running" and not release["live"], release
    slot = servers(env, str(release["slot"]))
    at = [s for s in slot if s["state"] != "maint"]
    assert {(s["address"], s["port"]) for s in at} == {(e["address"], e["port"]) for e in release["endpoints"]}, slot
    assert all(s["state"] == "drain" and s["op_state"] == "running" for s in at), at


def assert_live(env, release: Dict[str, object], weight: int = 100) -> None:
    assert release["live"] and release["weight"] == weight, release
    assert all(s["state"] == "ready" and s["weight"] == weight
               for s in servers(env, str(release["slot"])) if s["state"] != "maint")


def failure(run) -> str:
    return " ".join(r["result"].get("msg", "") for r in run.rows if r["status"] == "failed")


def started_nothing(run) -> bool:
    """No container was created, removed or started and no router write happened."""
    return not [r for r in run.rows if r["status"] == "ok" and r["result"].get("changed")
                and r["action"] != "immutable.deploy.deploy_lock"]


def test_failed_deploys_keep_the_warm_release_warm_and_a_rollback_is_one_write(play, env, images):
    assert deploy(play, env, images["1.0.0"]).rc == 0
    assert deploy(play, env, images["2.0.0"]).rc == 0
    before = info(play, env)
    assert_live(env, before["2.0.0"])
    assert_warm(env, before["1.0.0"])
    with Load(env["port"]) as load:
        cases = [
            (images["repo"] + ":latest", ["Option 'image'", "moving tag"]),
            (images["repo"] + ":7.7.7", ["Option 'image'", ":7.7.7 was found neither in the local engine nor in registry"]),
            (images["9.9.9"], ["Release '9.9.9' of app %r did not become healthy" % env["app"]]),
        ]
        for image, fragments in cases:
            run = deploy(play, env, image, blue_green_wait_timeout=15)
            msg = failure(run)
            assert run.rc != 0, run.stdout[-3000:]
            assert "aborted before the switch" in msg and "2.0.0 still serves all traffic" in msg, msg
            assert all(f in msg for f in fragments), (fragments, msg)
            # the new release went to the third slot: nothing of live or warm was touched
            assert "Make room" not in " ".join(r["task"] for r in run.rows if r["status"] == "ok"), msg
            after = info(play, env)
            assert set(after) == {"1.0.0", "2.0.0"}, after
            assert_live(env, after["2.0.0"])
            assert_warm(env, after["1.0.0"])
            assert after["1.0.0"]["endpoints"] == before["1.0.0"]["endpoints"]
            assert served(env) == {"2.0.0"}
        back = rollback(play, env)
    assert back.rc == 0, back.stdout[-3000:]
    switched = next(r["result"] for r in back.rows if r["action"] == "immutable.deploy.docker_switch")
    assert switched["started"] is False and switched["target"]["id"] == "1.0.0"
    assert served(env) == {"1.0.0"}
    assert load.errors == {} and set(load.versions) >= {"2.0.0"}, load.snapshot()


def test_a_two_slot_router_still_works_refuses_bad_input_before_any_change_and_upgrades(play, env, images):
    router = {"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"}}
    legacy = play([dict(router, vars=dict(env["router_vars"], router_slots=["blue", "green"]))])
    assert legacy.rc == 0, legacy.stdout[-3000:]
    assert deploy(play, env, images["1.0.0"]).rc == 0
    assert deploy(play, env, images["2.0.0"]).rc == 0
    assert_warm(env, info(play, env)["1.0.0"])

    # Only blue and green: 1.0.0 would have to make room, so the image is checked first.
    bad = deploy(play, env, images["repo"] + ":latest")
    msg = failure(bad)
    assert bad.rc != 0 and "refused before any change" in msg and "moving tag" in msg, msg
    assert "2.0.0 still serves all traffic; nothing was removed" in msg, msg
    assert "The warm release 1.0.0 makes room in slot blue" in bad.stdout and "add slot amber" in bad.stdout
    assert started_nothing(bad), [r["task"] for r in bad.rows if r["result"].get("changed")]
    after = info(play, env)
    assert set(after) == {"1.0.0", "2.0.0"}
    assert_warm(env, after["1.0.0"])
    assert_live(env, after["2.0.0"])

    # A good image by tag: the check resolves it, the start runs that digest, the fallback warns.
    third = deploy(play, env, images["repo"] + ":3.0.0")
    assert third.rc == 0, third.stdout[-4000:]
    checked = next(r for r in third.rows if r["task"].startswith("immutable.deploy.blue_green : Check every option"))
    digest = images["3.0.0"].rsplit("@", 1)[1]
    assert checked["result"]["release"]["image"] == images["repo"] + "@" + digest
    releases = info(play, env)
    assert set(releases) == {"2.0.0", "3.0.0"} and releases["3.0.0"]["slot"] == "blue"
    assert releases["3.0.0"]["digest"] == digest and served(env) == {"3.0.0"}

    # The router role applied again adds amber (a seamless reload, live state kept) ...
    upgraded = play([dict(router, vars=env["router_vars"])])
    assert upgraded.rc == 0, upgraded.stdout[-3000:]
    assert served(env) == {"3.0.0"}
    assert_warm(env, info(play, env)["2.0.0"])
    # ... and a never-healthy release then costs nothing: it went to amber.
    unhealthy = deploy(play, env, images["9.9.9"], blue_green_wait_timeout=15)
    assert unhealthy.rc != 0 and "did not become healthy" in failure(unhealthy)
    assert "makes room" not in unhealthy.stdout
    after = info(play, env)
    assert set(after) == {"2.0.0", "3.0.0"}
    assert_warm(env, after["2.0.0"])
    assert_live(env, after["3.0.0"])
