# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does the router still send each slot to that slot's release?

The router's slot states and the container labels can each look right on their own
while the addresses between them are wrong: a container published on an ephemeral port
gets another port when it restarts, and the router then points at whatever container
took the old number. This compares the two, per router server.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Tuple

Endpoint = Tuple[str, int]
_SERVER_RE = re.compile(r"^([a-z]+)(\d+)$")


def server_slot(name: str) -> Tuple[Optional[str], Optional[int]]:
    """('blue', 2) for server 'blue2'; (None, None) for a name that is no slot server."""
    match = _SERVER_RE.match(name or "")
    return (match.group(1), int(match.group(2))) if match else (None, None)


def _slot_release(releases: List[Dict[str, Any]], slot: str) -> Optional[Dict[str, Any]]:
    """The release that holds the slot: the running one, else the newest."""
    held = [r for r in releases if r.get("slot") == slot]
    running = [r for r in held if r.get("state") == "running"]
    return running[0] if running else held[0] if held else None


def mismatches(releases: List[Dict[str, Any]], servers: List[Dict[str, Any]],
               owners: Dict[Endpoint, Dict[str, Any]], key: Callable[[Any, Any], Endpoint]) -> List[Dict[str, Any]]:
    """Router servers that take or wait for traffic (ready or drain) at an address that is not
    their slot's release's replica. `owners` maps endpoint keys to the container there
    (app, release, slot, replica); `key` normalises (address, port) the same way."""
    found = []
    for server in servers:
        slot, replica = server_slot(server.get("name", ""))
        if slot is None or server.get("state") == "maint" or server.get("port") is None:
            continue
        release = _slot_release(releases, slot)
        expected = None
        if release is not None:
            container = next((c for c in release.get("containers", []) if c.get("replica") == replica), None)
            if container and container.get("port"):
                expected = {"release": release["id"], "address": container["address"], "port": container["port"]}
        here = key(server.get("address"), server["port"])
        if expected and key(expected["address"], expected["port"]) == here:
            continue
        found.append({"server": server["name"], "slot": slot, "replica": replica,
                      "address": server.get("address"), "port": server["port"], "state": server.get("state"),
                      "weight": server.get("weight"), "expected": expected, "found": owners.get(here)})
    return found


def describe(app: str, found: List[Dict[str, Any]]) -> str:
    parts = []
    for m in found:
        there = m["found"]
        what = ("release %s of app %s (slot %s)" % (there["release"], there["app"], there["slot"])
                if there else "no container")
        want = ("release %s at %s:%s" % (m["expected"]["release"], m["expected"]["address"], m["expected"]["port"])
                if m["expected"] else "no release in slot %s" % m["slot"])
        parts.append("%s (%s, weight %s) -> %s:%s, which is %s; expected %s"
                     % (m["server"], m["state"], m["weight"], m["address"], m["port"], what, want))
    return "The router of app %s points at containers its slots do not hold: %s." % (app, "; ".join(parts))


def repairs(found: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Server writes that put each mismatched server back on its slot's release, keeping its
    weight and state; a server whose slot holds no release goes to maint."""
    out = []
    for m in found:
        if m["expected"]:
            out.append({"name": m["server"], "address": m["expected"]["address"], "port": m["expected"]["port"]})
        else:
            out.append({"name": m["server"], "weight": 0, "state": "maint"})
    return out
