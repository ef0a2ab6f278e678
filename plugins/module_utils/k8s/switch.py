# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A rollback on Kubernetes in one module run, under the app's Lease.

Take the lock, read the releases and what the Service selects, choose the target with the
same rollback_plan the roles use (plan.py), scale it back to its full size when it was
scaled down (a cold release: wait until ready), move the selector in one patch, wait for
the Endpoints, release the lock. Reading and switching under the lock closes the window in
which another run could switch between a separate read and write; a second rollback started
meanwhile fails at the lock and writes nothing.
"""
from __future__ import annotations

import time
from typing import Any, Dict

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import lease
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import probe as kp
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import release as kr
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import traffic as kt
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.release import Releases
from ansible_collections.immutable.deploy.plugins.module_utils.plan import rollback_plan


def _brief(release: Any) -> Any:
    keys = ("id", "name", "digest", "replicas", "full_replicas", "ready_replicas", "state", "live", "weight")
    return {k: release.get(k) for k in keys} if release else None


def run(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    kr.validate_names(p)
    if p.get("watch_seconds"):
        kp.check_timing(p["watch_seconds"], p.get("watch_interval") or 1, p.get("watch_max_failures") or 0, "watch_")
        kp.normalize(p.get("probe"))
    started = time.monotonic()
    client = Client(p)
    client.require_namespace()
    with lease.holding(p, p.get("lock"), check_mode, client) as got:
        locked = time.monotonic()
        found = kr.info(dict(p, release=None, preview_service=None))
        try:
            plan = rollback_plan(found["releases"], p.get("to"))
        except DeployError as exc:
            raise DeployError("Rollback of %r in namespace %s: %s." % (p["app"], client.ns, exc.msg), **exc.details)
        target = plan["target"]
        result: Dict[str, Any] = {"changed": False, "target": _brief(target), "previous": _brief(plan["live"]),
                                  "noop": plan["noop"], "lock": got}
        if not plan["noop"]:
            switch = kt.switch_service(Releases(client), dict(
                p, release=target["id"], require_ready=True, restore_replicas=True, revert=False), check_mode)
            result.update(changed=True, switch=switch, restored=switch.get("restored"), diff=switch.get("diff"),
                          switch_seconds=switch.get("switch_seconds"), scaled_down=switch.get("scaled_down"))
        result["timing"] = {"lock_s": round(locked - started, 3), "total_s": round(time.monotonic() - started, 3)}
    return result
