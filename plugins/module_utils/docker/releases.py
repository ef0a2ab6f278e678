# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading an app's releases on a Docker host, and what its router sends them.

Truth lives on the host: a release is whatever containers carry its labels, so two
operators (or two throwaway AWX runs) always see the same thing; live and weight come
from the router, and a router that points at containers its slots do not hold is
reported (router_check.py).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils import plan
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.docker import ports as host_ports
from ansible_collections.immutable.deploy.plugins.module_utils.docker import router_check
from ansible_collections.immutable.deploy.plugins.module_utils.docker import spec
from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import Engine
from ansible_collections.immutable.deploy.plugins.module_utils.routers.base import RouterRef, endpoint_key, router_for


def labels_of(c: Dict[str, Any]) -> Dict[str, str]:
    return (c.get("Config") or {}).get("Labels") or {}


def binding(c: Dict[str, Any]) -> Tuple[Optional[str], Optional[int]]:
    """The published host address and port: live ones when running, else the configured ones."""
    live = ((c.get("NetworkSettings") or {}).get("Ports") or {})
    configured = ((c.get("HostConfig") or {}).get("PortBindings") or {})
    for source in (live, configured):
        for bindings in source.values():
            for b in bindings or []:
                port = b.get("HostPort")
                if port:
                    return b.get("HostIp") or "0.0.0.0", int(port)
    return None, None


def container_health(status: str, health: Optional[str]) -> str:
    """healthy | unhealthy | starting | stopped. Running with no health check counts as healthy."""
    if status == "restarting":
        return "unhealthy"  # a crash loop under the restart policy
    if status != "running":
        return "stopped"
    return health or "healthy"


def release_state(replicas: int, healths: List[str]) -> str:
    """running | stopped | partial, from the per-container health of the present replicas."""
    stopped = sum(1 for h in healths if h == "stopped")
    if len(healths) == replicas and stopped == 0:
        return "running"
    if len(healths) == replicas and stopped == replicas:
        return "stopped"
    return "partial"


def overall_health(replicas: int, healths: List[str]) -> str:
    if healths and all(h == "stopped" for h in healths) and len(healths) == replicas:
        return "stopped"
    if len(healths) < replicas or any(h in ("unhealthy", "stopped") for h in healths):
        return "unhealthy"
    if any(h == "starting" for h in healths):
        return "starting"
    return "healthy"


def _container_view(c: Dict[str, Any]) -> Dict[str, Any]:
    state = c.get("State") or {}
    status = "restarting" if state.get("Restarting") else state.get("Status", "unknown")
    address, port = binding(c)
    return {
        "name": c["Name"].lstrip("/"), "id": c["Id"], "replica": int(labels_of(c).get(spec.LABEL_REPLICA, 0)),
        "address": address, "port": port, "status": status,
        "health": container_health(status, (state.get("Health") or {}).get("Status")),
    }


def view(app: str, release_id: str, containers: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The release as its containers' labels and states describe it."""
    containers = sorted(containers, key=lambda c: int(labels_of(c).get(spec.LABEL_REPLICA, 0)))
    first = labels_of(containers[0])
    replicas = int(first.get(spec.LABEL_REPLICAS, len(containers)))
    items = [_container_view(c) for c in containers]
    healths = [i["health"] for i in items]
    return {
        "app": app, "id": release_id, "slot": first.get(spec.LABEL_SLOT),
        "image": first.get(spec.LABEL_IMAGE) or (containers[0].get("Config") or {}).get("Image"),
        "digest": first.get(spec.LABEL_DIGEST), "replicas": replicas, "created": first.get(spec.LABEL_CREATED),
        "state": release_state(replicas, healths), "health": overall_health(replicas, healths),
        "containers": items,
        "endpoints": [{"address": i["address"], "port": i["port"]} for i in items
                      if i["status"] == "running" and i["port"]],
        # False for containers published on ephemeral ports, which change when they restart.
        "restart_safe": all(host_ports.is_fixed(c) for c in containers),
    }


def summary(v: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    if not v:
        return {"state": "absent"}
    return {"state": v["state"], "slot": v["slot"], "digest": v["digest"], "replicas": v["replicas"]}


def load(client: Engine, app: str, release_id: Optional[str] = None) -> List[Dict[str, Any]]:
    """The containers of an app (or of one release), inspected, stopped ones too."""
    labels = ["%s=%s" % (spec.LABEL_APP, app)]
    if release_id is not None:
        labels.append("%s=%s" % (spec.LABEL_RELEASE, release_id))
    return client.inspect_all(labels)


def load_all(client: Engine) -> List[Dict[str, Any]]:
    """Every container of every app managed here."""
    return client.inspect_all([spec.LABEL_APP])


def info(p: Dict[str, Any]) -> Dict[str, Any]:
    app = model.validate_app(p["app"])
    if p.get("release") is not None:
        model.validate_release(p["release"])
    router = RouterRef.from_params(p)
    return read(Engine(p.get("docker_host"), p.get("docker_timeout") or 120), app, router, p.get("release"),
                p.get("router_kind"))


def read(client: Engine, app: str, router: Optional[RouterRef], release: Optional[str] = None,
         router_kind: Optional[str] = None) -> Dict[str, Any]:
    """The releases of an app (or one of them), newest first, with live and weight when a router is named."""
    groups: Dict[str, List[Dict[str, Any]]] = {}
    for c in load(client, app, release):
        groups.setdefault(labels_of(c).get(spec.LABEL_RELEASE, ""), []).append(c)
    releases = [view(app, rid, cs) for rid, cs in groups.items()]
    releases.sort(key=lambda r: (r["created"] or "", r["id"]), reverse=True)
    impl = router_for(router) if router else None
    servers = impl.servers() if impl else None
    weights = impl.weights(servers) if impl else None
    if weights is not None:
        for r in releases:
            r["weight"] = sum(weights.get(endpoint_key(e["address"], e["port"]), 0) for e in r["endpoints"])
            r["live"] = r["weight"] > 0
    result: Dict[str, Any] = {"changed": False, "releases": releases,
                              "router_slots": plan.router_slots(router.kind if router else router_kind, servers)}
    if servers is not None:
        # Only for a whole app: a view of one release cannot say what another slot should hold.
        wrong = [] if release else router_check.mismatches(releases, servers, {}, endpoint_key)
        if wrong:  # who holds those addresses costs a read of every managed container: only then
            wrong = router_check.mismatches(releases, servers, _owners(client), endpoint_key)
        result["router_mismatches"] = wrong
    return result


def _owners(client: Engine) -> Dict[Tuple[str, int], Dict[str, Any]]:
    """(address, port) -> the managed container that holds it."""
    owners = {}
    for c in load_all(client):
        labels = labels_of(c)
        owner = {"app": labels.get(spec.LABEL_APP), "release": labels.get(spec.LABEL_RELEASE),
                 "slot": labels.get(spec.LABEL_SLOT), "replica": int(labels.get(spec.LABEL_REPLICA, 0)),
                 "container": c["Name"].lstrip("/")}
        address, dummy = binding(c)
        for port in host_ports.bound_ports(c):
            owners[endpoint_key(address, port)] = owner
    return owners
