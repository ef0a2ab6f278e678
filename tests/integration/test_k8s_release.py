"""k8s_release against the real single-node Kubernetes (tests/k8s): one Deployment per release."""
from __future__ import annotations

import json
import uuid

from conftest import K8S_CLUSTER, kubectl

SECRET = "s3cr3t-%s" % uuid.uuid4().hex[:10]
MODULE = "immutable.deploy.k8s_release"


def task(name, ns, release="1.0.0", check=False, **args):
    """A k8s_release task that never stops the play (results are asserted afterwards)."""
    full = {"namespace": ns, "app": "web", "release": release, "slot": "blue"}
    full.update(args)
    out = {"name": name, MODULE: full, "ignore_errors": True, "diff": True}
    if check:
        out["check_mode"] = True
    return out


def objects_task(name, ns, app="web"):
    """List what exists of an app, from inside the play (so a check-mode step can be verified in order)."""
    return {"name": name, "ansible.builtin.command": {"argv": [
        K8S_CLUSTER, "kubectl", "-n", ns, "get", "deployments,configmaps,secrets", "-o", "name",
        "-l", "immutable-deploy.io/app=%s" % app]}, "changed_when": False}


def get(ns, *args):
    return json.loads(kubectl("-n", ns, "get", *args, "-o", "json").stdout)


def failed(run, name):
    row = run.task(name)
    assert row["status"] == "failed", row["result"]
    return row["result"]


def test_release_lifecycle(play, k8s_namespace, k8s_images):
    ns, repo = k8s_namespace, k8s_images["repo"]
    spec = dict(image="%s:1.0.0" % repo, env={"GREETING": "hello", "DEBUG": False}, secret_env={"TOKEN": SECRET},
                config_files={"app.conf": "mode=blue\n"}, readiness={"path": "/health"}, labels={"team": "shop"})
    # The digest form of the same image is the same content: only env differs.
    other = {**spec, "image": k8s_images["1.0.0"], "env": {"GREETING": "bye", "DEBUG": False}}
    run = play([
        task("check new", ns, check=True, **spec),
        objects_task("after check", ns),
        task("apply", ns, **spec),
        task("check again", ns, check=True, **spec),
        task("apply again", ns, **spec),
        task("other spec", ns, **other),
        task("clashing id", ns, release="1-0-0", **spec),
        task("scale", ns, replicas=2, **spec),
    ], args=["-v"])
    assert SECRET not in run.stdout and SECRET not in json.dumps(run.rows)

    first = run.result("check new")
    assert first["changed"] and first["diff"]["before"] == {"state": "absent"}
    assert first["release"]["image"] == k8s_images["1.0.0"] and first["release"]["state"] == "progressing"
    assert run.result("after check")["stdout"] == ""  # the dry run wrote nothing

    applied = run.result("apply")
    rel = applied["release"]
    assert applied["changed"] and rel["state"] == "ready" and rel["ready_replicas"] == 1 and rel["replicas"] == 1
    assert rel["name"] == "web-1-0-0" and rel["namespace"] == ns and rel["slot"] == "blue"
    assert rel["image"] == k8s_images["1.0.0"] and rel["digest"] == k8s_images["1.0.0"].split("@")[1]
    assert rel["created"].endswith("Z") and rel["spec_hash"].startswith("sha256:")
    assert first["release"]["configmaps"] == rel["configmaps"] and first["release"]["secrets"] == rel["secrets"]
    assert applied["diff"]["after"]["state"] == "present" and SECRET not in json.dumps(applied["diff"])
    for name in ("check again", "apply again"):
        assert not run.result(name)["changed"], name
        assert run.result(name)["release"]["spec_hash"] == rel["spec_hash"]

    # Same id, other content (or a clashing id): refused, naming what differs.
    assert "differs in: env;" in failed(run, "other spec")["msg"]
    assert failed(run, "other spec")["differs"] == ["env"]
    assert "already holds release '1.0.0'" in failed(run, "clashing id")["msg"]

    # Scaling is not content: the same release, scaled in place.
    scaled = run.result("scale")
    assert scaled["changed"] and scaled["release"]["ready_replicas"] == 2
    assert scaled["release"]["spec_hash"] == rel["spec_hash"] and scaled["release"]["created"] == rel["created"]

    dep = get(ns, "deployment", "web-1-0-0")
    ann = dep["metadata"]["annotations"]
    assert ann["immutable-deploy.io/replicas"] == "2" and dep["spec"]["replicas"] == 2
    assert ann["immutable-deploy.io/spec"] == rel["spec_hash"] and dep["metadata"]["generation"] == 2
    assert dep["metadata"]["labels"]["immutable-deploy.io/slot"] == "blue"
    assert dep["spec"]["selector"]["matchLabels"] == {"immutable-deploy.io/app": "web",
                                                      "immutable-deploy.io/release": "1.0.0"}
    pods = get(ns, "pods", "-l", "immutable-deploy.io/release=1.0.0")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["containers"][0]["image"] == k8s_images["1.0.0"]
        assert pod["metadata"]["labels"]["team"] == "shop"
        assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    maps = {m["metadata"]["name"]: m for m in get(ns, "configmaps", "-l", "immutable-deploy.io/app=web")["items"]}
    assert sorted(maps) == rel["configmaps"] and len(maps) == 2
    assert all(m["immutable"] for m in maps.values())
    env_map = [m for n, m in maps.items() if n.startswith("web-1-0-0-env-")][0]
    assert env_map["data"] == {"GREETING": "hello", "DEBUG": "false"}
    secret = get(ns, "secret", rel["secrets"][0])
    assert secret["immutable"] and rel["secrets"][0].startswith("web-1-0-0-secret-")
    # The configuration is what the pod sees.
    pod = pods[0]["metadata"]["name"]
    seen = kubectl("-n", ns, "exec", pod, "--", "/bin/busybox", "sh", "-c", "echo $GREETING $TOKEN; cat /etc/app/app.conf")
    assert seen.stdout.split() == ["hello", SECRET, "mode=blue"]

    # The sample app (busybox httpd as PID 1) ignores SIGTERM, so its pods take the 30 s grace
    # period to go: waiting for pods to be gone is tested on a failed release in the next test.
    gone = play([task("absent check", ns, check=True, state="absent"),
                 objects_task("after absent check", ns),
                 task("absent", ns, state="absent", wait=False),
                 task("absent again", ns, state="absent", wait=False)])
    assert gone.result("absent check")["changed"]
    assert len(gone.result("after absent check")["stdout_lines"]) == 4  # Deployment, 2 ConfigMaps, Secret
    assert gone.result("absent")["changed"]
    assert gone.result("absent")["diff"]["before"]["configmaps"] == rel["configmaps"]
    assert gone.result("absent")["release"]["state"] == "absent"
    assert not gone.result("absent again")["changed"]
    assert kubectl("-n", ns, "get", "deployments,configmaps,secrets", "-o", "name",
                   "-l", "immutable-deploy.io/app=web").stdout == ""


def test_failures_carry_the_pods_reasons_and_bad_input_writes_nothing(play, k8s_namespace, k8s_images, tmp_path):
    ns, repo = k8s_namespace, k8s_images["repo"]
    missing_digest = "%s@sha256:%s" % (repo, "0" * 64)
    good = k8s_images["1.0.0"]
    run = play([
        task("never", ns, release="never", image=missing_digest, image_pull_policy="Never", wait_timeout=90),
        task("retire never", ns, release="never", state="absent", wait_timeout=60),
        task("unready", ns, release="unready", image=k8s_images["unready"], wait_timeout=20),
        task("no kubeconfig", ns, app="bad", image=good, kubeconfig=str(tmp_path / "nope.yaml")),
        task("no namespace", "it-missing-%s" % uuid.uuid4().hex[:6], app="bad", image=good),
        task("moving tag", ns, app="bad", image="%s:latest" % repo),
    ])

    never = failed(run, "never")
    assert never["why"] == "failed"  # reported at once, not at the 90 s timeout
    assert "ErrImageNeverPull" in never["msg"] and "left in place" in never["msg"]
    assert never["pods"][0]["containers"][0]["reason"] == "ErrImageNeverPull"
    # Retired with wait: the Deployment, its pods and its objects are gone when the task returns.
    retired = run.result("retire never")
    assert retired["changed"] and retired["diff"]["before"]["name"] == "web-never"
    assert kubectl("-n", ns, "get", "deployments,pods,configmaps,secrets", "-o", "name",
                   "-l", "immutable-deploy.io/release=never").stdout == ""

    unready = failed(run, "unready")
    assert unready["why"] == "timeout" and "within wait_timeout 20s" in unready["msg"]
    assert "Readiness probe failed" in unready["msg"]
    detail = unready["pods"][0]
    assert detail["phase"] == "Running" and detail["ready"] is False and detail["restarts"] == 0
    assert any(e["reason"] == "Unhealthy" for e in detail["events"])
    # A failed release stays for the strategy to retire.
    assert get(ns, "deployment", "web-unready")["metadata"]["annotations"]["immutable-deploy.io/image"] \
        == k8s_images["unready"]

    assert "nope.yaml" in failed(run, "no kubeconfig")["msg"]
    assert "does not exist" in failed(run, "no namespace")["msg"]
    assert "moving tag" in failed(run, "moving tag")["msg"]
    assert kubectl("-n", ns, "get", "deployments,configmaps,secrets", "-o", "name",
                   "-l", "immutable-deploy.io/app=bad").stdout == ""
