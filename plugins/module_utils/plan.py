# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans shared by the filters (roles) and the modules that act in one run (docker_switch).

Pure functions over the releases read from a target (docker_release_info's list,
newest first, annotated with live/weight).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

SLOTS = ("blue", "green")


def live_release(releases: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    live = [r for r in releases if r.get("live")]
    if len(live) > 1:
        # Mid-switch (a run was killed): the one with the larger weight is the live one.
        live.sort(key=lambda r: (r.get("weight") or 0, r.get("created") or ""), reverse=True)
    return live[0] if live else None


def rollback_plan(releases: List[Dict[str, Any]], to: Optional[str] = None) -> Dict[str, Any]:
    """The release to go back to: named by id or digest, else the newest one that is not live."""
    live = live_release(releases)
    names = ", ".join(r["id"] for r in releases) or "none"
    if to:
        target = next((r for r in releases if r["id"] == to or r.get("digest") == to), None)
        if target is None:
            raise DeployError("no release %r on this host; releases here: %s" % (to, names), option="to")
    else:
        target = next((r for r in releases if not r.get("live")), None)
        if target is None:
            raise DeployError("no previous release to roll back to (releases here: %s)" % names, option="to")
    others_live = [r for r in releases if r.get("live") and r["id"] != target["id"]]
    return {"target": target, "live": live if live and live["id"] != target["id"] else (others_live or [None])[0],
            "noop": bool(target.get("live")) and not others_live}


def slot_servers(endpoints: List[Dict[str, Any]], slot: str, weight: int, state: str,
                 max_replicas: int) -> List[Dict[str, Any]]:
    """HAProxy servers <slot>1..N for a release's endpoints; the rest of the slot is put in maint."""
    if len(endpoints) > max_replicas:
        raise DeployError("%d replicas do not fit the %d servers of slot %s (router_max_replicas)"
                          % (len(endpoints), max_replicas, slot), option="router_max_replicas")
    servers = [{"name": "%s%d" % (slot, i + 1), "address": e["address"], "port": e["port"],
                "weight": weight, "state": state} for i, e in enumerate(endpoints)]
    servers += [{"name": "%s%d" % (slot, i + 1), "weight": 0, "state": "maint"}
                for i in range(len(endpoints), max_replicas)]
    return servers
