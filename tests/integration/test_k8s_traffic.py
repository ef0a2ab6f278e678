"""k8s_traffic and k8s_release_info against the real single-node cluster.

Releases are Deployments made here from a small manifest with the k8s/naming.py labels and
annotations (not by k8s_release), so these tests depend only on the traffic modules.
Traffic is checked through the API only: Service selectors and Endpoints ready addresses.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from conftest import kubectl

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kc

k8s = pytest.importorskip("kubernetes")
from kubernetes import client as k8s_client  # noqa: E402 pylint: disable=wrong-import-position
from kubernetes import config as k8s_config  # noqa: E402 pylint: disable=wrong-import-position
from kubernetes import watch as k8s_watch  # noqa: E402 pylint: disable=wrong-import-position

TRAFFIC = "immutable.deploy.k8s_traffic"
INFO = "immutable.deploy.k8s_release_info"


@pytest.fixture
def kube(kubeconfig):
    api = k8s_config.new_client_from_config(config_file=kubeconfig)
    yield k8s_client.CoreV1Api(api), k8s_client.AppsV1Api(api)
    api.close()


def make_release(apps, ns: str, app: str, release: str, image: str, replicas: int, created: str,
                 slot: str = "blue", full: Optional[int] = None) -> None:
    labels = {kc.LABEL_APP: app, kc.LABEL_RELEASE: release, kc.LABEL_SLOT: slot, kc.LABEL_MANAGED: kc.MANAGED_BY}
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": kc.object_name(app, release), "labels": labels, "annotations": {
            kc.ANN_DIGEST: image.split("@", 1)[1], kc.ANN_IMAGE: image, kc.ANN_CREATED: created,
            kc.ANN_SPEC: "test", kc.ANN_REPLICAS: str(replicas if full is None else full)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": kc.selector_for(app, release)},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                                     "ports": [{"containerPort": 8080}],
                                     "readinessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                                        "periodSeconds": 1}}]}}},
    }
    apps.create_namespaced_deployment(ns, body)


def wait_ready(apps, ns: str, names: Dict[str, int], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ready = {n: apps.read_namespaced_deployment(n, ns).status.ready_replicas or 0 for n in names}
        if all(ready[n] == want for n, want in names.items()):
            return
        assert time.monotonic() < deadline, "not ready: %s, wanted %s" % (ready, names)
        time.sleep(0.5)


def replicas(apps, ns: str, app: str, *releases: str) -> Dict[str, int]:
    return {r: apps.read_namespaced_deployment(kc.object_name(app, r), ns).spec.replicas for r in releases}


def selector(core, ns: str, name: str) -> Optional[Dict[str, str]]:
    return core.read_namespaced_service(name, ns).spec.selector


def service_exists(ns: str, name: str) -> bool:
    return kubectl("get", "service", name, "-n", ns, check=False).returncode == 0


class Watcher:
    """Records every event of one object's watch in a thread (Endpoints or Service)."""

    def __init__(self, list_call, ns: str, name: str, view) -> None:
        self.events: List[Any] = []
        self.error: Optional[Exception] = None
        self._watch = k8s_watch.Watch()
        self._args = (list_call, ns, name, view)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        list_call, ns, name, view = self._args
        try:
            for event in self._watch.stream(list_call, ns, field_selector="metadata.name=%s" % name,
                                            timeout_seconds=60):
                self.events.append((event["type"], view(event["object"])))
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc  # the client closing after stop(), or a real failure wait_for() reports

    def wait_for(self, predicate, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(predicate(e) for e in self.events):
            assert self.error is None and time.monotonic() < deadline, (self.error, self.events)
            time.sleep(0.1)

    def stop(self) -> None:
        self._watch.stop()


def ready_pods(endpoints) -> List[str]:
    return sorted({a.target_ref.name for s in endpoints.subsets or [] for a in s.addresses or []})


def failure(run, name: str) -> str:
    """The message of a task that must have failed."""
    row = run.task(name)
    assert row["status"] == "failed", row
    return row["result"]["msg"]


def by_name(releases: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    return {r["id"]: r for r in releases}


def test_blue_green_switch_preview_info_and_refusals(play, k8s_namespace, k8s_images, kube, uid):
    core, apps = kube
    ns, app = k8s_namespace, "web"
    make_release(apps, ns, app, "0.9.0", k8s_images["unready"], 1, "2024-01-01T00:00:00Z", slot="green")
    make_release(apps, ns, app, "1.0.0", k8s_images["1.0.0"], 2, "2024-01-02T00:00:00Z", slot="blue")
    make_release(apps, ns, app, "2.0.0", k8s_images["2.0.0"], 2, "2024-01-03T00:00:00Z", slot="green")
    wait_ready(apps, ns, {"web-1-0-0": 2, "web-2-0-0": 2})
    base = {"app": app, "namespace": ns}

    def to(release, **extra):
        return {TRAFFIC: dict(base, release=release, **extra)}

    # Bad input: clear errors; check mode: the create is a server-side dry run. No Service written.
    run = play([
        dict(name="missing", ignore_errors=True, **to("9.9.9")),
        dict(name="bad ns", ignore_errors=True, **{TRAFFIC: dict(base, release="1.0.0", namespace="nope-%s" % uid)}),
        dict(name="bad kubeconfig", ignore_errors=True, **to("1.0.0", kubeconfig="/nonexistent/kubeconfig")),
        dict(name="bad weight", ignore_errors=True, **{TRAFFIC: dict(
            base, strategy="replica_ratio", release="2.0.0", stable_release="1.0.0", weight=150)}),
        dict(name="check", check_mode=True, **to("1.0.0")),
    ])
    assert run.rc == 0, run.stdout[-3000:]
    missing = failure(run, "missing")
    assert "'9.9.9'" in missing and "does not exist" in missing and "0.9.0, 1.0.0, 2.0.0" in missing
    assert "namespace 'nope-%s' does not exist" % uid in failure(run, "bad ns")
    assert "'kubeconfig'" in failure(run, "bad kubeconfig")
    assert "'weight': 150" in failure(run, "bad weight")
    assert run.result("check")["changed"] and run.result("check")["action"] == "create"
    assert not service_exists(ns, app)

    run = play([dict(name="v1", **to("1.0.0")), dict(name="again", **to("1.0.0"))])
    assert run.rc == 0, run.stdout[-3000:]
    v1 = run.result("v1")
    assert v1["changed"] and v1["action"] == "create" and v1["previous_release"] is None
    assert v1["endpoints"] == {"release": "1.0.0", "ready": 2, "other": 0}
    assert run.result("again")["changed"] is False and run.result("again")["action"] == "none"
    svc = core.read_namespaced_service(app, ns)
    assert svc.spec.selector == kc.selector_for(app, "1.0.0")
    assert svc.metadata.labels == {kc.LABEL_APP: app, kc.LABEL_MANAGED: kc.MANAGED_BY}
    assert [(p.port, p.target_port, p.name) for p in svc.spec.ports] == [(80, 8080, "http")]

    # Watched: require_ready refuses the release that never gets ready (no write), then the switch
    # to v2: the Endpoints never lose all ready addresses and the selector changes once.
    endpoints = Watcher(core.list_namespaced_endpoints, ns, app, ready_pods)
    services = Watcher(core.list_namespaced_service, ns, app, lambda s: s.spec.selector)
    v1_pods = sorted(p.metadata.name for p in core.list_namespaced_pod(
        ns, label_selector=kc.label_selector(kc.selector_for(app, "1.0.0"))).items)
    try:
        endpoints.wait_for(lambda e: e[1] == v1_pods)
        services.wait_for(lambda e: e[0] == "ADDED")
        run = play([dict(name="refuse", ignore_errors=True, **to("0.9.0")), dict(name="v2", **to("2.0.0"))],
                   diff=True)
        assert run.rc == 0, run.stdout[-3000:]
        v2_pods = sorted(p.metadata.name for p in core.list_namespaced_pod(
            ns, label_selector=kc.label_selector(kc.selector_for(app, "2.0.0"))).items)
        endpoints.wait_for(lambda e: e[1] == v2_pods)
        time.sleep(1)  # any late event (there should be none) is recorded too
    finally:
        endpoints.stop()
        services.stop()
    refuse = failure(run, "refuse")
    assert "'0.9.0'" in refuse and "0 of 1 replicas ready" in refuse
    v2 = run.result("v2")
    assert v2["changed"] and v2["action"] == "patch" and v2["previous_release"] == "1.0.0"
    assert v2["selector"] == {"before": kc.selector_for(app, "1.0.0"), "after": kc.selector_for(app, "2.0.0")}
    assert v2["diff"]["before"]["selector"] == kc.selector_for(app, "1.0.0")
    assert v2["endpoints"] == {"release": "2.0.0", "ready": 2, "other": 0}
    assert 0 <= v2["switch_seconds"] < 30
    lists = [pods for _type, pods in endpoints.events]
    assert lists[0] == v1_pods and lists[-1] == v2_pods
    assert all(pods for pods in lists), "a watch saw the Endpoints without ready addresses: %s" % lists
    assert all(set(pods) <= set(v1_pods) or set(pods) <= set(v2_pods) for pods in lists), lists
    # One write to the Service in all: the refusal wrote nothing, the switch was a single patch.
    assert services.events == [("ADDED", kc.selector_for(app, "1.0.0")),
                               ("MODIFIED", kc.selector_for(app, "2.0.0"))], services.events

    # Preview Service at the old release, then what info reports.
    run = play([dict(name="preview", **to("1.0.0", service="web-preview")),
                dict(name="info", **{INFO: base}),
                dict(name="only v1", **{INFO: dict(base, release="1.0.0")})])
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("preview")["changed"] and run.result("preview")["endpoints"]["ready"] == 2
    assert selector(core, ns, app) == kc.selector_for(app, "2.0.0")
    info = run.result("info")
    assert [r["id"] for r in info["releases"]] == ["2.0.0", "1.0.0", "0.9.0"]
    rel = by_name(info["releases"])
    assert rel["2.0.0"]["live"] and rel["2.0.0"]["weight"] == 100 and not rel["2.0.0"]["preview"]
    assert not rel["1.0.0"]["live"] and rel["1.0.0"]["weight"] == 0 and rel["1.0.0"]["preview"]
    assert (rel["0.9.0"]["state"], rel["0.9.0"]["health"], rel["0.9.0"]["live"]) == ("partial", "progressing", False)
    assert {k: rel["2.0.0"][k] for k in ("name", "slot", "digest", "image", "replicas", "full_replicas",
                                         "ready_replicas", "state", "health", "created")} == {
        "name": "web-2-0-0", "slot": "green", "digest": k8s_images["2.0.0"].split("@")[1],
        "image": k8s_images["2.0.0"], "replicas": 2, "full_replicas": 2, "ready_replicas": 2,
        "state": "running", "health": "healthy", "created": "2024-01-03T00:00:00Z"}
    assert info["service"] == {"name": app, "exists": True, "mode": "release",
                               "selector": kc.selector_for(app, "2.0.0")}
    assert info["preview_service"]["mode"] == "release" and info["preview_service"]["name"] == "web-preview"
    assert [r["id"] for r in run.result("only v1")["releases"]] == ["1.0.0"]


def test_replica_ratio_canary(play, k8s_namespace, k8s_images, kube):
    core, apps = kube
    ns, app = k8s_namespace, "shop"
    make_release(apps, ns, app, "1.0.0", k8s_images["1.0.0"], 4, "2024-01-02T00:00:00Z", slot="blue")
    make_release(apps, ns, app, "2.0.0", k8s_images["2.0.0"], 0, "2024-01-03T00:00:00Z", slot="green", full=4)
    wait_ready(apps, ns, {"shop-1-0-0": 4})
    base = {"app": app, "namespace": ns}

    def ratio(weight, **extra):
        return {TRAFFIC: dict(base, strategy="replica_ratio", release="2.0.0", stable_release="1.0.0",
                              weight=weight, **extra)}

    def weights(name):
        return {r["id"]: (r["live"], r["weight"], r["replicas"]) for r in run.result(name)["releases"]}

    # From a blue-green state (Service selects 1.0.0): a check-mode step changes nothing, then 25/50/100,
    # then ratios 4 replicas cannot express, which fail before any write.
    run = play([{"name": "bg", TRAFFIC: dict(base, release="1.0.0")},
                dict(name="check 25", check_mode=True, **ratio(25)), {"name": "i0", INFO: base},
                dict(name="25", **ratio(25)), dict(name="25 again", **ratio(25)), {"name": "i25", INFO: base},
                dict(name="50", **ratio(50)), {"name": "i50", INFO: base},
                dict(name="100", **ratio(100)), {"name": "i100", INFO: base},
                dict(name="30", ignore_errors=True, **ratio(30)),
                dict(name="30 of 3", ignore_errors=True, **ratio(30, total_replicas=3)), {"name": "i30", INFO: base},
                dict(name="refused", ignore_errors=True, **{TRAFFIC: dict(base, release="1.0.0")}),
                dict(name="rollback", **{TRAFFIC: dict(base, release="1.0.0", restore_replicas=True)}),
                {"name": "i-rollback", INFO: base}], diff=True)
    assert run.rc == 0, run.stdout[-3000:]
    check = run.result("check 25")
    assert check["changed"] and check["replicas"] == {"2.0.0": 1, "1.0.0": 3} and check["total_replicas"] == 4
    assert weights("i0") == {"2.0.0": (False, 0, 0), "1.0.0": (True, 100, 4)}
    assert run.result("i0")["service"]["mode"] == "release"

    r25 = run.result("25")
    assert r25["changed"] and r25["replicas"] == {"2.0.0": 1, "1.0.0": 3}
    assert r25["weights"] == {"2.0.0": 25, "1.0.0": 75}
    assert r25["diff"]["before"]["replicas"] == {"2.0.0": 0, "1.0.0": 4}
    assert r25["selector"] == {"before": kc.selector_for(app, "1.0.0"), "after": kc.selector_for(app)}
    assert run.result("25 again")["changed"] is False
    assert weights("i25") == {"2.0.0": (True, 25, 1), "1.0.0": (True, 75, 3)}
    assert run.result("i25")["service"]["mode"] == "app"
    assert weights("i50") == {"2.0.0": (True, 50, 2), "1.0.0": (True, 50, 2)}
    assert run.result("100")["weights"] == {"2.0.0": 100, "1.0.0": 0}
    assert weights("i100") == {"2.0.0": (True, 100, 4), "1.0.0": (False, 0, 0)}
    stable = by_name(run.result("i100")["releases"])["1.0.0"]
    assert (stable["state"], stable["full_replicas"]) == ("stopped", 4)  # the full size annotation stays

    assert failure(run, "30") == ("Invalid value for option 'weight': 30. Accepted: with total_replicas=4 a "
                                  "multiple of 25 (0, 25, 50, 75, 100), or raise total_replicas.")
    assert "total_replicas=3 a multiple of 100 (0, 100)" in failure(run, "30 of 3")
    assert weights("i30") == weights("i100") and run.result("i30")["service"]["mode"] == "app"

    # Rollback to the stable release the canary scaled to 0: refused as is, restored to its full size.
    assert "'1.0.0'" in failure(run, "refused") and "0 of 0 replicas ready" in failure(run, "refused")
    back = run.result("rollback")
    assert back["changed"] and back["restored"] == {"release": "1.0.0", "replicas_before": 0, "replicas": 4}
    assert back["previous_release"] is None and back["endpoints"] == {"release": "1.0.0", "ready": 4, "other": 0}
    assert weights("i-rollback") == {"2.0.0": (False, 0, 4), "1.0.0": (True, 100, 4)}
    assert replicas(apps, ns, app, "2.0.0", "1.0.0") == {"2.0.0": 4, "1.0.0": 4}
    assert selector(core, ns, app) == kc.selector_for(app, "1.0.0")
    assert apps.read_namespaced_deployment("shop-1-0-0", ns).metadata.annotations[kc.ANN_REPLICAS] == "4"
