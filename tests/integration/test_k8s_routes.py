"""k8s/routes.py against the real cluster: the ingress-nginx canary Ingress and HTTPRoute weights.

No ingress controller or Gateway runs here, so the tests read back what a router would read:
the canary Ingress's annotations and backends, the HTTPRoute's rules and weights.
"""
from __future__ import annotations

import os
import time

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import client as kclient
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import routes as kr
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from conftest import HERE, ROOT, kubectl

from kubernetes import client

CRD = "httproutes.gateway.networking.k8s.io"
CRD_FILE = os.path.join(HERE, "files", "httproute-crd.yaml")
NGINX = "nginx.ingress.kubernetes.io/"


@pytest.fixture(scope="module")
def api(kubeconfig):
    return kclient.connect({"kubeconfig": kubeconfig})


def ingress(api, p, check_mode):
    return kr.apply_ingress_canary(kclient.Client(p, api=api), p, check_mode)


def httproute(api, p, check_mode):
    return kr.apply_httproute_weights(kclient.Client(p, api=api), p, check_mode)


def _crd_present() -> bool:
    return kubectl("get", "crd", CRD, check=False).returncode == 0


def _custom_resource_writes_crash(api) -> str:
    """Why this apiserver would die on a custom-resource write ('' when it will not).

    Kubernetes < 1.23 vendors reflect2 v1.0.1, whose map iteration faults when built with
    Go >= 1.18 (modern-go/reflect2#26): the apiserver exits on the first CR create. Official
    builds used older Go; tests/k8s/reflect2.patch fixes a source build like the harness's.
    """
    info = client.VersionApi(api).get_code()
    minor = int("".join(c for c in info.minor if c.isdigit()) or 0)
    go = tuple(int(x) for x in info.go_version.lstrip("go").split(".")[:2] if x.isdigit())
    patched = os.path.exists(os.path.join(ROOT, "tests", "k8s", "reflect2.patch"))
    if info.major == "1" and minor < 23 and go >= (1, 18) and not patched \
            and os.environ.get("IMMUTABLE_DEPLOY_K8S_CR_SAFE") != "1":
        return ("kube-apiserver %s built with %s vendors reflect2 v1.0.1 and crashes on any custom-resource "
                "write; add tests/k8s/reflect2.patch and rebuild (or set IMMUTABLE_DEPLOY_K8S_CR_SAFE=1 for a "
                "fixed build)" % (info.git_version, info.go_version))
    return ""


@pytest.fixture(scope="module")
def httproute_crd(api):
    """The stand-in HTTPRoute CRD, installed if absent and removed again if we installed it."""
    reason = _custom_resource_writes_crash(api)
    if reason:
        pytest.skip(reason)
    installed = not _crd_present()
    if installed:
        kubectl("apply", "-f", CRD_FILE)
        kubectl("wait", "--for=condition=established", "--timeout=60s", "crd/" + CRD)
    co = client.CustomObjectsApi(api)
    for _attempt in range(100):  # discovery can lag the Established condition
        try:
            if any(r.name == "httproutes" for r in co.get_api_resources(kr.GATEWAY_GROUP, "v1").resources):
                break
        except client.ApiException:
            pass
        time.sleep(0.1)
    yield
    if installed:
        kubectl("delete", "crd", CRD, check=False)


def _p(ns, **kw):
    p = dict(app="web", namespace=ns, request_timeout=20, service=None, canary_service="web-canary", weight=10,
             header=None, header_value=None, cookie=None, ingress="web", httproute="web", state="present")
    p.update(kw)
    return p


def _services(api, ns):
    core = client.CoreV1Api(api)
    for name in ("web", "web-canary", "other"):
        core.create_namespaced_service(ns, {"metadata": {"name": name}, "spec": {
            "selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})


def _error(func, *args) -> DeployError:
    with pytest.raises(DeployError) as err:
        func(*args)
    return err.value


def test_ingress_canary(api, k8s_namespace):
    ns, net = k8s_namespace, client.NetworkingV1Api(api)
    _services(api, ns)
    assert _error(ingress, api, _p(ns), False).details["option"] == "ingress"  # no main yet
    net.create_namespaced_ingress(ns, {"metadata": {"name": "web"}, "spec": {"ingressClassName": "nginx", "rules": [
        {"host": "shop.example", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
            {"path": "/other", "pathType": "Prefix",
             "backend": {"service": {"name": "other", "port": {"number": 80}}}}]}}]}})

    def canary():
        return api.sanitize_for_serialization(net.read_namespaced_ingress("web-canary", ns))

    def exists():
        return kubectl("get", "ingress", "web-canary", "-n", ns, check=False).returncode == 0

    # check mode: the server validates the create, nothing is written
    dry = ingress(api, _p(ns), True)
    assert dry["changed"] and dry["after"]["metadata"]["annotations"][NGINX + "canary-weight"] == "10"
    assert not exists()

    out = ingress(api, _p(ns), False)
    assert out["changed"] and out["before"] == {} and out["weights"] == {"web": 90, "web-canary": 10}
    obj = canary()
    assert {k: v for k, v in obj["metadata"]["annotations"].items() if k.startswith(NGINX)} == {
        NGINX + "canary": "true", NGINX + "canary-weight": "10"}
    assert obj["metadata"]["labels"] == {"immutable-deploy.io/app": "web",
                                         "app.kubernetes.io/managed-by": "immutable.deploy"}
    assert obj["spec"] == {"ingressClassName": "nginx", "rules": [{"host": "shop.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}}]}}]}
    assert not ingress(api, _p(ns), False)["changed"]

    # header + cookie routing, then back to weight only: the stale annotations go
    routed = _p(ns, weight=25, header="X-Canary", header_value="yes", cookie="canary")
    assert ingress(api, routed, False)["changed"]
    ann = canary()["metadata"]["annotations"]
    assert (ann[NGINX + "canary-weight"], ann[NGINX + "canary-by-header"], ann[NGINX + "canary-by-header-value"],
            ann[NGINX + "canary-by-cookie"]) == ("25", "X-Canary", "yes", "canary")
    assert not ingress(api, routed, False)["changed"]
    version = canary()["metadata"]["resourceVersion"]
    dry = ingress(api, _p(ns, weight=50), True)
    assert dry["changed"] and dry["after"]["metadata"]["annotations"][NGINX + "canary-weight"] == "50"
    assert canary()["metadata"]["resourceVersion"] == version
    ingress(api, _p(ns, weight=50), False)
    assert not [k for k in canary()["metadata"]["annotations"] if "by-" in k]

    # bad input fails before any write
    version = canary()["metadata"]["resourceVersion"]
    for bad, option in ((dict(weight=101), "weight"), (dict(header_value="x"), "header_value"),
                        (dict(cookie="a=b"), "cookie"), (dict(canary_service=None), "canary_service"),
                        (dict(service="nope"), "service")):
        assert _error(ingress, api, _p(ns, **bad), False).details["option"] == option
    assert canary()["metadata"]["resourceVersion"] == version

    # absent: check mode keeps it, then it is deleted, then nothing to do
    assert ingress(api, _p(ns, state="absent"), True)["changed"] and exists()
    gone = ingress(api, _p(ns, state="absent"), False)
    assert gone["changed"] and gone["after"] == {} and gone["weights"] == {"web": 100, "web-canary": 0}
    assert not exists()
    assert not ingress(api, _p(ns, state="absent"), False)["changed"]
    # an abort still cleans up when the main Ingress is already gone
    ingress(api, _p(ns), False)
    net.delete_namespaced_ingress("web", ns)
    assert ingress(api, _p(ns, state="absent"), False)["changed"] and not exists()

    # an Ingress of that name that is not ours is never deleted (nor overwritten)
    net.create_namespaced_ingress(ns, {"metadata": {"name": "web-canary"}, "spec": {
        "defaultBackend": {"service": {"name": "other", "port": {"number": 80}}}}})
    assert "not managed by immutable.deploy" in _error(ingress, api, _p(ns, state="absent"),
                                                       False).msg
    assert exists()


def test_gateway_not_installed(api, k8s_namespace):
    """Runs before the CRD fixture is first used, i.e. on a cluster without Gateway API."""
    if _crd_present():
        pytest.skip("%s already exists on this cluster (not installed by this module)" % CRD)
    err = _error(httproute, api, _p(k8s_namespace, weight=20), False)
    assert err.msg.startswith("Gateway API is not installed on this cluster (no %s):" % CRD)
    assert err.details["option"] == "strategy"


def test_httproute_weights(api, httproute_crd, k8s_namespace):  # pylint: disable=unused-argument
    ns, co = k8s_namespace, client.CustomObjectsApi(api)
    args = (kr.GATEWAY_GROUP, "v1", ns, "httproutes")
    assert _error(httproute, api, _p(ns), False).details["option"] == "httproute"
    other = {"matches": [{"path": {"type": "PathPrefix", "value": "/other"}}],
             "backendRefs": [{"name": "other", "port": 80}]}
    co.create_namespaced_custom_object(*args, {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "web"},
        "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["shop.example"],
                 "rules": [{"backendRefs": [{"name": "web", "port": 80}]}, other]}})

    def rules():
        return co.get_namespaced_custom_object(*args, "web")["spec"]["rules"]

    def version():
        return co.get_namespaced_custom_object(*args, "web")["metadata"]["resourceVersion"]

    start = version()
    dry = httproute(api, _p(ns, weight=20), True)
    assert dry["changed"] and [r["weight"] for r in dry["after"]["spec"]["rules"][0]["backendRefs"]] == [80, 20]
    assert version() == start

    out = httproute(api, _p(ns, weight=20), False)
    assert out["changed"] and out["weights"] == {"web": 80, "web-canary": 20}
    assert out["api_version"] == "gateway.networking.k8s.io/v1"
    assert rules() == [{"backendRefs": [{"name": "web", "port": 80, "weight": 80},
                                        {"name": "web-canary", "port": 80, "weight": 20}]}, other]
    assert not httproute(api, _p(ns, weight=20), False)["changed"]

    # a header rule comes first and sends matching requests to the canary only
    assert httproute(api, _p(ns, weight=20, header="X-Canary", header_value="yes"), False)["changed"]
    got = rules()
    assert got[0] == {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                   "headers": [{"type": "Exact", "name": "X-Canary", "value": "yes"}]}],
                      "backendRefs": [{"name": "web-canary", "port": 80, "weight": 1}]}
    assert got[1:] == [{"backendRefs": [{"name": "web", "port": 80, "weight": 80},
                                        {"name": "web-canary", "port": 80, "weight": 20}]}, other]
    assert not httproute(api, _p(ns, weight=20, header="X-Canary", header_value="yes"), False)["changed"]

    # bad input: named, and nothing written
    before = version()
    for bad, option in ((dict(weight=101), "weight"), (dict(cookie="canary"), "cookie"),
                        (dict(header="X-Canary", header_value="a\tb"), "header_value"),
                        (dict(canary_service="web"), "canary_service"),
                        (dict(service="nope", canary_service="nope-canary"), "service"),
                        (dict(service="other"), "httproute")):  # would drop web: refused
        assert _error(httproute, api, _p(ns, **bad), False).details["option"] == option
    assert version() == before

    # absent: our rule goes, the stable Service takes everything; the same through v1beta1
    gone = httproute(api, _p(ns, state="absent"), False)
    assert gone["changed"] and gone["weights"] == {"web": 100, "web-canary": 0}
    assert rules() == [{"backendRefs": [{"name": "web", "port": 80, "weight": 100}]}, other]
    assert not httproute(api, _p(ns, state="absent"), False)["changed"]
    beta = co.get_namespaced_custom_object(kr.GATEWAY_GROUP, "v1beta1", ns, "httproutes", "web")
    assert beta["spec"]["rules"][0]["backendRefs"] == [{"name": "web", "port": 80, "weight": 100}]
