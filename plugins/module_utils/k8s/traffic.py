# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routing an app's traffic between its releases on Kubernetes.

service: blue-green; the Service selector names one release and moves in one
JSON patch, so the endpoints controller swaps the whole address list at once.
replica_ratio: canary without a router; the Service selects the whole app and
the weight is the share of replicas. ingress_nginx and gateway live in
routes.py (imported lazily, only when used).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import endpoints as ke
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import lease
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import probe as kp
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import warm
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.release import Releases, validate_names
from ansible_collections.immutable.deploy.plugins.module_utils.waiting import wait_until

POLL = 0.2  # seconds between reads while waiting
# The service_ports option of the modules that may create the app's Service.
SERVICE_PORTS_OPTION: Dict[str, Any] = dict(
    type="list", elements="dict", default=[{"port": 80, "target_port": 8080, "name": "http"}], options=dict(
        port=dict(type="int", required=True),
        target_port=dict(type="raw"),
        name=dict(type="str"),
        protocol=dict(type="str", default="TCP", choices=["TCP", "UDP", "SCTP"]),
    ))


# -- pure logic ------------------------------------------------------------------------------
def check_weight(weight: Any) -> None:
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100):
        raise invalid_option("weight", weight, "an integer from 0 to 100 (percent of the traffic to the release)")


def ratio_replicas(total: int, weight: int) -> Tuple[int, int]:
    """(canary, stable) replicas for a weight; the ratio must be exact, never rounded."""
    if not isinstance(total, int) or total < 1:
        raise invalid_option("total_replicas", total, "an integer of at least 1")
    check_weight(weight)
    if total * weight % 100:
        step = 100 // math.gcd(total, 100)
        values = list(range(0, 101, step))
        shown = ", ".join(map(str, values)) if len(values) <= 11 else "0, %d, %d, ..., 100" % (step, 2 * step)
        raise invalid_option("weight", weight, "with total_replicas=%d a multiple of %d (%s), or raise total_replicas"
                             % (total, step, shown))
    canary = total * weight // 100
    return canary, total - canary


def selector_action(current: Optional[Dict[str, Any]], wanted: Dict[str, str]) -> str:
    """'create' (no Service), 'none' (already selects exactly that) or 'patch'."""
    if current is None:
        return "create"
    return "none" if ((current.get("spec") or {}).get("selector") or {}) == wanted else "patch"


def selector_patch(old: Optional[Dict[str, str]], new: Dict[str, str]) -> List[Dict[str, Any]]:
    """One JSON patch: the test op makes a concurrent change fail instead of being overwritten,
    replace swaps the whole map (a merge patch could only add keys to an app-only selector)."""
    if not old:
        return [{"op": "add", "path": "/spec/selector", "value": new}]
    return [{"op": "test", "path": "/spec/selector", "value": old},
            {"op": "replace", "path": "/spec/selector", "value": new}]


def service_body(name: str, app: str, selector: Dict[str, str], ports: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {kn.LABEL_APP: app, kn.LABEL_MANAGED: kn.MANAGED_BY}},
            "spec": {"type": "ClusterIP", "selector": selector, "ports": [_port(p) for p in ports]}}


def _port(p: Dict[str, Any]) -> Dict[str, Any]:
    target = p.get("target_port")
    if isinstance(target, str) and target.isdigit():
        target = int(target)
    out = {"port": p["port"], "protocol": p.get("protocol") or "TCP"}
    if target is not None:
        out["targetPort"] = target
    if p.get("name"):
        out["name"] = p["name"]
    return out


def switched(counts: Dict[str, Any], release: str, wanted: int) -> bool:
    """Endpoints list only ready addresses of the release, as many as it has ready replicas."""
    by_release = counts["by_release"]
    return by_release.get(release, 0) == wanted and sum(by_release.values()) == wanted


def endpoints_view(counts: Dict[str, Any], release: str) -> Dict[str, Any]:
    mine = counts["by_release"].get(release, 0)
    return {"release": release, "ready": mine, "other": counts["ready"] - mine}


def replicas_of(dep: Dict[str, Any]) -> int:
    return kn.as_int((dep.get("spec") or {}).get("replicas"), 1)


def ready_of(dep: Dict[str, Any]) -> int:
    return kn.as_int((dep.get("status") or {}).get("readyReplicas"))


def refuse_unready(app: str, release: str, dep: Dict[str, Any], service: str) -> None:
    wanted, ready = replicas_of(dep), ready_of(dep)
    if wanted == 0 or ready < wanted:
        raise DeployError("Refusing to route Service %s to release %r of app %r: %d of %d replicas ready "
                          "(Deployment %s). Wait until it is ready, scale it up, or set require_ready=false."
                          % (service, release, app, ready, wanted, dep["metadata"]["name"]),
                          option="release", ready_replicas=ready, replicas=wanted)


# -- cluster operations ----------------------------------------------------------------------
def _wait(check: Callable[[], Tuple[bool, str]], timeout: float) -> str:
    done, state = wait_until(check, timeout, POLL)
    if not done:
        raise DeployError("Timed out after %ss: %s" % (timeout, state), changed=True)
    return state


def _endpoint_counts(cluster: Releases, app: str, service: str) -> Dict[str, Any]:
    return ke.classify_endpoints(cluster.endpoints(service), ke.pod_releases(cluster.pods(app)))


def ensure_selector(cluster: Releases, p: Dict[str, Any], current: Optional[Dict[str, Any]],
                    wanted: Dict[str, str], check_mode: bool) -> str:
    """Create the Service or move its selector (one request); returns the action taken."""
    name = p["service"] or p["app"]
    action = selector_action(current, wanted)
    if action == "create":
        cluster.client.create("Service", service_body(name, p["app"], wanted, p["service_ports"]), dry_run=check_mode)
    elif action == "patch":
        old = ((current or {}).get("spec") or {}).get("selector")
        cluster.client.patch("Service", name, selector_patch(old, wanted), dry_run=check_mode,
                             what="Patching the selector of Service %s" % name)
    return action


def switch_service(cluster: Releases, p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Blue-green: the Service selects exactly one release."""
    app, release = p["app"], p["release"]
    name = p["service"] or app
    dep = cluster.existing(app, release)
    restored = restore(cluster, p, dep, check_mode) if p.get("restore_replicas") else None
    if restored and not check_mode and (p["wait"] or p["require_ready"]):
        _wait_ready(cluster, app, release, restored["replicas"], p["wait_timeout"], "the Service was not changed")
        dep = cluster.existing(app, release)
    if p["require_ready"] and not (restored and check_mode):  # a dry-run scale readies nothing
        refuse_unready(app, release, dep, name)
    current = cluster.service(name)
    before = (current.get("spec") or {}).get("selector") if current else None
    mode, previous = ke.service_mode(current, app)
    wanted = kn.selector_for(app, release)
    started = time.monotonic()
    action = ensure_selector(cluster, p, current, wanted, check_mode)
    result: Dict[str, Any] = {
        "changed": action != "none" or bool(restored), "strategy": "service", "app": app, "service": name,
        "release": release, "action": action, "previous_release": previous if mode == "release" else None,
        "selector": {"before": before, "after": wanted}, "switch_seconds": None, "restored": restored,
        "diff": {"before": {"service": name, "selector": before}, "after": {"service": name, "selector": wanted}},
    }
    if p["wait"] and not check_mode:
        def check() -> Tuple[bool, str]:
            counts = _endpoint_counts(cluster, app, name)
            want = ready_of(cluster.existing(app, release))
            result["endpoints"] = endpoints_view(counts, release)
            return switched(counts, release, want), (
                "Service %s: Endpoints list %d ready addresses of release %s (it has %d ready replicas) and %d of "
                "other releases" % (name, result["endpoints"]["ready"], release, want, result["endpoints"]["other"]))
        _wait(check, p["wait_timeout"])
        if action != "none":
            result["switch_seconds"] = round(time.monotonic() - started, 3)
    else:
        counts = _endpoint_counts(cluster, app, name) if current else {"by_release": {}, "ready": 0}
        result["endpoints"] = endpoints_view(counts, release)
    if p.get("watch_seconds") and not check_mode:
        result["watch"] = watch_or_revert(cluster, p, result, wanted, previous if mode == "release" else None)
    settle_warm(cluster, app, release, name, result, check_mode)
    return result


def watch_or_revert(cluster: Releases, p: Dict[str, Any], result: Dict[str, Any], selected: Dict[str, str],
                    previous: Optional[str]) -> Dict[str, Any]:
    """Watch the release that now takes the traffic; when it fails, the selector goes back to the
    previous release in this same process (one patch, tested against the selector just set) and
    the module fails with the answers."""
    app, release, name = p["app"], p["release"], p["service"] or p["app"]
    spec = kp.normalize(p.get("probe"))
    try:
        return kp.run(cluster.client, app, release, spec, "watch", p["watch_seconds"], p.get("watch_interval") or 1,
                      p.get("watch_max_failures") or 0)
    except DeployError as exc:
        decided = time.monotonic()
        details = dict(exc.details, changed=True, release=release, previous_release=previous, reverted=False,
                       selector=result["selector"])
        if not p.get("revert", True):  # a rollback's watch: where it came from is what it left on purpose
            raise DeployError(exc.msg + " Service %s still selects release %s." % (name, release), **details) from None
        if previous is None or cluster.deployment(app, previous) is None:
            raise DeployError(exc.msg + " There is no previous release to send the traffic back to; %s keeps it."
                              % release, **details) from None
        back = kn.selector_for(app, previous)
        cluster.client.patch("Service", name, selector_patch(selected, back),
                             what="Sending the traffic of Service %s back to release %s" % (name, previous))
        details.update(reverted=True, revert_ms=round((time.monotonic() - decided) * 1000, 1),
                       selector={"before": result["selector"]["before"], "after": back})
        raise DeployError(exc.msg + " Service %s selects release %s again (one selector patch, %.0f ms after the "
                          "verdict)." % (name, previous, details["revert_ms"]), **details) from None


def in_use(cluster: Releases, app: str, service: str) -> Optional[List[str]]:
    """What a scale-down must spare: the release the app's active Service selects; None when it
    selects the whole app (a canary in progress: every release takes traffic, nothing is scaled)."""
    mode, selected = ke.service_mode(cluster.service(service), app)
    if mode == "app":
        return None
    return [selected] if selected else []


def settle_warm(cluster: Releases, app: str, release: str, service: str, result: Dict[str, Any],
                check_mode: bool) -> None:
    """A release a Service routes to has no scale-down deadline any more (a rollback inside
    scale_down_delay); releases whose deadline passed are scaled to 0 (warm.py), never the one
    the active Service selects. The preview Service (<app>-preview) routes no real traffic: a
    switch of it scales nothing down."""
    deps = [d for d in cluster.deployments(app) if kn.LABEL_RELEASE in ((d.get("metadata") or {}).get("labels") or {})]
    target = next((d for d in deps if d["metadata"]["labels"][kn.LABEL_RELEASE] == release), None)
    result["kept_warm_cleared"] = bool(target) and warm.clear(cluster.client, target, check_mode)
    spare = None if service == "%s-preview" % app else in_use(cluster, app, service)
    result["scaled_down"] = warm.expire(cluster.client, deps, None if spare is None else spare + [release],
                                        time.time(), check_mode)
    if result["kept_warm_cleared"] or result["scaled_down"]:
        result["changed"] = True


def _scale(cluster: Releases, dep: Dict[str, Any], replicas: int, check_mode: bool) -> None:
    """spec.replicas only: the release's full size (ANN_REPLICAS) stays for rollback and promotion."""
    name = dep["metadata"]["name"]
    cluster.client.patch("Deployment", name, [{"op": "replace", "path": "/spec/replicas", "value": replicas}],
                         dry_run=check_mode, what="Scaling Deployment %s to %d" % (name, replicas))


def _wait_ready(cluster: Releases, app: str, release: str, replicas: int, timeout: float,
                unchanged: str = "nothing else was scaled") -> None:
    def check() -> Tuple[bool, str]:
        dep = cluster.existing(app, release)
        ready = ready_of(dep)
        return ready >= replicas, "release %s has %d of %d replicas ready; %s" % (release, ready, replicas, unchanged)
    _wait(check, timeout)


def full_replicas(dep: Dict[str, Any]) -> int:
    ann = (dep["metadata"].get("annotations") or {}).get(kn.ANN_REPLICAS)
    return kn.as_int(ann, replicas_of(dep))


def restore(cluster: Releases, p: Dict[str, Any], dep: Dict[str, Any], check_mode: bool) -> Optional[Dict[str, Any]]:
    """Scale a release a canary or a previous switch scaled down back to its full size (rollback)."""
    current, full = replicas_of(dep), full_replicas(dep)
    if current >= full:
        return None
    _scale(cluster, dep, full, check_mode)
    return {"release": p["release"], "replicas_before": current, "replicas": full}


def replica_ratio(cluster: Releases, p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Canary by replicas: grow first and wait ready, then shrink, so capacity never drops."""
    app, canary, stable = p["app"], p["release"], p["stable_release"]
    if canary == stable:
        raise invalid_option("stable_release", stable, "a release other than the canary release %r" % canary)
    name = p["service"] or app
    deps = {canary: cluster.existing(app, canary), stable: cluster.existing(app, stable, "stable_release")}
    total = p.get("total_replicas")
    if total is None:
        ann = (deps[stable]["metadata"].get("annotations") or {}).get(kn.ANN_REPLICAS)
        if ann is None or not str(ann).isdigit():
            raise DeployError("Option 'total_replicas': not given and release %r has no %s annotation to default to. "
                              "Set total_replicas." % (stable, kn.ANN_REPLICAS), option="total_replicas")
        total = int(ann)
    canary_n, stable_n = ratio_replicas(total, p["weight"])
    target = {canary: canary_n, stable: stable_n}
    before = {rid: replicas_of(dep) for rid, dep in deps.items()}
    current = cluster.service(name)
    sel_before = (current.get("spec") or {}).get("selector") if current else None
    grow = [rid for rid in (canary, stable) if target[rid] > before[rid]]
    shrink = [rid for rid in (canary, stable) if target[rid] < before[rid]]
    waiting = p["wait"] and not check_mode
    for rid in grow:
        _scale(cluster, deps[rid], target[rid], check_mode)
    for rid in grow:
        if waiting:
            _wait_ready(cluster, app, rid, target[rid], p["wait_timeout"])
    action = ensure_selector(cluster, p, current, kn.selector_for(app), check_mode)
    for rid in shrink:
        _scale(cluster, deps[rid], target[rid], check_mode)
    weights = {canary: p["weight"], stable: 100 - p["weight"]}
    if waiting:
        def check() -> Tuple[bool, str]:
            counts = _endpoint_counts(cluster, app, name)["by_release"]
            weights.clear()
            weights.update({rid: ke.percent(counts.get(rid, 0), sum(counts.values())) for rid in target})
            return all(counts.get(rid, 0) == n for rid, n in target.items()), (
                "Service %s: Endpoints list ready addresses %s, wanted %s" % (
                    name, {rid: counts.get(rid, 0) for rid in target}, target))
        _wait(check, p["wait_timeout"])
    return {"changed": bool(grow or shrink) or action != "none", "strategy": "replica_ratio", "app": app,
            "service": name, "release": canary, "stable_release": stable, "total_replicas": total,
            "replicas": target, "weights": weights, "action": action,
            "selector": {"before": sel_before, "after": kn.selector_for(app)},
            "diff": {"before": {"replicas": before, "selector": sel_before},
                     "after": {"replicas": target, "selector": kn.selector_for(app)}}}


def _routes(strategy: str) -> Callable[..., Dict[str, Any]]:
    # Lazy: the edge routers are optional and live in their own module_utils.
    from ansible_collections.immutable.deploy.plugins.module_utils.k8s import routes  # pylint: disable=import-outside-toplevel
    return routes.apply_ingress_canary if strategy == "ingress_nginx" else routes.apply_httproute_weights


def apply(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Validate everything that needs no cluster, connect, then run the strategy."""
    strategy = p["strategy"]
    check_weight(p.get("weight"))
    validate_names(p, "release", "stable_release")
    if strategy == "replica_ratio" and p.get("total_replicas") is not None:
        ratio_replicas(p["total_replicas"], p["weight"])
    for port in p.get("service_ports") or []:
        if not 1 <= port["port"] <= 65535:
            raise invalid_option("service_ports", port["port"], "ports from 1 to 65535")
    if p.get("watch_seconds"):
        if strategy != "service":
            raise invalid_option("watch_seconds", p["watch_seconds"], "0 unless strategy=service")
        kp.check_timing(p["watch_seconds"], p.get("watch_interval") or 1, p.get("watch_max_failures") or 0, "watch_")
        kp.normalize(p.get("probe"))
    client = Client(p)
    client.require_namespace()
    with lease.holding(p, p.get("lock"), check_mode, client):
        return _apply(client, p, check_mode)


def _apply(client: Client, p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    strategy = p["strategy"]
    cluster = Releases(client)
    if strategy == "service":
        return switch_service(cluster, p, check_mode)
    if strategy == "replica_ratio":
        return replica_ratio(cluster, p, check_mode)
    result = _routes(strategy)(client, p, check_mode)
    result.setdefault("strategy", strategy)
    if "diff" not in result and ("before" in result or "after" in result):
        result["diff"] = {"before": result.get("before"), "after": result.get("after")}
    return result
