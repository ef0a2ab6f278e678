"""Pure parts of k8s/probe.py (the probe command and how an answer is judged), k8s/warm.py
(scale_down_delay deadlines) and k8s/canary.py (the record in the cluster)."""
from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import canary as kc
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import probe as kp
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import warm
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import format_time

WGET_500 = "  HTTP/1.1 500 Internal Server Error\nwget: server returned error: HTTP/1.1 500 Internal Server Error\n"


def test_default_command_quotes_the_url_and_user_commands_get_placeholders():
    spec = kp.normalize(None, "/a b")
    assert kp.command(spec, 8080) == ["sh", "-c", "exec timeout 5 wget -q -S -O- 'http://127.0.0.1:8080/a b'"]
    spec = kp.normalize({"command": ["/bin/check", "{url}", "--t={timeout}", "{port}{path}"], "timeout": 2})
    assert kp.command(spec, 9000) == ["/bin/check", "http://127.0.0.1:9000/health", "--t=2", "9000/health"]


@pytest.mark.parametrize("code,out,err,ok,outcome", [
    (0, "ok\n", "  HTTP/1.1 200 OK\n", True, "status 200"),
    (1, "", WGET_500, False, "status 500"),
    (0, "fine", "", True, "exit 0"),
    (1, "", "wget: can't connect to remote host (127.0.0.1): Connection refused\n", False,
     "exit 1: wget: can't connect to remote host (127.0.0.1): Connection refused"),
    (None, "", "", False, "no answer within 5s"),
])
def test_an_answer_is_judged_by_its_status_line_else_its_exit_code(code, out, err, ok, outcome):
    answer = kp.judge(code, out, err, kp.normalize(None))
    assert (answer["ok"], answer["outcome"]) == (ok, outcome)


def test_body_and_expected_status():
    spec = kp.normalize({"expect_status": [200, 204], "body_contains": "version"})
    assert kp.judge(0, "ok", "  HTTP/1.1 200 OK", spec)["outcome"] == "status 200 without 'version' in the body"
    assert kp.judge(0, "", "  HTTP/1.1 204 No Content", kp.normalize({"expect_status": [204]}))["ok"]


@pytest.mark.parametrize("probe,option", [
    ({"path": "health"}, "probe.path"), ({"timeout": 0}, "probe.timeout"), ({"port": 70000}, "probe.port"),
    ({"expect_status": [999]}, "probe.expect_status"), ({"command": []}, "probe.command"),
    ({"url": "ftp://x"}, "probe.url"), ({"pods": "none"}, "probe.pods"),
])
def test_probe_options_are_checked_before_anything_runs(probe, option):
    with pytest.raises(DeployError) as err:
        kp.normalize(probe)
    assert err.value.details["option"] == option


def dep(release, replicas=2, deadline=None, record=None):
    ann = {kn.ANN_CREATED: "2024-01-0%sT00:00:00Z" % release[0]}
    if deadline is not None:
        ann[kn.ANN_SCALE_DOWN_AT] = format_time(deadline)
    if record is not None:
        ann[kn.ANN_CANARY] = json.dumps(record)
    return {"metadata": {"name": "web-" + release.replace(".", "-"), "labels": {kn.LABEL_RELEASE: release},
                         "annotations": ann}, "spec": {"replicas": replicas}}


class Patches:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def patch(self, kind, name, body, dry_run=False, what=None, merge=False):
        if self.fail:
            raise DeployError("test failed", status=422)
        self.calls.append((name, body))
        return {}


def test_only_due_releases_the_service_does_not_select_are_scaled_down():
    now = 1_000_000.0
    deps = [dep("1.0.0", deadline=now - 1), dep("2.0.0", deadline=now + 60), dep("3.0.0"),
            dep("4.0.0", deadline=now - 5), dep("5.0.0", replicas=0, deadline=now - 5)]
    client = Patches()
    done = warm.expire(client, deps, ["4.0.0"], now, False)
    assert [d["release"] for d in done] == ["1.0.0"]
    ops = client.calls[0][1]
    assert ops[0]["op"] == "test" and ops[1] == {"op": "replace", "path": "/spec/replicas", "value": 0}
    assert warm.expire(Patches(), deps, None, now, False) == []  # a canary in progress: nothing
    assert warm.expire(Patches(fail=True), deps, [], now, False) == []  # a rollback removed the deadline meanwhile


def test_the_canary_in_progress_is_the_newest_with_a_record():
    deps = [dep("1.0.0"), dep("2.0.0", record={"stable": "1.0.0", "state": "paused"}),
            dep("3.0.0", record={"stable": "1.0.0", "state": "running"})]
    found, rec = kc.in_progress(deps)
    assert kc.release_of(found) == "3.0.0" and rec["state"] == "running"
    assert kc.in_progress([dep("1.0.0")]) is None
    assert kn.canary_record("{not json") == {"state": "unreadable", "raw": "{not json"}


def test_canary_options_are_checked():
    base = {"app": "web", "action": "step", "release": "2.0.0", "stable_release": "1.0.0", "weight": 30,
            "total_replicas": 4, "scale_down_delay": 0, "step": 0}
    with pytest.raises(DeployError, match="'weight'"):
        kc.validate(base)
    with pytest.raises(DeployError, match="scale_down_delay"):
        kc.validate(dict(base, weight=25, scale_down_delay=-1))
    kc.validate(dict(base, weight=25))
