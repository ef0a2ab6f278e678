#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: docker_release_info
short_description: List the releases of an app on a Docker host, newest first
version_added: 0.1.0
description:
  - Reads the releases created by M(immutable.deploy.docker_release) from their container labels
    and states only; nothing is kept on the controller.
  - With O(router_socket) and O(router_backend), also reads the HAProxy runtime API and tells which
    releases receive traffic, matching servers to release endpoints by address and port.
  - With O(router_kind=nginx) and O(router_upstream_file), reads the live upstream file rendered by
    M(immutable.deploy.nginx_upstream) instead, the same way.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.docker
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.docker) in C(module_defaults) sets O(docker_host), O(docker_timeout) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.docker
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  app:
    description: App name.
    type: str
    required: true
  release:
    description: Only this release id.
    type: str
  router_kind:
    description: The router in front of the app, read to annotate RV(releases[].live) and RV(releases[].weight).
    type: str
    choices: [haproxy, nginx]
    default: haproxy
  router_socket:
    description: HAProxy runtime API address, a unix socket path or C(tcp:HOST:PORT). Only with O(router_kind=haproxy).
    type: str
  router_backend:
    description: HAProxy backend whose servers route to the app. Only with O(router_kind=haproxy).
    type: str
  router_upstream_file:
    description:
      - The nginx upstream file of the live traffic (as rendered by M(immutable.deploy.nginx_upstream)),
        for example C(<router state dir>/nginx-<app>/upstreams/<app>.conf). Required with O(router_kind=nginx).
      - It tells what the running nginx routes as long as every change goes through M(immutable.deploy.nginx_upstream),
        which reloads nginx and restores the file when nginx rejects it.
    type: path
  router_timeout:
    description: Seconds to wait for the HAProxy runtime API.
    type: float
    default: 5
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Which releases of web are on this host, and which one is live
  immutable.deploy.docker_release_info:
    app: web
    router_socket: /run/haproxy/admin.sock
    router_backend: web
  register: web

- name: The same behind the nginx router of web
  immutable.deploy.docker_release_info:
    app: web
    router_kind: nginx
    router_upstream_file: /var/lib/immutable-deploy/router/web/nginx-web/upstreams/web.conf
  register: web

- name: The newest release
  ansible.builtin.debug:
    msg: "{{ web.releases[0].id }} is {{ web.releases[0].state }}, live={{ web.releases[0].live }}"
"""

RETURN = r"""
releases:
  description: Releases of the app, newest first (by their C(io.immutable-deploy.created) label).
  returned: always
  type: list
  elements: dict
  contains:
    app:
      description: App name.
      type: str
      returned: always
    id:
      description: Release id.
      type: str
      returned: always
    slot:
      description: Slot (blue, green or amber).
      type: str
      returned: always
    image:
      description: Image reference, pinned by digest or image ID.
      type: str
      returned: always
    digest:
      description: Content digest.
      type: str
      returned: always
    replicas:
      description: Replicas the release was created with.
      type: int
      returned: always
    created:
      description: Creation time (UTC, ISO 8601).
      type: str
      returned: always
    state:
      description: V(running) (all replicas running), V(stopped) (all stopped) or V(partial).
      type: str
      returned: always
    health:
      description: Overall health, V(healthy), V(unhealthy) (also when a replica is missing or stopped), V(starting) or V(stopped).
      type: str
      returned: always
    containers:
      description: Replicas with name, id, replica, address, port, status and health.
      type: list
      elements: dict
      returned: always
    endpoints:
      description: C(address) and C(port) of every running replica.
      type: list
      elements: dict
      returned: always
    live:
      description:
        - Whether the router sends traffic to the release. HAProxy, a matching server in state ready with weight above 0;
          nginx, a matching server in the upstream that is neither C(down) nor C(backup).
      type: bool
      returned: when O(router_socket) or O(router_upstream_file) is given
    weight:
      description: Sum of the weights of the matching servers that take traffic (as for RV(releases[].live)).
      type: int
      returned: when O(router_socket) or O(router_upstream_file) is given
    restart_safe:
      description:
        - Whether every container has a fixed host port (chosen at creation), so an engine restart or a
          host reboot gives it the same port and the router's addresses stay true. False for containers
          published on ephemeral ports (created by older versions), which get new ports when they restart.
      type: bool
      returned: always
router_mismatches:
  description:
    - HAProxy servers of a slot (in state ready or drain) whose address is not that slot's release's
      replica, with C(server), C(slot), C(replica), C(address), C(port), C(state), C(weight), C(expected)
      (release, address, port; null when the slot holds no release) and C(found) (the managed container
      at that address, with app, release, slot, replica and container; null when none).
    - Empty when the router and the container labels agree. M(immutable.deploy.docker_switch) with O(immutable.deploy.docker_switch#module:to)
      re-points such servers.
  type: list
  elements: dict
  returned: when O(router_socket) is given and O(release) is not
router_slots:
  description:
    - The slots a release can occupy behind the router, in the router's order. HAProxy, those its backend
      has servers for (C(blue), C(green) and C(amber) since the router role has three slots; a router set
      up earlier has two); nginx routes endpoints, so every slot. Null without a router.
  type: list
  elements: str
  returned: always
  sample: [blue, green, amber]
"""

from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import (
    DOCKER_ARGS, DOCKER_IMPORT_ERROR)
from ansible_collections.immutable.deploy.plugins.module_utils.docker.releases import info
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        release=dict(type="str"),
        router_kind=dict(type="str", default="haproxy", choices=["haproxy", "nginx"]),
        router_socket=dict(type="str"),
        router_backend=dict(type="str"),
        router_upstream_file=dict(type="path"),
        router_timeout=dict(type="float", default=5),
        **DOCKER_ARGS,
    )
    run_module(lambda m: info(m.params), requires={"docker": DOCKER_IMPORT_ERROR},
               argument_spec=argument_spec, required_together=[["router_socket", "router_backend"]],
               required_if=[["router_kind", "nginx", ["router_upstream_file"]]])


if __name__ == "__main__":
    main()
