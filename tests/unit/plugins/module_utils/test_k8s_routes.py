from __future__ import annotations

import copy

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import routes as kr
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import MERGE_PATCH, ApiException, Client
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError


def _p(**kw):
    p = dict(app="web", namespace="ns", request_timeout=5, service=None, canary_service="web-canary", weight=10,
             header=None, header_value=None, cookie=None, ingress="web", httproute="web", state="present")
    p.update(kw)
    return p


MAIN = {"metadata": {"name": "web", "namespace": "ns", "annotations": {kr.ANN_CLASS: "nginx"}},
        "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["a.example"]}], "rules": [
            {"host": "a.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/admin", "pathType": "Exact",
                 "backend": {"service": {"name": "admin", "port": {"number": 81}}}}]}},
            {"http": {"paths": [{"path": "/x", "pathType": "Prefix",
                                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}}


@pytest.mark.parametrize("kw, option", [
    (dict(weight=101), "weight"), (dict(weight=-1), "weight"), (dict(weight=True), "weight"),
    (dict(weight="10"), "weight"), (dict(canary_service=None), "canary_service"),
    (dict(canary_service="Web_Canary"), "canary_service"), (dict(canary_service="web"), "canary_service"),
    (dict(header_value="yes"), "header_value"), (dict(header="X Canary"), "header"),
    (dict(header="X-C", header_value="a\nb"), "header_value"), (dict(cookie="bad;cookie"), "cookie"),
    (dict(weight=None), "weight"), (dict(state="gone"), "state"), (dict(app="a b"), "app"),
])
def test_validation_names_the_option(kw, option):
    with pytest.raises(DeployError) as err:
        kr.validate(_p(**kw), "ingress_nginx")
    assert err.value.details["option"] == option and "'%s'" % option in err.value.msg


def test_validation_defaults_and_gateway_cookie():
    split = kr.validate(_p(weight=None, header="X-Canary", state="present"), "ingress_nginx")
    assert (split.service, split.weight, split.weights()) == ("web", 0, {"web": 100, "web-canary": 0})
    assert kr.validate(_p(weight=None, state="absent"), "gateway").weights() == {"web": 100, "web-canary": 0}
    with pytest.raises(DeployError, match="cookie") as err:
        kr.validate(_p(cookie="canary"), "gateway")
    assert err.value.details["option"] == "cookie"


def test_canary_ingress_copies_stable_paths_only():
    split = kr.validate(_p(weight=10, header="X-Canary", header_value="yes", cookie="canary"), "ingress_nginx")
    body = kr.canary_ingress(MAIN, split, "web-canary")
    assert body["metadata"]["annotations"] == {
        kr.ANN_CANARY: "true", kr.ANN_WEIGHT: "10", kr.ANN_HEADER: "X-Canary", kr.ANN_HEADER_VALUE: "yes",
        kr.ANN_COOKIE: "canary", kr.ANN_CLASS: "nginx"}
    assert body["metadata"]["labels"] == {"immutable-deploy.io/app": "web",
                                          "app.kubernetes.io/managed-by": "immutable.deploy"}
    assert body["spec"] == {"ingressClassName": "nginx", "rules": [
        {"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
            "service": {"name": "web-canary", "port": {"number": 80}}}}]}},
        {"http": {"paths": [{"path": "/x", "pathType": "Prefix", "backend": {
            "service": {"name": "web-canary", "port": {"name": "http"}}}}]}}]}
    with pytest.raises(DeployError) as err:
        kr.canary_ingress(MAIN, kr.validate(_p(service="other"), "ingress_nginx"), "web-canary")
    assert err.value.details["option"] == "service"


def test_ingress_patch_nulls_stale_keys():
    current = {"metadata": {"resourceVersion": "7", "annotations": {kr.ANN_HEADER: "X-Old", "team": "a"}},
               "spec": {"rules": [], "tls": []}}
    desired = kr.canary_ingress(MAIN, kr.validate(_p(weight=5), "ingress_nginx"), "web-canary")
    patch = kr.ingress_patch(current, desired)
    assert patch["metadata"]["resourceVersion"] == "7"
    assert patch["metadata"]["annotations"][kr.ANN_HEADER] is None and "team" not in patch["metadata"]["annotations"]
    assert patch["spec"]["tls"] is None and patch["spec"]["rules"] == desired["spec"]["rules"]


def _ref(name, **kw):
    return dict({"name": name, "port": 8080}, **kw)


RULES = [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [_ref("web")]},
         {"backendRefs": [_ref("other")]}]


def test_route_weights_and_header_rule():
    split = kr.validate(_p(weight=20, header="X-Canary"), "gateway")
    rules = kr.route_rules(copy.deepcopy(RULES), split, "web")
    assert rules[0] == {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "headers": [
        {"type": "Exact", "name": "X-Canary", "value": "always"}]}], "backendRefs": [_ref("web-canary", weight=1)]}
    assert rules[1]["backendRefs"] == [_ref("web", weight=80), _ref("web-canary", weight=20)]
    assert rules[2] == RULES[1]
    # reapplying is a no-op, dropping the header removes our rule, absent restores stable only
    assert kr.route_rules(copy.deepcopy(rules), split, "web") == rules
    assert kr.route_rules(rules, kr.validate(_p(weight=20), "gateway"), "web") == rules[1:]
    absent = kr.route_rules(rules, kr.validate(_p(state="absent"), "gateway"), "web")
    assert absent == [dict(RULES[0], backendRefs=[_ref("web", weight=100)]), RULES[1]]
    # an untouched route stays untouched on absent
    assert kr.route_rules(RULES, kr.validate(_p(state="absent"), "gateway"), "web") == RULES


def test_route_refuses_to_drop_foreign_backends_or_miss_the_service():
    split = kr.validate(_p(), "gateway")
    with pytest.raises(DeployError, match="other") as err:
        kr.route_rules([{"backendRefs": [_ref("web"), _ref("other")]}], split, "web")
    assert err.value.details["option"] == "httproute"
    with pytest.raises(DeployError) as err:
        kr.route_rules([{"backendRefs": [_ref("other")]}], split, "web")
    assert err.value.details["option"] == "service"
    # a Service of the same name in another namespace is not ours
    with pytest.raises(DeployError):
        kr.route_rules([{"backendRefs": [_ref("web", namespace="elsewhere")]}], split, "web")


def test_normalize_fills_crd_defaults():
    plain = [{"backendRefs": [_ref("web")], "matches": [{"headers": [{"name": "X", "value": "1"}]}]}]
    defaulted = [{"backendRefs": [_ref("web", group="", kind="Service", weight=1)],
                  "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                               "headers": [{"type": "Exact", "name": "X", "value": "1"}]}]}]
    assert kr.normalize_rules(plain) == kr.normalize_rules(defaulted)
    assert kr.normalize_rules(plain) != kr.normalize_rules([dict(plain[0], backendRefs=[_ref("web", weight=2)])])


class _FakeCustomObjects:
    def __init__(self, served, route=None):
        self.served, self.route, self.patches = served, route, []

    def get_api_resources(self, group, version, **_):
        if version not in self.served:
            raise ApiException(status=404, reason="Not Found")
        return {"resources": [{"name": "httproutes"}]}

    def get_namespaced_custom_object(self, group, version, ns, plural, name, **_):
        if self.route is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.route)

    def patch_namespaced_custom_object(self, group, version, ns, plural, name, body, **kw):
        self.patches.append((version, body, kw))
        return dict(self.route, spec=dict(self.route["spec"], **body["spec"]))


class _Holder(dict):
    """fake_co["co"] = fake CustomObjectsApi; fake_co.client is the real Client calling it."""

    @property
    def client(self):
        from kubernetes.client import ApiClient
        client = Client({"namespace": "ns"}, api=ApiClient())
        client._apis["CustomObjectsApi"] = self["co"]  # pylint: disable=protected-access
        return client


@pytest.fixture
def fake_co():
    return _Holder()


def test_gateway_not_installed_names_strategy(fake_co):
    fake_co["co"] = _FakeCustomObjects(served=())
    with pytest.raises(DeployError, match=r"Gateway API is not installed on this cluster \(no httproutes\.gateway"
                                          r"\.networking\.k8s\.io\)") as err:
        kr.apply_httproute_weights(fake_co.client, _p(), False)
    assert err.value.details["option"] == "strategy"


def test_gateway_v1beta1_check_mode_and_idempotency(fake_co):
    route = {"apiVersion": "gateway.networking.k8s.io/v1beta1",
             "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "3"}, "spec": {"rules": RULES}}
    fake_co["co"] = co = _FakeCustomObjects(served=("v1beta1",), route=route)
    out = kr.apply_httproute_weights(fake_co.client, _p(weight=20), True)
    version, body, kw = co.patches[0]
    assert (version, kw["dry_run"], kw["_content_type"]) == ("v1beta1", "All", MERGE_PATCH)
    assert body["metadata"] == {"resourceVersion": "3"}
    assert out["changed"] and out["weights"] == {"web": 80, "web-canary": 20}
    assert out["after"]["spec"]["rules"][0]["backendRefs"][1] == _ref("web-canary", weight=20)
    co.route = dict(route, spec={"rules": out["after"]["spec"]["rules"]})
    again = kr.apply_httproute_weights(fake_co.client, _p(weight=20), False)
    assert not again["changed"] and len(co.patches) == 1 and again["api_version"].endswith("/v1beta1")


def test_gateway_missing_route_names_httproute(fake_co):
    fake_co["co"] = _FakeCustomObjects(served=("v1",))
    with pytest.raises(DeployError) as err:
        kr.apply_httproute_weights(fake_co.client, _p(), False)
    assert err.value.details["option"] == "httproute" and "not found" in err.value.msg
