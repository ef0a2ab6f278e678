# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send all of an app's traffic to one of its releases on a Docker host, in one module run.

Read the releases and the router, choose the target (a release id, a digest or the
previous release), start it when it was kept stopped, then switch the router. One
process instead of the role's read, plan and switch tasks: a rollback to a warm
release costs Ansible's start-up plus this one run.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.immutable.deploy.plugins.module_utils import docker_release
from ansible_collections.immutable.deploy.plugins.module_utils import image_ref
from ansible_collections.immutable.deploy.plugins.module_utils import plan
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils import router_check
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option


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


def _brief(release: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not release:
        return None
    return {k: release.get(k) for k in ("id", "slot", "digest", "state", "weight")}


def _haproxy(p: Dict[str, Any], target: Dict[str, Any], live: Optional[Dict[str, Any]],
             check_mode: bool, repairs: List[Dict[str, Any]]) -> Dict[str, Any]:
    from ansible_collections.immutable.deploy.plugins.module_utils.haproxy import apply_backend
    limit = p["router_max_replicas"]
    servers = plan.slot_servers(target["endpoints"], target["slot"], p["weight"], "ready", limit)
    if live and live["slot"] != target["slot"]:
        # The release left stays health-checked in drain: switching back is again one write.
        servers += plan.slot_servers(live["endpoints"], live["slot"], 0, "drain", limit)
    # Other slots' servers that point at the wrong containers: re-pointed, weight and state kept.
    written = {s["name"] for s in servers}
    servers += [r for r in repairs if r["name"] not in written]
    return apply_backend(dict(socket=p["router_socket"], timeout=p["router_timeout"], backend=p["router_backend"],
                              servers=servers, exclusive=False, wait_up=True, up_timeout=p["up_timeout"],
                              wait_drained=bool(live) and p["drain"], drain_timeout=p["drain_timeout"],
                              state_file=p["router_state_file"]), check_mode)


def _nginx(p: Dict[str, Any], target: Dict[str, Any], check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
    from ansible_collections.immutable.deploy.plugins.module_utils import nginx
    result = nginx.apply(dict(name=p["app"], path=p["router_upstream_file"], allow_empty=False,
                              servers=[dict(e, weight=p["weight"]) for e in target["endpoints"]],
                              nginx_conf=p["nginx_conf"], nginx_binary=p["nginx_binary"],
                              pid_file=p["nginx_pid_file"], validate=True, reload=True,
                              reload_timeout=p["nginx_reload_timeout"]), check_mode, diff_mode)
    if not result["running"] and not check_mode:
        raise DeployError("No nginx master runs for %s (pid file %s): the upstream file now names %s but nothing "
                          "serves it; apply immutable.deploy.router with router_kind=nginx."
                          % (p["app"], p["nginx_pid_file"] or "from nginx_conf", target["id"]), option="nginx_pid_file")
    return result


def switch(p: Dict[str, Any], check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
    _validate(p)
    p = dict(p, router_backend=p.get("router_backend") or p["app"])
    haproxy = p["router_kind"] == "haproxy"
    # info() refuses the options of the other router kind; only this kind's are passed on.
    read = docker_release.info(dict(p, release=None,
                                    router_socket=p["router_socket"] if haproxy else None,
                                    router_backend=p["router_backend"] if haproxy else None,
                                    router_upstream_file=None if haproxy else p["router_upstream_file"]))
    releases, wrong = read["releases"], read.get("router_mismatches") or []
    if wrong and not p.get("to"):
        # Which release is "previous" is unknowable while the router points at the wrong containers.
        raise DeployError(router_check.describe(p["app"], wrong) + " Name the release that must be live "
                          "(option 'to'): the switch then re-points every slot at its own release.",
                          option="to", router_mismatches=wrong)
    chosen = plan.rollback_plan(releases, p.get("to"))
    target, live = chosen["target"], chosen["live"]
    result: Dict[str, Any] = {"changed": False, "target": target, "previous": live, "started": False,
                              "releases": [_brief(r) for r in releases], "router": {}}
    result["diff"] = {"before": {"live": live["id"] if live else (target["id"] if chosen["noop"] else None)},
                      "after": {"live": target["id"]}}
    result["router_mismatches"] = wrong
    if chosen["noop"] and target["state"] == "running" and not wrong:
        return result
    if target["state"] != "running":
        if not p["start"]:
            raise DeployError("Release %r of app %r is %s, not running; set start=true to start it (and wait until "
                              "it is healthy) before the switch." % (target["id"], p["app"], target["state"]),
                              option="start")
        result.update(changed=True, started=True)
        if check_mode:  # its ports are only known once it runs
            return result
        target = docker_release.ensure(dict(p, release=target["id"], state="started", image=None, slot=None,
                                            keep_failed=False), False)["release"]
        result["target"] = target
    if haproxy:
        router = _haproxy(p, target, live, check_mode, router_check.repairs(wrong))
        result["router"] = {k: router[k] for k in ("backend", "changes", "commands", "drained")}
    else:
        router = _nginx(p, target, check_mode, diff_mode)
        result["router"] = {k: router.get(k) for k in ("path", "servers", "reloaded", "master_pid")}
    result["changed"] = result["changed"] or router["changed"]
    return result
