# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which releases a Service sends traffic to, read from its selector and Endpoints (pure).

A Service selecting one release gives it all the traffic; one selecting the whole app
splits by ready addresses, every ready address getting the same share of connections.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn


def pod_releases(pods: List[Dict[str, Any]]) -> Dict[str, str]:
    """Pod name -> release id (from the pod's release label)."""
    out = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        release = (meta.get("labels") or {}).get(kn.LABEL_RELEASE)
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
    if selector.get(kn.LABEL_APP) != app:
        return "none", None
    if kn.LABEL_RELEASE in selector:
        return "release", selector[kn.LABEL_RELEASE]
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


def service_view(name: str, service: Optional[Dict[str, Any]], app: str) -> Dict[str, Any]:
    mode, _selected = service_mode(service, app)
    return {"name": name, "exists": service is not None,
            "selector": ((service or {}).get("spec") or {}).get("selector") if service else None,
            "mode": mode}
