# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the releases read from a target into a deployment plan.

The roles stay declarative: what is live, which slot is free, what to retire and
which router servers a release occupies are decided here, in tested Python.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

from ansible_collections.immutable.deploy.plugins.module_utils import plan
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError


def _planned(func: Callable[..., Any]) -> Callable[..., Any]:
    """The shared plan functions raise DeployError; a filter raises AnsibleFilterError."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DeployError as exc:
            raise AnsibleFilterError(exc.msg) from exc
    wrapper.__name__, wrapper.__doc__ = func.__name__, func.__doc__
    return wrapper


rollback_plan = _planned(plan.rollback_plan)
slot_servers = _planned(plan.slot_servers)
_blue_green_plan = _planned(plan.blue_green_plan)


def blue_green_plan(releases: List[Dict[str, Any]], release: str, keep: int = 2,
                    slots: Optional[List[str]] = None) -> Dict[str, Any]:
    """plan.blue_green_plan; its warning (too few router slots) is shown as an Ansible warning."""
    planned = _blue_green_plan(releases, release, keep, slots)
    if planned["warning"]:
        Display().warning(planned["warning"])
    return planned


def release_id(image: str) -> str:
    """Default release id for an image reference: its version tag, else 'd' + 12 digest digits."""
    rest, dummy, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    if digest.startswith("sha256:"):
        return "d" + digest[7:19]
    raise AnsibleFilterError("image %r has neither a version tag nor a digest" % image)


def canary_steps(steps: List[Any]) -> List[Dict[str, Any]]:
    """Validate and normalise canary steps: weights strictly increasing within 0..100.

    A first step at weight 0 (with a manual pause) is a dark launch: only requests
    routed by header or cookie reach the canary.
    """
    if not isinstance(steps, list) or not steps:
        raise AnsibleFilterError("canary_steps must be a non-empty list such as [{weight: 5}, {weight: 50}, {weight: 100}], "
                                 "got %r" % (steps,))
    out, last = [], -1
    for index, step in enumerate(steps):
        if not isinstance(step, dict) or set(step) - {"weight", "pause", "analysis"}:
            raise AnsibleFilterError("canary_steps[%d]: %r; accepted keys: weight (1-100), pause (seconds or "
                                     "'manual'), analysis (bool)" % (index, step))
        weight = step.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 100:
            raise AnsibleFilterError("canary_steps[%d].weight: %r; accepted: an integer from 0 to 100" % (index, weight))
        if weight <= last:
            raise AnsibleFilterError("canary_steps[%d].weight: %d after %d; weights must increase" % (index, weight, last))
        pause = step.get("pause", 0)
        if pause != "manual" and (not isinstance(pause, (int, float)) or isinstance(pause, bool) or pause < 0):
            raise AnsibleFilterError("canary_steps[%d].pause: %r; accepted: seconds >= 0 or 'manual'" % (index, pause))
        out.append({"index": index, "weight": weight, "pause": pause, "analysis": bool(step.get("analysis", True))})
        last = weight
    return out


def canary_servers(canary: Dict[str, Any], stable: Dict[str, Any], percent: int, max_replicas: int) -> List[Dict[str, Any]]:
    """Per-server HAProxy weights giving the canary release `percent` of the traffic.

    canary/stable are releases with slot and endpoints. Weights are scaled by 2 so a
    share spread over up to four servers stays within HAProxy's 0-256.
    """
    def share(release, pct):
        count = max(1, len(release["endpoints"]))
        each = int(round(pct * 2.0 / count))
        if pct and not each:
            each = 1  # a tiny share still reaches the release
        return slot_servers(release["endpoints"], release["slot"], each, "ready", max_replicas)
    return share(canary, percent) + share(stable, 100 - percent)


def with_haproxy(metrics: List[Dict[str, Any]], socket: str, backend: str, canary: str,
                 stable: str) -> List[Dict[str, Any]]:
    """Fill the router block of haproxy-provider metrics that do not name one."""
    filled = []
    for metric in metrics:
        if metric.get("provider") == "haproxy" and not metric.get("haproxy"):
            metric = dict(metric, haproxy={"socket": socket, "backend": backend, "canary": canary, "stable": stable})
        filled.append(metric)
    return filled


class FilterModule:
    def filters(self):
        return {"blue_green_plan": blue_green_plan, "slot_servers": slot_servers,
                "release_id": release_id, "rollback_plan": rollback_plan,
                "canary_steps": canary_steps, "canary_servers": canary_servers,
                "with_haproxy": with_haproxy}
