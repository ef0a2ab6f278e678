from __future__ import annotations

import base64
import hashlib
import json

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import client as kclient
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kc
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import release as kr
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import rollout as kw
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import spec as ks
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

DIGEST = "sha256:" + "b" * 64
IMAGE = "registry.example.com/shop/web@" + DIGEST
SECRET = "hunter2-very-secret"


def params(**overrides):
    p = {"app": "web", "release": "1.0.0", "slot": "blue", "image": IMAGE, "replicas": 1, "container_port": 8080,
         "env": {"A": "1"}, "secret_env": {"TOKEN": SECRET}, "config_files": {}, "config_mount_path": "/etc/app",
         "readiness": None, "liveness": None, "resources": None, "labels": {}, "image_pull_policy": "IfNotPresent",
         "progress_deadline_seconds": 120, "wait": True, "wait_timeout": 120, "state": "present",
         "moving_tags": None, "namespace": "default", "request_timeout": 30, "kubeconfig": None, "context": None}
    p.update(overrides)
    return p


def spec_of(**overrides):
    return ks.normalize_spec(params(**overrides), DIGEST)


def body_of(spec=None, replicas=2):
    spec = spec or spec_of()
    configs = ks.config_objects("web", "1.0.0", spec, {"TOKEN": SECRET})
    return ks.deployment_body("web", "1.0.0", spec, IMAGE, replicas, "2026-01-01T00:00:00.000000Z", configs, 120)


# -- naming and validation ------------------------------------------------------------------
@pytest.mark.parametrize("rid,name", [("1.0.0", "web-1-0-0"), ("1.4.2_RC1", "web-1-4-2-rc1"), ("v2", "web-v2")])
def test_object_names(rid, name):
    assert kc.object_name("web", ks.validate_release_id(rid)) == name


@pytest.mark.parametrize("rid", ["1.0.", "1.0_", "1-", "", "a/b", "1.0+x"])
def test_release_ids_must_be_label_values(rid):
    with pytest.raises(DeployError, match="'release'"):
        ks.validate_release_id(rid)


def test_content_names_follow_the_content():
    a = ks.content_name("web-1-0-0", "env", {"A": "1", "B": "2"})
    assert a == ks.content_name("web-1-0-0", "env", {"B": "2", "A": "1"})  # key order does not matter
    assert a != ks.content_name("web-1-0-0", "env", {"A": "1", "B": "3"})
    # the first 10 hex digits of the sha256 of the canonical JSON, computed here independently
    canonical = json.dumps({"A": "1", "B": "2"}, sort_keys=True, separators=(",", ":")).encode()
    assert a == "web-1-0-0-env-" + hashlib.sha256(canonical).hexdigest()[:10]


def test_config_objects_are_immutable_labelled_and_named_by_hash():
    spec = spec_of(config_files={"app.yaml": "a: 1\n"})
    objs = {o["kind"]: o for o in ks.config_objects("web", "1.0.0", spec, {"TOKEN": SECRET})}
    assert sorted(objs) == ["env", "files", "secret"]
    for kind, obj in objs.items():
        body = obj["body"]
        assert body["immutable"] is True and obj["name"] == body["metadata"]["name"]
        assert obj["name"].startswith("web-1-0-0-%s-" % kind)
        assert body["metadata"]["labels"] == {kc.LABEL_APP: "web", kc.LABEL_RELEASE: "1.0.0",
                                              kc.LABEL_MANAGED: kc.MANAGED_BY}
    assert objs["env"]["body"]["kind"] == "ConfigMap" and objs["env"]["body"]["data"] == {"A": "1"}
    assert objs["files"]["body"]["data"] == {"app.yaml": "a: 1\n"}
    assert objs["secret"]["body"]["kind"] == "Secret"
    assert base64.b64decode(objs["secret"]["body"]["data"]["TOKEN"]).decode() == SECRET
    assert objs["env"]["name"] == ks.content_name("web-1-0-0", "env", {"A": "1"})


def test_no_config_objects_without_config():
    assert ks.config_objects("web", "1.0.0", spec_of(env={}, secret_env={}), {}) == []


# -- the spec ----------------------------------------------------------------------------------
def test_spec_defaults_and_normalization():
    spec = spec_of(env={"B": 2, "A": True})
    assert spec["env"] == {"A": "true", "B": "2"}
    assert spec["readiness"] == {"type": "http", "path": "/health", "port": 8080, "period_seconds": 2,
                                 "failure_threshold": 3, "initial_delay_seconds": 0}
    assert spec["liveness"] is None and spec["config_files"] is None and spec["resources"] == {}
    assert "replicas" not in spec and list(spec) == list(ks.SPEC_FIELDS)
    assert model.spec_hash(spec) == model.spec_hash(spec_of(env={"A": "true", "B": "2"}))
    assert spec_of(readiness={"type": "none"})["readiness"] is None


def test_replicas_are_not_content():
    assert model.spec_hash(ks.normalize_spec(params(replicas=1), DIGEST)) == \
        model.spec_hash(ks.normalize_spec(params(replicas=5), DIGEST))


def test_secret_values_never_in_spec_annotations_or_deployment():
    spec = spec_of()
    body = body_of(spec)
    assert SECRET not in json.dumps(spec) and SECRET not in json.dumps(body)
    assert spec["secret_env"].startswith("sha256:")
    assert model.spec_hash(spec) != model.spec_hash(spec_of(secret_env={"TOKEN": "other"}))


@pytest.mark.parametrize("change,fields", [
    ({"slot": "green"}, ["slot"]),
    ({"env": {"A": "2"}, "image_pull_policy": "Always"}, ["env", "image_pull_policy"]),
    ({"secret_env": {"TOKEN": "x"}}, ["secret_env"]),
    ({"config_files": {"a": "1"}}, ["config_files"]),
    ({"config_files": {"a": "1"}, "config_mount_path": "/srv"}, ["config_files"]),
    ({"readiness": {"path": "/ready"}}, ["readiness"]),
    ({"resources": {"limits": {"memory": "64Mi"}}, "labels": {"team": "shop"}}, ["resources", "labels"]),
    ({"replicas": 4}, []),
])
def test_differing_fields_with_the_k8s_field_list(change, fields):
    base = dict(config_files={"a": "1"}) if "config_mount_path" in change else {}
    recorded = model.spec_fields(spec_of(**base), ks.SPEC_FIELDS)
    assert model.differing_fields(recorded, spec_of(**change), ks.SPEC_FIELDS) == fields


def test_unknown_fields_annotation_names_every_field():
    assert model.differing_fields(None, spec_of(), ks.SPEC_FIELDS) == list(ks.SPEC_FIELDS)


@pytest.mark.parametrize("overrides,fragment", [
    ({"slot": "red"}, "'slot'"),
    ({"container_port": 0}, "'container_port'"),
    ({"labels": {kc.LABEL_SLOT: "x"}}, "'labels'"),
    ({"labels": {kc.LABEL_MANAGED: "me"}}, "'labels'"),
    ({"labels": {"bad key!": "x"}}, "'labels'"),
    ({"labels": {"team": "-x"}}, "'labels.team'"),
    ({"env": {"1A": "x"}}, "'env'"),
    ({"env": {"TOKEN": "x"}}, "'env'"),
    ({"env": {"A": [1]}}, "'env.A'"),
    ({"config_files": {"a/b": "x"}}, "'config_files'"),
    ({"config_files": {"a": "x"}, "config_mount_path": "etc"}, "'config_mount_path'"),
    ({"readiness": {"type": "cmd"}}, "readiness.command"),
    ({"readiness": {"path": "health"}}, "'readiness.path'"),
    ({"readiness": {"type": "tcp"}}, "'readiness.type'"),
    ({"liveness": {"period_seconds": 0}}, "'liveness.period_seconds'"),
    ({"resources": {"limits": {"memory": "lots"}}}, "'resources.limits.memory'"),
    ({"resources": {"limits": {"gpu": "1"}}}, "'resources.limits'"),
    ({"resources": {"max": {"cpu": "1"}}}, "'resources'"),
    ({"image_pull_policy": "Sometimes"}, "'image_pull_policy'"),
])
def test_bad_input_names_the_option(overrides, fragment):
    with pytest.raises(DeployError) as err:
        spec_of(**overrides)
    assert fragment in err.value.msg


def test_resources_accept_quantities():
    spec = spec_of(resources={"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": None}})
    assert spec["resources"] == {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}}


# -- the Deployment ----------------------------------------------------------------------------
def test_deployment_body_conventions():
    spec = spec_of(labels={"team": "shop"}, config_files={"app.yaml": "x"}, liveness={"type": "cmd", "command": ["true"]})
    body = body_of(spec, replicas=3)
    meta, pod = body["metadata"], body["spec"]["template"]
    assert meta["name"] == "web-1-0-0"
    for labels in (meta["labels"], pod["metadata"]["labels"]):
        assert labels == {kc.LABEL_APP: "web", kc.LABEL_RELEASE: "1.0.0", kc.LABEL_SLOT: "blue",
                          kc.LABEL_MANAGED: kc.MANAGED_BY, "app.kubernetes.io/name": "web", "team": "shop"}
    assert body["spec"]["selector"] == {"matchLabels": {kc.LABEL_APP: "web", kc.LABEL_RELEASE: "1.0.0"}}
    assert body["spec"]["replicas"] == 3 and body["spec"]["progressDeadlineSeconds"] == 120
    ann = meta["annotations"]
    assert ann[kc.ANN_DIGEST] == DIGEST and ann[kc.ANN_IMAGE] == IMAGE and ann[kc.ANN_REPLICAS] == "3"
    assert ann[kc.ANN_SPEC] == model.spec_hash(spec) and ann[kc.ANN_CREATED].endswith("Z")
    assert ann[kc.ANN_SPEC_FIELDS] == model.spec_fields(spec, ks.SPEC_FIELDS)
    container = pod["spec"]["containers"][0]
    assert container["image"] == IMAGE and container["ports"][0]["containerPort"] == 8080
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080, "scheme": "HTTP"}
    assert container["livenessProbe"]["exec"] == {"command": ["true"]}
    refs = container["envFrom"]
    assert refs[0]["configMapRef"]["name"].startswith("web-1-0-0-env-")
    assert refs[1]["secretRef"]["name"].startswith("web-1-0-0-secret-")
    assert container["volumeMounts"] == [{"name": "config", "mountPath": "/etc/app", "readOnly": True}]
    assert pod["spec"]["volumes"][0]["configMap"]["name"].startswith("web-1-0-0-files-")
    maps, secrets = ks.config_names(body)
    assert len(maps) == 2 and len(secrets) == 1


def test_view_and_summary_read_the_annotations():
    body = body_of()
    body["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                      "readyReplicas": 2}
    body["metadata"]["generation"] = 1
    v = kr.view("web", "1.0.0", "shop", body)
    assert v["state"] == "ready" and v["replicas"] == 2 and v["ready_replicas"] == 2 and v["digest"] == DIGEST
    assert v["secrets"][0].startswith("web-1-0-0-secret-") and SECRET not in json.dumps(v)
    assert kr.summary(v)["state"] == "present" and "ready_replicas" not in kr.summary(v)
    assert kr.view("web", "1.0.0", "shop", None)["state"] == "absent"
    assert kr.summary(kr.view("web", "1.0.0", "shop", None)) == {"state": "absent"}


def test_check_owner_refuses_foreign_and_clashing_deployments():
    body = body_of()
    ks.check_owner(body, "web", "1.0.0")
    with pytest.raises(DeployError, match="holds release '1.0.0'"):
        ks.check_owner(body, "web", "1-0-0")
    foreign = {"metadata": {"name": "web-1-0-0", "labels": {"app": "web"}}}
    with pytest.raises(DeployError, match="not a release of app 'web'"):
        ks.check_owner(foreign, "web", "1.0.0")


def test_check_same_spec_names_the_fields():
    body = body_of()
    ks.check_same_spec(body, "web", "1.0.0", spec_of())
    with pytest.raises(DeployError) as err:
        ks.check_same_spec(body, "web", "1.0.0", spec_of(slot="green", env={"A": "9"}))
    assert "differs in: slot, env" in err.value.msg and err.value.details["differs"] == ["slot", "env"]
    assert SECRET not in err.value.msg


def test_image_syntax_and_moving_tags_checked_offline():
    assert ks.check_image_syntax(params()) == DIGEST
    assert kr.resolve_image(params(image="reg:5000/app:1.0@" + DIGEST)) == ("reg:5000/app@" + DIGEST, DIGEST)
    with pytest.raises(DeployError, match="moving tag"):
        ks.check_image_syntax(params(image="reg:5000/app:latest"))
    with pytest.raises(DeployError, match="moving tag"):
        ks.check_image_syntax(params(image="reg:5000/app:rc", moving_tags=["rc*"]))
    with pytest.raises(DeployError, match="no version tag"):
        ks.check_image_syntax(params(image="reg:5000/app"))


def test_bad_input_fails_before_connecting(monkeypatch):
    def no_connect(*_args):
        raise AssertionError("connected before validating")
    monkeypatch.setattr(kclient, "connect", no_connect)
    for overrides in ({"labels": {kc.LABEL_APP: "x"}}, {"replicas": 101}, {"image": "reg:5000/app:latest"},
                      {"slot": None}, {"app": "Web"}, {"progress_deadline_seconds": 0}):
        with pytest.raises(DeployError):
            kr.ensure(params(**overrides), check_mode=False)


# -- waiting and failure reasons ----------------------------------------------------------------
def deployment(wanted=1, ready=0, generation=1, observed=1, conditions=None):
    return {"metadata": {"generation": generation}, "spec": {"replicas": wanted},
            "status": {"observedGeneration": observed, "updatedReplicas": wanted, "availableReplicas": ready,
                       "readyReplicas": ready, "conditions": conditions or []}}


def pod(name="web-1-0-0-abc-xyz", phase="Running", waiting=None, message=None, ready=False, restarts=0,
        last=None, deleting=False):
    state = {"waiting": {"reason": waiting, "message": message}} if waiting else {"running": {"startedAt": "t"}}
    status = {"name": "web", "state": state, "ready": ready, "restartCount": restarts}
    if last:
        status["lastState"] = {"terminated": last}
    meta = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {
        "phase": phase, "containerStatuses": [status],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "reason": "ContainersNotReady",
                        "message": "containers with unready status: [web]"}]}}


def event(reason, message, when, kind="Warning", count=1):
    return {"type": kind, "reason": reason, "message": message, "lastTimestamp": when, "count": count}


def test_rollout_done_only_when_every_count_matches():
    assert kw.rollout(deployment(wanted=2, ready=2))[0]
    assert not kw.rollout(deployment(wanted=2, ready=1))[0]
    assert not kw.rollout(deployment(ready=1, generation=2, observed=1))[0]
    assert kw.rollout(deployment(wanted=0, observed=0))[0]
    assert not kw.rollout({"metadata": {"generation": 1}, "spec": {"replicas": 1}, "status": {}})[0]
    assert kw.rollout(deployment(wanted=2, ready=1))[1] == "ready 1/2, updated 2, available 1"


def test_deployment_failure_conditions():
    assert kw.deployment_failure(deployment()) is None
    dead = deployment(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                   "message": 'ReplicaSet "x" has timed out progressing.'}])
    assert kw.deployment_failure(dead).startswith("ProgressDeadlineExceeded: ReplicaSet")
    quota = deployment(conditions=[{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                    "message": "exceeded quota"}])
    assert "FailedCreate" in kw.deployment_failure(quota)


@pytest.mark.parametrize("reason", sorted(kw.FAST_FAIL_REASONS))
def test_fast_failure_reasons(reason):
    assert kw.fast_failures([pod(waiting=reason)]) == ["web-1-0-0-abc-xyz"]


def test_no_fast_failure_while_starting_or_terminating():
    pods = [pod(waiting="ContainerCreating"), pod(), pod(waiting="CrashLoopBackOff", deleting=True)]
    assert kw.fast_failures(pods) == []


def test_pod_detail_carries_the_pods_own_reasons():
    p = pod(waiting="CrashLoopBackOff", message="back-off 10s restarting failed container", restarts=3,
            last={"reason": "Error", "exitCode": 2, "message": None})
    events = [event("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404", "2026-01-01T00:00:05Z", count=7),
              event("Scheduled", "assigned", "2026-01-01T00:00:00Z", kind="Normal"),
              event("BackOff", "Back-off restarting failed container", "2026-01-01T00:00:09Z", count=2),
              event("Failed", "old", "2026-01-01T00:00:01Z"), event("Failed", "older", "2026-01-01T00:00:00Z")]
    d = kw.pod_detail(p, events)
    assert d["phase"] == "Running" and not d["ready"] and d["restarts"] == 3
    assert d["containers"][0]["reason"] == "CrashLoopBackOff" and d["containers"][0]["last_terminated"]["exit_code"] == 2
    assert [e["reason"] for e in d["events"]] == ["Failed", "Unhealthy", "BackOff"]  # last 3 Warnings, oldest first
    text = kw.describe_pod(d)
    assert text.startswith("web-1-0-0-abc-xyz: Running")
    assert "not ready (ContainersNotReady" in text and "CrashLoopBackOff: back-off 10s" in text
    assert "last exit 2 Error" in text and "restarts 3" in text
    assert "Readiness probe failed: HTTP probe failed with statuscode: 404 (x7)" in text


def test_unscheduled_pod_says_why():
    p = {"metadata": {"name": "web-x"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes: Insufficient cpu."}]}}
    text = kw.describe_pod(kw.pod_detail(p, []))
    assert text == "web-x: Pending, not ready, pod Unschedulable: 0/1 nodes: Insufficient cpu., restarts 0"


def test_failure_text_without_pods():
    assert "no pod exists yet" in kw.failure_text({"deployment_reason": "ReplicaFailure (FailedCreate): quota",
                                                   "pods": []})


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_rollout_succeeds():
    states = [deployment(ready=0), deployment(ready=1)]
    clock = Clock()
    assert kw.wait_rollout(lambda: states.pop(0), lambda: [pod()], lambda name: [], 10, clock, clock.sleep) is None


def test_wait_rollout_fails_fast_without_waiting_for_the_timeout():
    clock = Clock()
    report = kw.wait_rollout(deployment, lambda: [pod(), pod("web-b", waiting="ErrImageNeverPull")],
                             lambda name: [event("ErrImageNeverPull", "not present", "t")], 120, clock, clock.sleep)
    assert report["why"] == "failed" and clock.now == 0
    assert report["pods"][0]["name"] == "web-b"  # the pod with trouble first
    assert report["pods"][0]["events"][0]["reason"] == "ErrImageNeverPull"


def test_wait_rollout_times_out_with_reasons():
    clock = Clock()
    events = [event("Unhealthy", "Readiness probe failed: 404", "t", count=5)]
    report = kw.wait_rollout(deployment, lambda: [pod()], lambda name: events, 3, clock, clock.sleep)
    assert report["why"] == "timeout" and 3 <= clock.now <= 3.5
    assert "Readiness probe failed: 404 (x5)" in kw.failure_text(report)


def test_wait_gone():
    clock = Clock()
    lists = [[pod()], [pod(deleting=True)], []]
    assert kw.wait_gone(lambda: lists.pop(0), 10, clock, clock.sleep) == []
    assert kw.wait_gone(lambda: [pod()], 2, clock, clock.sleep) == ["web-1-0-0-abc-xyz"]
