"""The blue_green, rollback and canary roles on the kubernetes target, on the real cluster.

Traffic decisions are checked through the API only (Service selector, Endpoints, pods):
nothing may connect to pod or ClusterIP addresses here.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional

from conftest import kubectl

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

RELEASE = "immutable-deploy.io/release"


def role(play, name: str, prefix: str, namespace: str, **values: Any):
    params = {"%s_target" % prefix: "kubernetes", "%s_k8s_namespace" % prefix: namespace}
    params.update(values)
    return play([{"name": "role", "ansible.builtin.include_role": {"name": "immutable.deploy." + name}, "vars": params},
                 {"name": "result", "ansible.builtin.debug": {"var": "%s_result" % prefix}}])


def bg(play, ns, app, image, tmp_path, **extra):
    values = {"blue_green_app": app, "blue_green_image": image, "blue_green_lock_dir": str(tmp_path / "locks"),
              "blue_green_wait_timeout": 60,
              # busybox httpd as PID 1 ignores SIGTERM: do not hold retired pods for 30 s
              "blue_green_k8s_termination_grace_period": 1}
    values.update(extra)
    return role(play, "blue_green", "blue_green", ns, **values)


def releases(play, ns, app) -> Dict[str, Dict[str, Any]]:
    run = play([{"name": "info", "immutable.deploy.k8s_release_info": {"app": app, "namespace": ns}}])
    assert run.rc == 0, run.stdout[-3000:]
    return {r["id"]: r for r in run.result("info")["releases"]}


def selector(ns: str, service: str) -> Dict[str, str]:
    out = kubectl("get", "service", service, "-n", ns, "-o", "json").stdout
    return json.loads(out)["spec"]["selector"]


class EndpointsWatch:
    """Every Endpoints event of one Service while a switch happens (the zero-downtime invariant)."""

    def __init__(self, kubeconfig: str, ns: str, name: str) -> None:
        self.api = k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
        self.ns, self.name = ns, name
        self.ready: List[int] = []
        self.releases: List[List[str]] = []
        self.error: Optional[Exception] = None
        self._watch = k8s_watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for event in self._watch.stream(self.api.list_namespaced_endpoints, self.ns,
                                            field_selector="metadata.name=%s" % self.name, timeout_seconds=300):
                subsets = event["object"].subsets or []
                addresses = [a for s in subsets for a in (s.addresses or [])]
                self.ready.append(len(addresses))
                self.releases.append(sorted({(a.target_ref.name if a.target_ref else "?") for a in addresses}))
        except Exception as exc:  # pylint: disable=broad-except  # the stream ends when the test stops it
            self.error = exc

    def __enter__(self) -> "EndpointsWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._watch.stop()
        self._thread.join(10)


def test_blue_green_switch_rollback_and_failed_release(play, kubeconfig, k8s_namespace, k8s_images, uid, tmp_path):
    ns, app = k8s_namespace, "kbg-%s" % uid
    first = bg(play, ns, app, k8s_images["1.0.0"], tmp_path, blue_green_release="1.0.0", blue_green_replicas=2)
    assert first.rc == 0, first.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "1.0.0" and selector(ns, app + "-preview")[RELEASE] == "1.0.0"

    again = bg(play, ns, app, k8s_images["1.0.0"], tmp_path, blue_green_release="1.0.0", blue_green_replicas=2)
    assert again.rc == 0 and again.result("result")["blue_green_result"]["changed"] is False
    assert not [r for r in again.rows if r["action"].startswith("immutable.deploy.k8s_") and r["result"].get("changed")]

    with EndpointsWatch(kubeconfig, ns, app) as watch:
        second = bg(play, ns, app, k8s_images["2.0.0"], tmp_path, blue_green_release="2.0.0", blue_green_replicas=2)
    assert second.rc == 0, second.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "2.0.0"
    assert watch.ready and min(watch.ready) > 0, watch.ready  # never zero ready addresses
    assert any(all(p.startswith(app + "-2-0-0") for p in pods) for pods in watch.releases[1:]), watch.releases
    state = releases(play, ns, app)
    assert state["2.0.0"]["live"] and state["2.0.0"]["weight"] == 100
    assert not state["1.0.0"]["live"] and state["1.0.0"]["state"] == "running"  # kept warm

    back = role(play, "rollback", "rollback", ns, rollback_app=app, rollback_lock_dir=str(tmp_path / "locks"))
    assert back.rc == 0, back.stdout[-4000:]
    expected = {"app": app, "live": "1.0.0", "previous": "2.0.0", "changed": True}
    assert back.result("result")["rollback_result"] == expected
    assert selector(ns, app)[RELEASE] == "1.0.0"

    bad = bg(play, ns, app, k8s_images["unready"], tmp_path, blue_green_release="3.0.0",
             blue_green_wait_timeout=20)
    assert bad.rc != 0
    assert "aborted before the switch" in bad.stdout and "Readiness probe failed" in bad.stdout, bad.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "1.0.0"  # no switch
    assert set(releases(play, ns, app)) == {"1.0.0"}  # 2.0.0's slot was freed for 3.0.0, then 3.0.0 removed

    retire = bg(play, ns, app, k8s_images["2.0.0"], tmp_path, blue_green_release="2.0.0", blue_green_keep=1)
    assert retire.rc == 0, retire.stdout[-4000:]
    assert set(releases(play, ns, app)) == {"2.0.0"}
    assert kubectl("get", "deployments", "-n", ns, "-o", "name").stdout.split() == ["deployment.apps/%s-2-0-0" % app]
