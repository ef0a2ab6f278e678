# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One traffic-routing interface for the routers in front of Docker releases.

A router reads what it sends where (live state) and switches all of an app's traffic
to one release while the one it leaves stays warm where the router can keep it so.
HAProxy (routers/haproxy.py) and nginx (routers/nginx.py) implement it; another
balancer (a cloud target group) is one more file and one more branch in router_for.
"""
from __future__ import annotations

import abc
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

Endpoint = Tuple[str, int]
ROUTERS = ("haproxy", "nginx")


def endpoint_key(address: Any, port: Any) -> Endpoint:
    """(address, port) with IP literals normalised, so '::1' in the router matches '0:0::1' in Docker."""
    text = str(address)
    try:
        text = str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        text = text.lower()
    return text, int(port)


@dataclass(frozen=True)
class RouterRef:
    """Which router an app has and how to reach it, built once from module options."""
    kind: str = "haproxy"
    app: str = ""
    socket: Optional[str] = None
    backend: Optional[str] = None
    state_file: Optional[str] = None
    upstream_file: Optional[str] = None
    nginx_conf: Optional[str] = None
    nginx_binary: str = "nginx"
    nginx_pid_file: Optional[str] = None
    timeout: float = 5
    reload_timeout: float = 10
    max_replicas: int = 4

    @classmethod
    def from_params(cls, p: Dict[str, Any]) -> Optional["RouterRef"]:
        """The router the options name (None when they name none); options of the other kind are refused."""
        kind = p.get("router_kind") or "haproxy"
        for wrong in ("router_upstream_file",) if kind == "haproxy" else ("router_socket", "router_backend"):
            if p.get(wrong):
                raise DeployError("Option '%s' does not apply to router_kind=%s; accepted: router_socket and "
                                  "router_backend for haproxy, router_upstream_file for nginx." % (wrong, kind),
                                  option=wrong)
        if not (p.get("router_socket") if kind == "haproxy" else p.get("router_upstream_file")):
            return None
        return cls(kind=kind, app=p.get("app") or "", socket=p.get("router_socket"),
                   backend=p.get("router_backend") or p.get("app"), state_file=p.get("router_state_file"),
                   upstream_file=p.get("router_upstream_file"), nginx_conf=p.get("nginx_conf"),
                   nginx_binary=p.get("nginx_binary") or "nginx", nginx_pid_file=p.get("nginx_pid_file"),
                   timeout=p.get("router_timeout") or 5, reload_timeout=p.get("nginx_reload_timeout") or 10,
                   max_replicas=p.get("router_max_replicas") or 4)


@dataclass(frozen=True)
class Switch:
    """All traffic to `target`; `previous` (the release that had it) kept warm where the router can."""
    target: Dict[str, Any]
    previous: Optional[Dict[str, Any]]
    weight: int
    up_timeout: float = 30
    drain: bool = False
    drain_timeout: float = 30
    repairs: Sequence[Dict[str, Any]] = field(default_factory=tuple)


class Router(abc.ABC):
    """Reads and switches one app's traffic."""

    def __init__(self, ref: RouterRef) -> None:
        self.ref = ref

    @abc.abstractmethod
    def servers(self) -> Optional[List[Dict[str, Any]]]:
        """The router's slot servers (name, address, port, state, weight), or None when it has no slots."""

    @abc.abstractmethod
    def weights(self, servers: Optional[List[Dict[str, Any]]]) -> Dict[Endpoint, int]:
        """Endpoint -> weight of what takes traffic now (`servers` as servers() returned them)."""

    @abc.abstractmethod
    def switch(self, request: Switch, check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
        """Apply the switch; the result has changed and the router's own report of what it did."""


def router_for(ref: RouterRef) -> Router:
    # Imported only for the kind in use; explicit imports, so Ansible ships them with the module.
    if ref.kind == "haproxy":
        from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import HAProxyRouter
        return HAProxyRouter(ref)
    if ref.kind == "nginx":
        from ansible_collections.immutable.deploy.plugins.module_utils.routers.nginx import NginxRouter
        return NginxRouter(ref)
    raise DeployError("Invalid value for option 'router_kind': %r. Accepted: %s." % (ref.kind, ", ".join(ROUTERS)),
                      option="router_kind")
