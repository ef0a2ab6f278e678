"""Canary on the real engine behind a real HAProxy: analysis from HAProxy's own stats."""
from __future__ import annotations

import http.client
import os

import pytest

from conftest import REGISTRY, run_playbook
from images import remove_repos, sample_context
# Unpaced load: each analysis step needs its minimum request count at a 10 % weight.
from net import FullLoad as Load, get
from test_blue_green import deploy, env, info, served  # noqa: F401 pylint: disable=unused-import

FLAKY = "/cgi-bin/flaky"
GOOD_CGI = '#!/bin/sh\nprintf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s\\n" "$(cat /www/version)"\n'
# busybox httpd passes a CGI answer starting with "HTTP/" through as is: half the requests get a 500.
BAD_CGI = ('#!/bin/sh\nif [ $((RANDOM % 2)) -eq 0 ]; then printf "HTTP/1.0 500 Internal Server Error\\r\\n'
           'Content-Type: text/plain\\r\\n\\r\\nboom\\n"; else printf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain'
           '\\r\\n\\r\\n%s\\n" "$(cat /www/version)"; fi\n')


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("canary-images")
    repo = "%s/it-canary-%s/app" % (REGISTRY, os.urandom(4).hex())
    tasks = []
    for version in ("1.0.0", "2.0.0", "6.6.6"):
        context = sample_context(tmp / version, version)
        script = os.path.join(context, "www", "cgi-bin", "flaky")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(BAD_CGI if version == "6.6.6" else GOOD_CGI)
        os.chmod(script, 0o755)
        tasks.append({"name": version, "immutable.deploy.image_build": {"name": repo, "version": version,
                                                                        "path": context, "push": True}})
    run = run_playbook(tasks, tmp)
    assert run.rc == 0, run.stdout[-3000:]
    yield {v: "%s:%s@%s" % (repo, v, run.result(v)["image"]["digest"]) for v in ("1.0.0", "2.0.0", "6.6.6")}
    remove_repos([repo])


def canary(play, env, action="start", image=None, **extra):
    values = {"canary_app": env["app"], "canary_action": action,
              "canary_router_state_dir": env["state_dir"],
              "canary_router_preview_bind": "127.0.0.1:%d" % env["preview"],
              "canary_lock_dir": env["lock_dir"],
              "canary_healthcheck": {"type": "http", "path": "/health", "interval": 1},
              "canary_analysis": {"interval": 2, "count": 1, "metrics": [
                  {"name": "error-ratio", "provider": "haproxy", "query": "error_ratio", "min_requests": 10,
                   "success": "result <= 0.01"}]}}
    if image:
        values["canary_image"] = image
    values.update(extra)
    return play([{"name": "canary", "ansible.builtin.include_role": {"name": "immutable.deploy.canary"},
                  "vars": values},
                 {"name": "result", "ansible.builtin.debug": {"var": "canary_result"}}])


def outcome(run):
    return run.result("result")["canary_result"]


def get_with(port, headers):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/version", headers=headers)
        return conn.getresponse().read().decode().strip()
    finally:
        conn.close()


@pytest.fixture
def stable(play, env, images):
    run = deploy(play, env, images["1.0.0"])
    assert run.rc == 0, run.stdout[-3000:]
    return env


def test_healthy_canary_promotes_through_every_step(play, stable, images):
    with Load(stable["port"], path=FLAKY) as load:
        run = canary(play, stable, image=images["2.0.0"],
                     canary_steps=[{"weight": 10}, {"weight": 50}, {"weight": 100}])
    assert run.rc == 0, run.stdout[-4000:]
    assert outcome(run)["outcome"] == "promoted"
    analyses = [r for r in run.rows if r["action"] == "immutable.deploy.release_analysis" and r["status"] == "ok"]
    assert [a["result"]["verdict"] for a in analyses] == ["pass", "pass", "pass"]
    assert load.errors == {} and set(load.versions) == {"1.0.0", "2.0.0"}, load.snapshot()
    assert served(stable) == {"2.0.0"}
    releases = info(play, stable)
    assert releases["2.0.0"]["live"] and releases["1.0.0"]["state"] == "running" and not releases["1.0.0"]["live"]


class SentLoad(Load):
    """Also notes when the request behind each answer was sent (monotonic, comparable with the module's clock)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_canary_sent = 0.0

    def _answer(self, sent: float, now: float, status: int, body: str) -> None:
        super()._answer(sent, now, status, body)
        if body != "1.0.0":  # the bad canary's answers: its version or a 500
            self.last_canary_sent = max(self.last_canary_sent, sent)


ABORT_TASKS = ("Give stable all traffic back and take the canary out (weight 0 first, then drained)",
               "Take the canary off the preview frontend")


@pytest.mark.parametrize("from_analysis", [True, False], ids=["abort-by-analysis", "abort-by-role"])
def test_bad_canary_aborts_at_the_first_step_and_stable_is_restored(play, stable, images, from_analysis):
    with SentLoad(stable["port"], path=FLAKY) as load:
        run = canary(play, stable, image=images["6.6.6"], canary_steps=[{"weight": 25}, {"weight": 100}],
                     canary_abort_from_analysis=from_analysis)
        after_abort = load.snapshot()
    assert run.rc != 0
    assert "aborted, 1.0.0 serves all traffic" in run.stdout and "analysis failed at step 0 (25%)" in run.stdout
    analyses = [r for r in run.rows if r["action"] == "immutable.deploy.release_analysis"]
    assert len(analyses) == 1 and analyses[0]["result"]["verdict"] == "fail"
    verdict = analyses[0]["result"]
    safety_net = {row["task"].split(" : ")[-1]: row for row in run.rows if row["action"] == "immutable.deploy.haproxy_backend"
                  and row["task"].split(" : ")[-1] in ABORT_TASKS}
    assert set(safety_net) == set(ABORT_TASKS) and all(r["status"] == "ok" for r in safety_net.values())
    if from_analysis:
        # The analysis process decided and wrote the abort itself, before it returned ...
        abort = verdict["abort"]
        assert verdict["changed"] is True and abort["written"] is True and abort["reason"] == "verdict fail", abort
        assert "error" not in abort and isinstance(abort["pid"], int)
        assert abort["decided_at"] == verdict["decided_at"] and abort["written_at"] >= abort["decided_at"]
        assert [b["backend"] for b in abort["backends"]] == [stable["app"], stable["app"] + "_preview"]
        slot = {srv["name"]: srv["name"].rstrip("0123456789") for srv in abort["backends"][0]["servers"]}
        stable_slot = {slot[srv["name"]] for srv in abort["backends"][0]["servers"] if srv["weight"]}
        assert len(stable_slot) == 1 and len(set(slot.values())) == 2, abort  # stable's slot and the canary's
        for srv in abort["backends"][0]["servers"]:
            if slot[srv["name"]] not in stable_slot:
                assert (srv["weight"], srv["state"]) == (0, "maint"), srv
            elif srv["weight"]:
                assert (srv["weight"], srv["state"]) == (100, "ready"), srv
        assert all((srv["weight"], srv["state"]) == (0, "maint") for srv in abort["backends"][1]["servers"])
        # ... so the role's abort, the safety net, found nothing left to change,
        assert not any(r["result"]["changed"] for r in safety_net.values()), safety_net
        # and no request sent once the write was done reached the canary.
        assert load.last_canary_sent < abort["written_at"]
        assert "stable got all traffic back" in run.stdout and "(written by the analysis)" in run.stdout
    else:
        assert "abort" not in verdict and verdict["changed"] is False
        assert safety_net[ABORT_TASKS[0]]["result"]["changed"] is True
    assert set(info(play, stable)) == {"1.0.0"}
    assert served(stable) == {"1.0.0"}
    assert {get_with(stable["port"], {"X-Canary": "always"}) for dummy in range(5)} == {"1.0.0"}
    # Exposure: only the canary's share of requests failed, never stable's.
    assert after_abort["errors"].get("status 500", 0) > 0
    assert set(after_abort["errors"]) == {"status 500"}, after_abort


def test_manual_gate_then_promote_twice(play, stable, images):
    with Load(stable["port"]) as load:  # the analysis after the gate needs traffic to measure
        paused = canary(play, stable, image=images["2.0.0"],
                        canary_steps=[{"weight": 20, "pause": "manual"}, {"weight": 100}])
        assert paused.rc == 0, paused.stdout[-3000:]
        assert outcome(paused)["outcome"] == "paused" and outcome(paused)["weight"] == 20
        releases = info(play, stable)
        assert releases["2.0.0"]["weight"] > 0 and releases["1.0.0"]["weight"] > releases["2.0.0"]["weight"]
        again = canary(play, stable, image=images["2.0.0"])
        assert again.rc != 0 and "is in progress" in again.stdout
        promoted = canary(play, stable, action="promote")
        assert promoted.rc == 0, promoted.stdout[-3000:]
        assert outcome(promoted)["outcome"] == "promoted" and served(stable) == {"2.0.0"}
        twice = canary(play, stable, action="promote")
        assert twice.rc == 0 and "nothing to do" in twice.stdout and served(stable) == {"2.0.0"}
    assert load.errors == {} and set(load.versions) == {"1.0.0", "2.0.0"}, load.snapshot()


def test_dark_launch_header_routing_then_abort_twice(play, stable, images):
    paused = canary(play, stable, image=images["2.0.0"], canary_steps=[{"weight": 0, "pause": "manual"}, {"weight": 100}])
    assert paused.rc == 0, paused.stdout[-3000:]
    assert served(stable) == {"1.0.0"}  # weight 0: plain requests never reach the canary
    assert {get_with(stable["port"], {"X-Canary": "always"}) for dummy in range(10)} == {"2.0.0"}
    assert {get_with(stable["port"], {"Cookie": "canary=always"}) for dummy in range(10)} == {"2.0.0"}
    aborted = canary(play, stable, action="abort")
    assert aborted.rc == 0, aborted.stdout[-3000:]
    assert outcome(aborted)["outcome"] == "aborted"
    assert set(info(play, stable)) == {"1.0.0"}
    assert {get_with(stable["port"], {"X-Canary": "always"}) for dummy in range(5)} == {"1.0.0"}
    twice = canary(play, stable, action="abort")
    assert twice.rc == 0 and "nothing to do" in twice.stdout


@pytest.mark.parametrize("steps,fragment", [
    ([{"weight": 50}, {"weight": 20}], "canary_steps[1].weight: 20 after 50; weights must increase"),
    ([{"weight": 120}], "canary_steps[0].weight: 120; accepted: an integer from 0 to 100"),
])
def test_bad_steps_fail_clearly_and_change_nothing(play, stable, images, steps, fragment):
    run = canary(play, stable, image=images["2.0.0"], canary_steps=steps)
    assert run.rc != 0 and fragment in run.stdout, run.stdout[-2000:]
    assert set(info(play, stable)) == {"1.0.0"} and get(stable["port"])[1] == "1.0.0"
