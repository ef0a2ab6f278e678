# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scale_down_delay: the release that lost the traffic stays at full scale for a while.

After a promote, the previous stable is kept at its full size (ready, so a rollback is one
selector patch) and its Deployment gets the annotation immutable-deploy.io/scale-down-at
with the deadline. Nothing in the cluster acts on it by itself (no controller of ours runs
there): the deadline is honoured by whoever comes next, in this order of likelihood,
- the promoting play, which waits for it after releasing the deploy lock and then scales
  the release to 0 under the lock (canary role, <role>_k8s_scale_down_wait), and
- every later switch of the app (deploy, rollback, promote), which scales down the releases
  whose deadline has passed in the same module run.
A rollback to the release inside the window makes it live and removes its deadline. Scaling
down keeps the full-size annotation, so a rollback after the window starts it again (cold).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import format_time, parse_time

ANN_SCALE_DOWN_AT = kn.ANN_SCALE_DOWN_AT
_PATH = "/metadata/annotations/" + ANN_SCALE_DOWN_AT.replace("/", "~1")


def deadline(dep: Optional[Dict[str, Any]]) -> Optional[str]:
    return (((dep or {}).get("metadata") or {}).get("annotations") or {}).get(ANN_SCALE_DOWN_AT)


def due(dep: Dict[str, Any], now: float) -> bool:
    """Its deadline has passed and it still runs pods."""
    at = parse_time(deadline(dep))
    return at is not None and at <= now and kn.as_int((dep.get("spec") or {}).get("replicas"), 1) > 0


def keep_warm(client: Client, dep: Dict[str, Any], delay: float, now: float, check_mode: bool) -> str:
    """Record the deadline on the release's Deployment; returns it."""
    at = format_time(now + delay)
    name = dep["metadata"]["name"]
    client.patch("Deployment", name, {"metadata": {"annotations": {ANN_SCALE_DOWN_AT: at}}}, merge=True,
                 dry_run=check_mode, what="Recording scale-down-at %s on Deployment %s" % (at, name))
    return at


def clear(client: Client, dep: Dict[str, Any], check_mode: bool) -> bool:
    """Remove the deadline of a release that is live again; False when it had none."""
    value = deadline(dep)
    if value is None:
        return False
    name = dep["metadata"]["name"]
    try:
        client.patch("Deployment", name, [{"op": "test", "path": _PATH, "value": value}, {"op": "remove", "path": _PATH}],
                     dry_run=check_mode, what="Removing scale-down-at from Deployment %s" % name)
    except DeployError as exc:
        if exc.details.get("status") != 422:  # changed meanwhile: whoever changed it decided
            raise
    return True


def scale_down(client: Client, dep: Dict[str, Any], check_mode: bool) -> bool:
    """Scale a release whose deadline passed to 0, only if that very deadline is still set (a rollback
    removes it). spec.replicas only: the full-size annotation stays for a cold rollback."""
    name = dep["metadata"]["name"]
    try:
        client.patch("Deployment", name, [{"op": "test", "path": _PATH, "value": deadline(dep)},
                                          {"op": "replace", "path": "/spec/replicas", "value": 0},
                                          {"op": "remove", "path": _PATH}],
                     dry_run=check_mode, what="Scaling Deployment %s to 0 after its scale_down_delay" % name)
    except DeployError as exc:
        if exc.details.get("status") == 422:
            return False
        raise
    return True


def expire(client: Client, deployments: List[Dict[str, Any]], spare: Optional[List[str]], now: float,
           check_mode: bool) -> List[Dict[str, Any]]:
    """Scale down every release whose deadline passed, except those in spare (what the app's
    Services select). spare None means a Service selects the whole app (a canary in progress):
    every release takes traffic then, and nothing is scaled."""
    if spare is None:
        return []
    done = []
    for dep in deployments:
        release = ((dep.get("metadata") or {}).get("labels") or {}).get(kn.LABEL_RELEASE)
        if release is None or release in spare or not due(dep, now):
            continue
        replicas = kn.as_int((dep.get("spec") or {}).get("replicas"), 1)
        if scale_down(client, dep, check_mode):
            done.append({"release": release, "replicas_before": replicas, "deadline": deadline(dep)})
    return done


def view(dep: Dict[str, Any], now: float) -> Dict[str, Any]:
    """{scale_down_at, warm_seconds_left} for info and results."""
    at = deadline(dep)
    when = parse_time(at)
    return {"scale_down_at": at, "warm_seconds_left": round(max(when - now, 0.0), 1) if when is not None else None}
