"""Pure logic of k8s/traffic.py, k8s/endpoints.py and k8s/release.py: ratios, selectors, endpoints, weights, release views."""
from __future__ import annotations

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import endpoints as ke
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kc
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import release as kr
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import rollout
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import traffic as kt
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

APP = "web"


# -- replica ratio ---------------------------------------------------------------------------
@pytest.mark.parametrize("total,weight,expected", [
    (4, 0, (0, 4)), (4, 25, (1, 3)), (4, 50, (2, 2)), (4, 75, (3, 1)), (4, 100, (4, 0)),
    (10, 10, (1, 9)), (10, 30, (3, 7)), (1, 100, (1, 0)), (1, 0, (0, 1)), (20, 5, (1, 19)),
])
def test_ratio_replicas_exact(total, weight, expected):
    assert kt.ratio_replicas(total, weight) == expected


def test_ratio_not_expressible_names_weight_and_accepted_values():
    with pytest.raises(DeployError) as err:
        kt.ratio_replicas(4, 5)
    assert err.value.msg == ("Invalid value for option 'weight': 5. Accepted: with total_replicas=4 a multiple of 25 "
                             "(0, 25, 50, 75, 100), or raise total_replicas.")
    assert err.value.details["option"] == "weight"


def test_ratio_with_many_accepted_values_is_abbreviated():
    with pytest.raises(DeployError) as err:
        kt.ratio_replicas(50, 3)
    assert "a multiple of 2 (0, 2, 4, ..., 100)" in err.value.msg
    with pytest.raises(DeployError) as err:
        kt.ratio_replicas(3, 50)  # gcd(3, 100) = 1: only 0 and 100
    assert "a multiple of 100 (0, 100)" in err.value.msg


@pytest.mark.parametrize("weight", [-1, 101, 250, "50", 12.5, True])
def test_weight_out_of_range(weight):
    with pytest.raises(DeployError) as err:
        kt.check_weight(weight)
    assert "'weight'" in err.value.msg and "0 to 100" in err.value.msg


@pytest.mark.parametrize("total", [0, -2, None])
def test_total_replicas_must_be_positive(total):
    with pytest.raises(DeployError) as err:
        kt.ratio_replicas(total, 50)
    assert "'total_replicas'" in err.value.msg


# -- selectors -------------------------------------------------------------------------------
def svc(selector):
    return {"metadata": {"name": APP}, "spec": {"selector": selector}}


def test_selector_action():
    v2 = kc.selector_for(APP, "2.0.0")
    assert kt.selector_action(None, v2) == "create"
    assert kt.selector_action(svc(kc.selector_for(APP, "1.0.0")), v2) == "patch"
    assert kt.selector_action(svc(kc.selector_for(APP)), v2) == "patch"  # app-only -> one release
    assert kt.selector_action(svc(v2), v2) == "none"
    assert kt.selector_action(svc(dict(v2, extra="x")), v2) == "patch"  # exactly, not a superset
    assert kt.selector_action(svc(None), kc.selector_for(APP)) == "patch"


def test_selector_patch_is_one_test_and_replace():
    old, new = kc.selector_for(APP, "1.0.0"), kc.selector_for(APP, "2.0.0")
    assert kt.selector_patch(old, new) == [{"op": "test", "path": "/spec/selector", "value": old},
                                           {"op": "replace", "path": "/spec/selector", "value": new}]
    assert kt.selector_patch(None, new) == [{"op": "add", "path": "/spec/selector", "value": new}]


def test_service_body():
    body = kt.service_body("web-preview", APP, kc.selector_for(APP, "2.0.0"),
                           [{"port": 80, "target_port": "8080", "name": "http", "protocol": None},
                            {"port": 9090, "target_port": "metrics", "name": None, "protocol": "TCP"}])
    assert body["spec"]["type"] == "ClusterIP"
    assert body["metadata"]["labels"] == {kc.LABEL_APP: APP, kc.LABEL_MANAGED: kc.MANAGED_BY}
    assert body["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "name": "http", "protocol": "TCP"},
                                     {"port": 9090, "targetPort": "metrics", "protocol": "TCP"}]


@pytest.mark.parametrize("service,expected", [
    (None, ("none", None)),
    (svc(None), ("none", None)),
    (svc({kc.LABEL_APP: "other"}), ("none", None)),
    (svc(kc.selector_for(APP)), ("app", None)),
    (svc(kc.selector_for(APP, "1.0.0")), ("release", "1.0.0")),
])
def test_service_mode(service, expected):
    assert ke.service_mode(service, APP) == expected


# -- endpoints -------------------------------------------------------------------------------
def addr(pod, ip="10.0.0.1"):
    return {"ip": ip, "targetRef": {"kind": "Pod", "name": pod}}


ENDPOINTS = {"subsets": [
    {"addresses": [addr("web-1-a"), addr("web-2-a"), addr("web-2-b")],
     "notReadyAddresses": [addr("web-2-c")], "ports": [{"port": 8080}]},
    {"addresses": [addr("web-1-a")], "ports": [{"port": 9090}]},  # same pod, another port set
    {"addresses": [{"ip": "10.9.9.9"}], "ports": [{"port": 8080}]},  # not a pod
]}
PODS = {"web-1-a": "1.0.0", "web-2-a": "2.0.0", "web-2-b": "2.0.0", "web-2-c": "2.0.0"}


def test_endpoint_pods_counts_pods_once():
    ready, not_ready = ke.endpoint_pods(ENDPOINTS)
    assert ready == ["ip:10.9.9.9", "web-1-a", "web-2-a", "web-2-b"]
    assert not_ready == ["web-2-c"]
    assert ke.endpoint_pods(None) == ([], [])
    assert ke.endpoint_pods({"subsets": None}) == ([], [])


def test_classify_endpoints():
    counts = ke.classify_endpoints(ENDPOINTS, PODS)
    assert counts == {"ready": 4, "not_ready": 1, "by_release": {"1.0.0": 1, "2.0.0": 2, "": 1}}


def test_switched_needs_only_the_release_and_all_of_it():
    only_v2 = {"subsets": [{"addresses": [addr("web-2-a"), addr("web-2-b")]}]}
    assert kt.switched(ke.classify_endpoints(only_v2, PODS), "2.0.0", 2)
    assert not kt.switched(ke.classify_endpoints(only_v2, PODS), "2.0.0", 3)  # one ready pod not listed yet
    assert not kt.switched(ke.classify_endpoints(ENDPOINTS, PODS), "2.0.0", 2)  # old release still listed
    assert not kt.switched(ke.classify_endpoints({"subsets": [{"addresses": [addr("x")]}]}, PODS), "2.0.0", 0)
    assert kt.switched(ke.classify_endpoints({}, PODS), "2.0.0", 0)


def test_pod_releases_skips_unlabelled_pods():
    pods = [{"metadata": {"name": "a", "labels": {kc.LABEL_RELEASE: "1.0.0"}}}, {"metadata": {"name": "b"}}]
    assert ke.pod_releases(pods) == {"a": "1.0.0"}


# -- weights ---------------------------------------------------------------------------------
def test_weights_single_release_selected():
    out = ke.traffic(["2.0.0", "1.0.0"], "release", "2.0.0", {})
    assert out == {"2.0.0": {"live": True, "weight": 100}, "1.0.0": {"live": False, "weight": 0}}


def test_weights_app_selector_from_ready_addresses():
    out = ke.traffic(["2.0.0", "1.0.0", "0.9.0"], "app", None, {"2.0.0": 1, "1.0.0": 3})
    assert out == {"2.0.0": {"live": True, "weight": 25}, "1.0.0": {"live": True, "weight": 75},
                   "0.9.0": {"live": False, "weight": 0}}


def test_weights_round_half_up_and_tiny_share_is_still_live():
    out = ke.traffic(["a", "b"], "app", None, {"a": 1, "b": 7})  # 12.5 / 87.5
    assert (out["a"]["weight"], out["b"]["weight"]) == (13, 88)
    out = ke.traffic(["a", "b"], "app", None, {"a": 1, "b": 299})
    assert out["a"] == {"live": True, "weight": 0}


def test_weights_no_service_or_no_ready_address():
    assert ke.traffic(["a"], "none", None, {"a": 2}) == {"a": {"live": False, "weight": 0}}
    assert ke.traffic(["a"], "app", None, {}) == {"a": {"live": False, "weight": 0}}


# -- release views ---------------------------------------------------------------------------
def deployment(replicas=2, ready=2, conditions=None, ann_replicas="4"):
    ann = {kc.ANN_DIGEST: "sha256:" + "a" * 64, kc.ANN_IMAGE: "reg/web@sha256:" + "a" * 64,
           kc.ANN_CREATED: "2024-05-01T10:00:00Z"}
    if ann_replicas is not None:
        ann[kc.ANN_REPLICAS] = ann_replicas
    return {"metadata": {"name": "web-2-0-0", "creationTimestamp": "2024-05-01T10:00:01Z",
                         "labels": {kc.LABEL_APP: APP, kc.LABEL_RELEASE: "2.0.0", kc.LABEL_SLOT: "green"},
                         "annotations": ann},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": "x"}]}}},
            "status": {"readyReplicas": ready, "conditions": conditions or []}}


def test_release_view_fields():
    view = kr.release_view(deployment(), [])
    assert view == {"id": "2.0.0", "name": "web-2-0-0", "slot": "green", "digest": "sha256:" + "a" * 64,
                    "image": "reg/web@sha256:" + "a" * 64, "replicas": 2, "full_replicas": 4, "ready_replicas": 2,
                    "state": "running", "health": "healthy", "created": "2024-05-01T10:00:00Z",
                    "canary": None, "scale_down_at": None}


@pytest.mark.parametrize("replicas,ready,state,health", [
    (2, 2, "running", "healthy"), (2, 1, "partial", "progressing"), (0, 0, "stopped", "healthy"),
    (2, None, "partial", "progressing"), (1, 2, "partial", "healthy"),
])
def test_release_state_and_health(replicas, ready, state, health):
    view = kr.release_view(deployment(replicas, ready), [])
    assert (view["state"], view["health"]) == (state, health)


def test_unhealthy_when_deadline_missed_or_pod_cannot_start():
    missed = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
    assert kr.release_view(deployment(2, 1, missed), [])["health"] == "unhealthy"
    crashing = {"status": {"phase": "Running", "containerStatuses": [
        {"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert kr.release_view(deployment(2, 1), [crashing])["health"] == "unhealthy"
    starting = {"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert kr.release_view(deployment(2, 1), [starting])["health"] == "progressing"


def test_full_replicas_defaults_to_spec_and_image_to_container():
    dep = deployment(ann_replicas=None)
    del dep["metadata"]["annotations"][kc.ANN_IMAGE]
    view = kr.release_view(dep, [])
    assert view["full_replicas"] == 2 and view["image"] == "x"


def test_pod_ready():
    assert rollout.pod_ready({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert not rollout.pod_ready({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
    assert not rollout.pod_ready({})


def test_refuse_unready_names_release_and_counts():
    dep = deployment(2, 1)
    with pytest.raises(DeployError) as err:
        kt.refuse_unready(APP, "2.0.0", dep, APP)
    assert "'2.0.0'" in err.value.msg and "1 of 2 replicas ready" in err.value.msg
    with pytest.raises(DeployError) as err:
        kt.refuse_unready(APP, "2.0.0", deployment(0, 0), APP)
    assert "0 of 0" in err.value.msg
    kt.refuse_unready(APP, "2.0.0", deployment(2, 2), APP)


def test_validate_names_uses_the_option_name():
    kr.validate_names({"app": APP, "release": "1.0.0", "stable_release": None}, "release", "stable_release")
    with pytest.raises(DeployError) as err:
        kr.validate_names({"app": APP, "release": "1.0.0", "stable_release": "bad/id"}, "release", "stable_release")
    assert "option 'stable_release'" in err.value.msg
    with pytest.raises(DeployError) as err:
        kr.validate_names({"app": "Web"}, "release")
    assert "'app'" in err.value.msg


# -- order of writes (a fake cluster that records calls) ------------------------------------
class FakeClient:
    """The one client, faked: Deployments scale instantly; Endpoints list the ready pods the
    selector matches. Writes are recorded as (what, name, value, dry_run)."""

    def __init__(self, replicas, selector, full="4"):
        self.ns, self.calls = "ns", []
        self.replicas, self.selector, self.full = dict(replicas), selector, full

    def _pods(self):
        return [{"metadata": {"name": "%s-%d" % (r, i), "labels": {kc.LABEL_RELEASE: r}}}
                for r, n in self.replicas.items() for i in range(n)]

    def get(self, kind, name, missing_ok=True):
        if kind == "Deployment":
            release = next((r for r in self.replicas if kc.object_name(APP, r) == name), None)
            if release is None:
                return None
            n = self.replicas[release]
            return {"metadata": {"name": name, "labels": {kc.LABEL_APP: APP, kc.LABEL_RELEASE: release},
                                 "annotations": {kc.ANN_REPLICAS: self.full} if self.full else {}},
                    "spec": {"replicas": n}, "status": {"readyReplicas": n}}
        if kind == "Service":
            return None if self.selector is None else {"spec": {"selector": self.selector}}
        if kind == "Endpoints":
            sel = self.selector or {}
            pods = [p["metadata"]["name"] for p in self._pods()
                    if kc.LABEL_RELEASE not in sel or p["metadata"]["labels"][kc.LABEL_RELEASE] == sel[kc.LABEL_RELEASE]]
            return {"subsets": [{"addresses": [addr(p) for p in pods]}]}
        raise AssertionError(kind)

    def list(self, kind, label_selector=None, field_selector=None):
        if kind == "Deployment":
            return [self.get("Deployment", kc.object_name(APP, r)) for r in self.replicas]
        if kind == "Service":
            return [] if self.selector is None else [{"spec": {"selector": self.selector}}]
        assert kind == "Pod", kind
        return self._pods()

    def patch(self, kind, name, body, dry_run=False, what=None, merge=False):
        dry = "All" if dry_run else None
        if kind == "Deployment":
            self.calls.append(("scale", name, body[0]["value"], dry))
            if not dry_run:
                self.replicas[name.split("-", 1)[1].replace("-", ".")] = body[0]["value"]
        else:
            self.calls.append(("selector", name, body[-1]["value"], dry))
            if not dry_run:
                self.selector = body[-1]["value"]
        return {}

    def create(self, kind, body, dry_run=False, exists_ok=False):
        self.calls.append(("create", body["metadata"]["name"], body["spec"]["selector"], "All" if dry_run else None))
        if not dry_run:
            self.selector = body["spec"]["selector"]
        return body


def FakeCluster(replicas, selector, full="4"):  # pylint: disable=invalid-name
    """Releases (the real reading code) over the fake client."""
    cluster = kr.Releases(FakeClient(replicas, selector, full))
    cluster.calls = cluster.client.calls
    return cluster


def ratio_params(weight, **extra):
    p = {"app": APP, "release": "2.0.0", "stable_release": "1.0.0", "weight": weight, "service": None,
         "total_replicas": None, "wait": True, "wait_timeout": 5, "require_ready": True,
         "service_ports": [{"port": 80, "target_port": 8080, "name": "http", "protocol": "TCP"}]}
    p.update(extra)
    return p


def test_replica_ratio_grows_first_then_moves_selector_then_shrinks():
    fake = FakeCluster({"2.0.0": 0, "1.0.0": 4}, kc.selector_for(APP, "1.0.0"))
    out = kt.replica_ratio(fake, ratio_params(25), check_mode=False)
    assert fake.calls == [("scale", "web-2-0-0", 1, None), ("selector", APP, kc.selector_for(APP), None),
                          ("scale", "web-1-0-0", 3, None)]
    assert out["weights"] == {"2.0.0": 25, "1.0.0": 75} and out["changed"]
    fake.calls.clear()
    out = kt.replica_ratio(fake, ratio_params(0), check_mode=False)  # going down: stable grows first
    assert fake.calls == [("scale", "web-1-0-0", 4, None), ("scale", "web-2-0-0", 0, None)]
    fake.calls.clear()
    assert kt.replica_ratio(fake, ratio_params(0), check_mode=False)["changed"] is False
    assert fake.calls == []


def test_replica_ratio_check_mode_is_dry_run_and_bad_ratio_writes_nothing():
    fake = FakeCluster({"2.0.0": 0, "1.0.0": 4}, None)
    out = kt.replica_ratio(fake, ratio_params(50), check_mode=True)
    assert [c[3] for c in fake.calls] == ["All", "All", "All"] and out["action"] == "create"
    assert fake.client.replicas == {"2.0.0": 0, "1.0.0": 4} and fake.client.selector is None
    fake.calls.clear()
    with pytest.raises(DeployError):
        kt.replica_ratio(fake, ratio_params(30), check_mode=False)
    with pytest.raises(DeployError) as err:
        kt.replica_ratio(FakeCluster({"2.0.0": 0, "1.0.0": 4}, None, full=None), ratio_params(50), False)
    assert "'total_replicas'" in err.value.msg
    assert fake.calls == []


def test_switch_service_one_patch_and_refusal_before_any_write():
    fake = FakeCluster({"2.0.0": 2, "1.0.0": 2}, kc.selector_for(APP, "1.0.0"))
    p = dict(ratio_params(None), restore_replicas=False)
    out = kt.switch_service(fake, p, check_mode=False)
    assert fake.calls == [("selector", APP, kc.selector_for(APP, "2.0.0"), None)]
    assert out["previous_release"] == "1.0.0" and out["endpoints"] == {"release": "2.0.0", "ready": 2, "other": 0}
    fake = FakeCluster({"2.0.0": 0, "1.0.0": 2}, kc.selector_for(APP, "1.0.0"))
    with pytest.raises(DeployError) as err:
        kt.switch_service(fake, p, check_mode=False)
    assert "0 of 0 replicas ready" in err.value.msg and fake.calls == []
    out = kt.switch_service(fake, dict(p, restore_replicas=True), check_mode=False)  # rollback: full size first
    assert fake.calls == [("scale", "web-2-0-0", 4, None), ("selector", APP, kc.selector_for(APP, "2.0.0"), None)]
    assert out["restored"] == {"release": "2.0.0", "replicas_before": 0, "replicas": 4}
