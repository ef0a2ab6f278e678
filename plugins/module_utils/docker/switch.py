# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send all of an app's traffic to one of its releases on a Docker host, in one module run.

Read the releases and the router, choose the target (a release id, a digest or the
previous release), start it when it was kept stopped, then switch the router. One
process instead of the role's read, plan and switch tasks: a rollback to a warm
release costs Ansible's start-up plus this one run.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ansible_collections.immutable.deploy.plugins.module_utils import plan
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.docker import releases, router_check
from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import Engine
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils.routers.base import RouterRef, Switch, router_for


def _validate(p: Dict[str, Any]) -> None:
    model.validate_app(p["app"])
    to = p.get("to")
    if to is not None and not image_ref.is_digest(to):
        try:
            model.validate_release(to)
        except DeployError:
            raise invalid_option("to", to, "a release id such as '1.4.2' or an image digest 'sha256:<64 hex digits>'")
    if not 1 <= p["weight"] <= 256:
        raise invalid_option("weight", p["weight"], "an integer from 1 to 256")
    if not 1 <= p["router_max_replicas"] <= 64:
        raise invalid_option("router_max_replicas", p["router_max_replicas"], "an integer from 1 to 64")


def _brief(r: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not r:
        return None
    return {k: r.get(k) for k in ("id", "slot", "digest", "state", "weight")}


def switch(p: Dict[str, Any], check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
    _validate(p)
    app = p["app"]
    # Only the chosen kind's options reach the router reference.
    haproxy = p["router_kind"] == "haproxy"
    ref = RouterRef.from_params(dict(p, router_socket=p["router_socket"] if haproxy else None,
                                     router_backend=p.get("router_backend") if haproxy else None,
                                     router_upstream_file=None if haproxy else p["router_upstream_file"]))
    if ref is None:
        raise DeployError("Option '%s' is required with router_kind=%s."
                          % ("router_socket" if haproxy else "router_upstream_file", p["router_kind"]),
                          option="router_socket" if haproxy else "router_upstream_file")
    client = Engine(p.get("docker_host"), p.get("docker_timeout") or 120)
    read = releases.read(client, app, ref)
    found, wrong = read["releases"], read.get("router_mismatches") or []
    if wrong and not p.get("to"):
        # Which release is "previous" is unknowable while the router points at the wrong containers.
        raise DeployError(router_check.describe(app, wrong) + " Name the release that must be live "
                          "(option 'to'): the switch then re-points every slot at its own release.",
                          option="to", router_mismatches=wrong)
    chosen = plan.rollback_plan(found, p.get("to"))
    target, live = chosen["target"], chosen["live"]
    result: Dict[str, Any] = {"changed": False, "target": target, "previous": live, "started": False,
                              "releases": [_brief(r) for r in found], "router": {}, "router_mismatches": wrong}
    result["diff"] = {"before": {"live": live["id"] if live else (target["id"] if chosen["noop"] else None)},
                      "after": {"live": target["id"]}}
    if chosen["noop"] and target["state"] == "running" and not wrong:
        return result
    if target["state"] != "running":
        if not p["start"]:
            raise DeployError("Release %r of app %r is %s, not running; set start=true to start it (and wait until "
                              "it is healthy) before the switch." % (target["id"], app, target["state"]),
                              option="start")
        result.update(changed=True, started=True)
        if check_mode:  # its ports are only known once it runs
            return result
        # Imported only on this cold path: a warm rollback compiles less (modules run from a zip, uncached).
        from ansible_collections.immutable.deploy.plugins.module_utils.docker import release  # pylint: disable=import-outside-toplevel
        target = release.start(client, app, target["id"], p["wait_timeout"])
        result["target"] = target
    router = router_for(ref).switch(Switch(target=target, previous=live, weight=p["weight"],
                                           up_timeout=p["up_timeout"], drain=p["drain"],
                                           drain_timeout=p["drain_timeout"], repairs=router_check.repairs(wrong)),
                                    check_mode, diff_mode)
    result["changed"] = result["changed"] or router.pop("changed")
    result["router"] = router
    return result
