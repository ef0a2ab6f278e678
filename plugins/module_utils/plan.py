# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans shared by the filters (roles) and the modules that act in one run (docker_switch).

Pure functions over the releases read from a target (docker_release_info's list,
newest first, annotated with live/weight).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.release import SLOTS

# What callers that do not name their router's slots get (canary, Kubernetes): the two
# slots every router has had from the start.
CLASSIC_SLOTS = SLOTS[:2]
_SERVER_RE = re.compile(r"^([a-z]+)[0-9]+$")


def live_release(releases: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    live = [r for r in releases if r.get("live")]
    if len(live) > 1:
        # Mid-switch (a run was killed): the one with the larger weight is the live one.
        live.sort(key=lambda r: (r.get("weight") or 0, r.get("created") or ""), reverse=True)
    return live[0] if live else None


def router_slots(kind: Optional[str], servers: Optional[List[Dict[str, Any]]]) -> Optional[List[str]]:
    """The slots a release can occupy behind the router, in the router's order.

    HAProxy: those its backend has servers for (a router set up before the third slot
    has two). nginx routes endpoints, not slots: every slot. None without a router.
    """
    if (kind or "haproxy") == "nginx":
        return list(SLOTS)
    if servers is None:
        return None
    found: List[str] = []
    for server in servers:
        match = _SERVER_RE.match(server.get("name") or "")
        if match and match.group(1) in SLOTS and match.group(1) not in found:
            found.append(match.group(1))
    return found


def _slot_for_new(releases: List[Dict[str, Any]], slots: Sequence[str], live: Optional[Dict[str, Any]],
                  keep_warm: Optional[Dict[str, Any]]) -> str:
    """A free slot, else the one of the oldest release that is neither live nor the rollback
    target, else (two slots only) the rollback target's: never the live release's."""
    candidates = [s for s in slots if live is None or s != live["slot"]]
    if not candidates:
        raise DeployError("the router has no slot for a new release%s (router slots: %s)"
                          % (" beside the live release %s" % live["id"] if live else "", ", ".join(slots) or "none"),
                          option="router_slots")

    def cost(slot: str) -> Tuple[bool, bool, bool, int]:
        here = [i for i, r in enumerate(releases) if r.get("slot") == slot]  # newest first: larger is older
        return (any(releases[i].get("live") for i in here),
                keep_warm is not None and keep_warm.get("slot") == slot,
                bool(here), -max(here, default=0))
    return min(candidates, key=cost)


def blue_green_plan(releases: List[Dict[str, Any]], release: str, keep: int = 2,
                    slots: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Where the new release goes and what has to make room for it.

    releases: docker_release_info's list (newest first) annotated with live/weight.
    slots: the slots the router offers (docker_release_info's router_slots); default
    blue and green, and no warning. With a third slot the new release never displaces
    the live release or the rollback target, so a failed deploy keeps the way back warm.
    Returns live (release or None), slot (for the new release), reuse (the release
    already exists in that slot), noop (it is already the only live release),
    retire_first (ids occupying the target slot that must go first), retire_after
    (ids beyond the keep policy once the switch is done), clear_after (their slots,
    to take off the router before they are removed), previous (the live release the
    switch drains) and warning (the rollback target must make room: too few slots).
    """
    if keep < 1:
        raise DeployError("keep must be at least 1, got %r" % keep, option="keep")
    # Only a caller that names its router's slots hears that they are too few.
    warn = slots is not None
    slots = list(CLASSIC_SLOTS if slots is None else slots)
    live = live_release(releases)
    wanted = next((r for r in releases if r["id"] == release), None)
    # The release a rollback would go to now (rollback_plan's choice): protected like the live one.
    keep_warm = next((r for r in releases if not r.get("live") and r["id"] != release), None)
    if wanted is not None:
        slot = wanted["slot"]
    else:
        slot = _slot_for_new(releases, slots, live, keep_warm)
    if live is not None and slot == live["slot"] and (wanted is None or wanted["id"] != live["id"]):
        raise DeployError("release %s sits in slot %s, which serves the live release %s; "
                          "deploy it under a new release id" % (release, slot, live["id"]), option="release")
    others_live = [r for r in releases if r.get("live") and r["id"] != release]
    noop = wanted is not None and wanted.get("live") and not others_live and wanted.get("state") == "running"
    retire_first = [r["id"] for r in releases if r["slot"] == slot and r["id"] != release]
    # After the switch: the new release, then the previous live one; beyond keep, retire.
    # Mid-switch (a killed run) another release may still take traffic: it is the one to leave.
    previous = live_release(others_live)
    kept = [release] + ([previous["id"]] if previous else [])
    retire_after = [r["id"] for r in releases if r["id"] not in kept[:keep] and r["id"] not in retire_first]
    held = {slot} | ({previous["slot"]} if previous and previous["id"] in kept[:keep] else set())
    clear_after = []
    for r in releases:
        if r["id"] in retire_after and r["slot"] not in held and r["slot"] not in clear_after:
            clear_after.append(r["slot"])
    warning = None
    if warn and wanted is None and keep_warm is not None and keep_warm["id"] in retire_first:
        missing = [s for s in SLOTS if s not in slots]
        warning = ("The warm release %s makes room in slot %s (router slots: %s) before %s is known to be healthy: "
                   "a failed deploy leaves no release to roll back to.%s"
                   % (keep_warm["id"], slot, ", ".join(slots), release,
                      " Apply immutable.deploy.router again to add slot %s (router_slots)." % ", ".join(missing)
                      if missing else ""))
    return {"live": live, "slot": slot, "reuse": wanted is not None, "noop": bool(noop),
            "retire_first": retire_first, "retire_after": retire_after, "clear_after": clear_after,
            "previous": previous, "warning": warning}


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
    return {"target": target, "live": live if live and live["id"] != target["id"] else (others_live[0] if others_live else None),
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
