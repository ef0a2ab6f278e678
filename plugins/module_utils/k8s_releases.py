# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading an app's releases and its traffic from the cluster.

A release is one Deployment; which releases take traffic is read from the
Service's selector and, when it selects the whole app, from the ready addresses
of its Endpoints. Nothing is kept on the controller. The pure functions here
(views, modes, weights, endpoint classification) are also used by k8s_traffic.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils import k8s_common as kc
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s_wait import FAST_FAIL_REASONS
from ansible_collections.immutable.deploy.plugins.module_utils.release import validate_app, validate_release

# Waiting reasons after which a pod will not become ready by itself: the ones k8s_release fails fast on.
BAD_WAITING = FAST_FAIL_REASONS


# -- pure logic ------------------------------------------------------------------------------
def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def pod_ready(pod: Dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_broken(pod: Dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    for cs in status.get("containerStatuses") or []:
        if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in BAD_WAITING:
            return True
    return False


def pod_releases(pods: List[Dict[str, Any]]) -> Dict[str, str]:
    """Pod name -> release id (from the pod's release label)."""
    out = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        release = (meta.get("labels") or {}).get(kc.LABEL_RELEASE)
        if release is not None:
            out[meta.get("name")] = release
    return out


def endpoint_pods(endpoints: Optional[Dict[str, Any]]) -> Tuple[List[str], List[str]]:
    """(ready, not ready) pod names behind a Service's Endpoints; addresses without a pod are named by IP."""
    ready: List[str] = []
    not_ready: List[str] = []
    for subset in (endpoints or {}).get("subsets") or []:
        for key, bucket in (("addresses", ready), ("notReadyAddresses", not_ready)):
            for addr in subset.get(key) or []:
                ref = addr.get("targetRef") or {}
                bucket.append(ref.get("name") if ref.get("kind", "Pod") == "Pod" and ref.get("name")
                              else "ip:%s" % addr.get("ip"))
    # An address appears once per subset (one subset per port set): count pods, not ports.
    return sorted(set(ready)), sorted(set(not_ready) - set(ready))


def classify_endpoints(endpoints: Optional[Dict[str, Any]], pod_release: Dict[str, str]) -> Dict[str, Any]:
    """Ready addresses per release ('' for addresses whose pod is unknown) and the not-ready count."""
    ready, not_ready = endpoint_pods(endpoints)
    by_release: Dict[str, int] = {}
    for name in ready:
        rel = pod_release.get(name, "")
        by_release[rel] = by_release.get(rel, 0) + 1
    return {"ready": len(ready), "not_ready": len(not_ready), "by_release": by_release}


def service_mode(service: Optional[Dict[str, Any]], app: str) -> Tuple[str, Optional[str]]:
    """('release', id) when the Service selects one release of the app, ('app', None) when it
    selects the whole app, ('none', None) when it is absent or selects something else."""
    if not service:
        return "none", None
    selector = (service.get("spec") or {}).get("selector") or {}
    if selector.get(kc.LABEL_APP) != app:
        return "none", None
    if kc.LABEL_RELEASE in selector:
        return "release", selector[kc.LABEL_RELEASE]
    return "app", None


def percent(part: int, whole: int) -> int:
    """part/whole as a percentage rounded half up (Python's round() would round half to even)."""
    return (200 * part + whole) // (2 * whole) if whole > 0 else 0


def traffic(release_ids: List[str], mode: str, selected: Optional[str],
            ready_by_release: Dict[str, int]) -> Dict[str, Dict[str, Any]]:
    """release id -> {live, weight}. One selected release takes 100; an app-wide selector splits
    by ready addresses (every ready address gets the same share of connections)."""
    total = sum(ready_by_release.values())
    out = {}
    for rid in release_ids:
        if mode == "release":
            weight = 100 if rid == selected else 0
        elif mode == "app":
            weight = percent(ready_by_release.get(rid, 0), total)
        else:
            weight = 0
        live = weight > 0 or (mode == "app" and ready_by_release.get(rid, 0) > 0)
        out[rid] = {"live": live, "weight": weight}
    return out


def release_state(replicas: int, ready: int) -> str:
    if replicas == 0:
        return "stopped"
    return "running" if ready == replicas else "partial"


def release_health(deployment: Dict[str, Any], pods: List[Dict[str, Any]]) -> str:
    """unhealthy: the rollout missed its progress deadline, a replica failed, or a pod cannot start;
    healthy: every wanted replica is ready; progressing otherwise."""
    status = deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False":
            return "unhealthy"
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return "unhealthy"
    if any(pod_broken(p) for p in pods):
        return "unhealthy"
    replicas = _int((deployment.get("spec") or {}).get("replicas"), 1)
    return "healthy" if _int(status.get("readyReplicas")) >= replicas else "progressing"


def release_view(deployment: Dict[str, Any], pods: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The fields the strategy filters read (id, slot, digest, created, state...) from a Deployment."""
    meta = deployment.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    spec = deployment.get("spec") or {}
    replicas = _int(spec.get("replicas"), 1)
    ready = _int((deployment.get("status") or {}).get("readyReplicas"))
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    return {
        "id": labels.get(kc.LABEL_RELEASE),
        "name": meta.get("name"),
        "slot": labels.get(kc.LABEL_SLOT),
        "digest": ann.get(kc.ANN_DIGEST),
        "image": ann.get(kc.ANN_IMAGE) or containers[0].get("image"),
        "replicas": replicas,
        "full_replicas": _int(ann.get(kc.ANN_REPLICAS), replicas),
        "ready_replicas": ready,
        "state": release_state(replicas, ready),
        "health": release_health(deployment, pods),
        "created": ann.get(kc.ANN_CREATED) or meta.get("creationTimestamp"),
    }


def service_view(name: str, service: Optional[Dict[str, Any]], app: str) -> Dict[str, Any]:
    mode, _selected = service_mode(service, app)
    return {"name": name, "exists": service is not None,
            "selector": ((service or {}).get("spec") or {}).get("selector") if service else None,
            "mode": mode}


# -- reading the cluster ---------------------------------------------------------------------
def read_or_none(call: Any, what: str, *args: Any, **kwargs: Any) -> Optional[Dict[str, Any]]:
    """A read_namespaced_* call as a plain dict, None on 404."""
    try:
        obj = call(*args, **kwargs)
    except kc.ApiException as exc:
        if exc.status == 404:
            return None
        raise kc.api_error(exc, what)
    except Exception as exc:  # urllib3 connection errors
        raise kc.api_error(exc, what)
    return kc.to_dict(call.__self__.api_client, obj)


def list_items(call: Any, what: str, *args: Any, **kwargs: Any) -> List[Dict[str, Any]]:
    try:
        obj = call(*args, **kwargs)
    except Exception as exc:  # ApiException or a connection error
        raise kc.api_error(exc, what)
    return kc.to_dict(call.__self__.api_client, obj).get("items") or []


class Cluster(kc.Cluster):
    """Reads by app, so callers pass names only; the namespace must exist."""

    def __init__(self, p: Dict[str, Any]) -> None:
        super().__init__(p)
        kc.check_namespace(self.core, self.ns)

    def deployments(self, app: str) -> List[Dict[str, Any]]:
        return list_items(self.apps.list_namespaced_deployment, "Listing Deployments of %s" % app, self.ns,
                          label_selector=kc.label_selector({kc.LABEL_APP: app}), _request_timeout=self.timeout)

    def pods(self, app: str) -> List[Dict[str, Any]]:
        return list_items(self.core.list_namespaced_pod, "Listing pods of %s" % app, self.ns,
                          label_selector=kc.label_selector({kc.LABEL_APP: app}), _request_timeout=self.timeout)

    def deployment(self, app: str, release: str) -> Optional[Dict[str, Any]]:
        """The release's Deployment, None when absent (or when the name belongs to another release)."""
        name = kc.object_name(app, release)
        dep = read_or_none(self.apps.read_namespaced_deployment, "Reading Deployment %s" % name, name, self.ns,
                           _request_timeout=self.timeout)
        labels = ((dep or {}).get("metadata") or {}).get("labels") or {}
        if dep is None or labels.get(kc.LABEL_APP) != app or labels.get(kc.LABEL_RELEASE) != release:
            return None
        return dep

    def service(self, name: str) -> Optional[Dict[str, Any]]:
        return read_or_none(self.core.read_namespaced_service, "Reading Service %s" % name, name, self.ns,
                            _request_timeout=self.timeout)

    def endpoints(self, name: str) -> Optional[Dict[str, Any]]:
        return read_or_none(self.core.read_namespaced_endpoints, "Reading Endpoints %s" % name, name, self.ns,
                            _request_timeout=self.timeout)

    def existing_release(self, app: str, release: str, option: str = "release") -> Dict[str, Any]:
        """The Deployment of a release that must exist, else an error listing the releases there."""
        dep = self.deployment(app, release)
        if dep is None:
            ids = sorted(((d.get("metadata") or {}).get("labels") or {}).get(kc.LABEL_RELEASE, "?")
                         for d in self.deployments(app))
            raise DeployError("Option '%s': release %r of app %r does not exist in namespace %s (no Deployment %s "
                              "labelled with it). Releases there: %s."
                              % (option, release, app, self.ns, kc.object_name(app, release), ", ".join(ids) or "none"),
                              option=option)
        return dep


def validate_names(p: Dict[str, Any], *options: str) -> None:
    validate_app(p["app"])
    for option in options:
        if p.get(option) is not None:
            try:
                validate_release(p[option])
            except DeployError as exc:
                raise DeployError(exc.msg.replace("option 'release'", "option '%s'" % option), option=option)


def info(p: Dict[str, Any]) -> Dict[str, Any]:
    validate_names(p, "release")
    app = p["app"]
    service_name = p.get("service") or app
    preview_name = p.get("preview_service") or "%s-preview" % app
    cluster = Cluster(p)
    deployments = [d for d in cluster.deployments(app)
                   if kc.LABEL_RELEASE in ((d.get("metadata") or {}).get("labels") or {})]
    pods = cluster.pods(app)
    pods_by_release: Dict[str, List[Dict[str, Any]]] = {}
    for pod in pods:
        rel = ((pod.get("metadata") or {}).get("labels") or {}).get(kc.LABEL_RELEASE, "")
        pods_by_release.setdefault(rel, []).append(pod)
    releases = []
    for dep in deployments:
        rid = dep["metadata"]["labels"][kc.LABEL_RELEASE]
        releases.append(release_view(dep, pods_by_release.get(rid, [])))
    releases.sort(key=lambda r: (r["created"] or "", r["name"] or ""), reverse=True)

    service = cluster.service(service_name)
    mode, selected = service_mode(service, app)
    ready_by_release: Dict[str, int] = {}
    if mode == "app":
        endpoints = cluster.endpoints(service_name)
        if endpoints is not None:
            ready_by_release = classify_endpoints(endpoints, pod_releases(pods))["by_release"]
        else:  # the endpoints controller has not written it yet: ready pods are what it will list
            for rel, group in pods_by_release.items():
                ready_by_release[rel] = sum(1 for pod in group if pod_ready(pod))
    weights = traffic([r["id"] for r in releases], mode, selected, ready_by_release)
    preview = cluster.service(preview_name)
    preview_mode, preview_release = service_mode(preview, app)
    for rel in releases:
        rel.update(weights[rel["id"]])
        rel["preview"] = preview_mode == "release" and preview_release == rel["id"]
    if p.get("release") is not None:
        releases = [r for r in releases if r["id"] == p["release"]]
    return {"changed": False, "releases": releases, "service": service_view(service_name, service, app),
            "preview_service": service_view(preview_name, preview, app)}
