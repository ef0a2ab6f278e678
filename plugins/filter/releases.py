# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the releases read from a target into a deployment plan.

The roles stay declarative: what is live, which slot is free, what to retire and
which router servers a release occupies are decided here, in tested Python.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleFilterError

SLOTS = ("blue", "green")


def _live(releases: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    live = [r for r in releases if r.get("live")]
    if len(live) > 1:
        # Mid-switch (a run was killed): the one with the larger weight is the live one.
        live.sort(key=lambda r: (r.get("weight") or 0, r.get("created") or ""), reverse=True)
    return live[0] if live else None


def blue_green_plan(releases: List[Dict[str, Any]], release: str, keep: int = 2) -> Dict[str, Any]:
    """Where the new release goes and what has to make room for it.

    releases: docker_release_info's list (newest first) annotated with live/weight.
    Returns live (release or None), slot (for the new release), reuse (the release
    already exists in that slot), noop (it is already the only live release),
    retire_first (ids occupying the target slot that must go first) and
    retire_after (ids beyond the keep policy once the switch is done).
    """
    if keep < 1:
        raise AnsibleFilterError("keep must be at least 1, got %r" % keep)
    live = _live(releases)
    wanted = next((r for r in releases if r["id"] == release), None)
    if wanted is not None:
        slot = wanted["slot"]
    elif live is not None:
        slot = SLOTS[1 - SLOTS.index(live["slot"])]
    else:
        slot = SLOTS[0]
    if live is not None and slot == live["slot"] and (wanted is None or wanted["id"] != live["id"]):
        raise AnsibleFilterError("release %s sits in slot %s, which serves the live release %s; "
                                 "deploy it under a new release id" % (release, slot, live["id"]))
    others_live = [r for r in releases if r.get("live") and r["id"] != release]
    noop = wanted is not None and wanted.get("live") and not others_live and wanted.get("state") == "running"
    retire_first = [r["id"] for r in releases if r["slot"] == slot and r["id"] != release]
    # After the switch: the new release, then the previous live one; beyond keep, retire.
    kept = [release] + ([live["id"]] if live and live["id"] != release else [])
    retire_after = [r["id"] for r in releases if r["id"] not in kept[:keep] and r["id"] not in retire_first]
    return {"live": live, "slot": slot, "reuse": wanted is not None, "noop": bool(noop),
            "retire_first": retire_first, "retire_after": retire_after,
            "previous": live if live and live["id"] != release else None}


def rollback_plan(releases: List[Dict[str, Any]], to: Optional[str] = None) -> Dict[str, Any]:
    """The release to go back to: named by id or digest, else the newest one that is not live."""
    live = _live(releases)
    if to:
        target = next((r for r in releases if r["id"] == to or r.get("digest") == to), None)
        if target is None:
            raise AnsibleFilterError("no release %r on this host; releases here: %s"
                                     % (to, ", ".join(r["id"] for r in releases) or "none"))
    else:
        target = next((r for r in releases if not r.get("live")), None)
        if target is None:
            raise AnsibleFilterError("no previous release to roll back to (releases here: %s)"
                                     % (", ".join(r["id"] for r in releases) or "none"))
    others_live = [r for r in releases if r.get("live") and r["id"] != target["id"]]
    return {"target": target, "live": live if live and live["id"] != target["id"] else (others_live or [None])[0],
            "noop": bool(target.get("live")) and not others_live}


def slot_servers(endpoints: List[Dict[str, Any]], slot: str, weight: int, state: str,
                 max_replicas: int) -> List[Dict[str, Any]]:
    """HAProxy servers <slot>1..N for a release's endpoints; the rest of the slot is put in maint."""
    if len(endpoints) > max_replicas:
        raise AnsibleFilterError("%d replicas do not fit the %d servers of slot %s (router_max_replicas)"
                                 % (len(endpoints), max_replicas, slot))
    servers = [{"name": "%s%d" % (slot, i + 1), "address": e["address"], "port": e["port"],
                "weight": weight, "state": state} for i, e in enumerate(endpoints)]
    servers += [{"name": "%s%d" % (slot, i + 1), "weight": 0, "state": "maint"}
                for i in range(len(endpoints), max_replicas)]
    return servers


def release_id(image: str) -> str:
    """Default release id for an image reference: its version tag, else 'd' + 12 digest digits."""
    rest, dummy, digest = image.partition("@")
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    if digest.startswith("sha256:"):
        return "d" + digest[7:19]
    raise AnsibleFilterError("image %r has neither a version tag nor a digest" % image)


def other_slot(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


class FilterModule:
    def filters(self):
        return {"blue_green_plan": blue_green_plan, "slot_servers": slot_servers, "other_slot": other_slot,
                "release_id": release_id, "rollback_plan": rollback_plan}
