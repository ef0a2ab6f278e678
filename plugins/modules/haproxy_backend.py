#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_backend
short_description: Set address, port, weight and state of HAProxy servers live
version_added: 0.1.0
description:
  - Changes the servers of one HAProxy backend through the runtime API (stats socket with C(level admin)).
    Nothing is reloaded, so no connection is dropped.
  - Servers are the slots declared in the configuration, for example by the M(immutable.deploy.router) role
    (C(blue1..blueN) and C(green1..greenN)). A release of N replicas occupies C(<slot>1..<slot>N).
  - Servers that gain traffic are changed first and servers that lose it last, so the backend keeps
    capacity during a switch.
  - The whole request is validated before anything is changed.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.lock
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.lock) in C(module_defaults) sets O(lock) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.lock
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  socket:
    description:
      - The HAProxy runtime API, a unix socket path (optionally prefixed C(unix:)) or C(tcp:HOST:PORT).
    type: str
    required: true
  timeout:
    description: Seconds to wait for one runtime API answer.
    type: float
    default: 5
  backend:
    description: The backend whose servers are changed.
    type: str
    required: true
  servers:
    description:
      - Wanted servers. An omitted field keeps the server's current value.
      - Servers not listed are left untouched, unless O(exclusive=true).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Server name in the backend, for example C(green1).
        type: str
        required: true
      address:
        description: IP address of the server.
        type: str
      port:
        description: TCP port of the server, 1 to 65535.
        type: int
      weight:
        description: Weight, 0 to 256. 0 sends no new traffic while the server stays ready.
        type: int
      state:
        description: Administrative state. V(drain) lets current sessions finish and takes no new ones.
        type: str
        choices: [ready, drain, maint]
  exclusive:
    description: Put every server of the backend that is not listed in O(servers) into V(maint) with weight 0.
    type: bool
    default: false
  wait_drained:
    description:
      - After the change, wait until the servers that take no new traffic (state V(drain) or V(maint), or weight 0)
        among those listed or excluded have no current session.
      - Fails when sessions remain after O(drain_timeout). Skipped in check mode.
    type: bool
    default: false
  wait_up:
    description:
      - After putting servers in state V(ready), wait until the listed ready servers pass their health
        check before any server is drained or disabled, so a switch never leaves the backend without a
        healthy server. On timeout nothing is taken out of service and the module fails. Skipped in check mode.
    type: bool
    default: false
  up_timeout:
    description: Seconds to wait for O(wait_up).
    type: float
    default: 30
  drain_timeout:
    description: Seconds to wait for O(wait_drained).
    type: float
    default: 60
  state_file:
    description:
      - HAProxy's global C(server-state-file). When set, C(show servers state) is written there on every run
        (outside check mode), so a reload or a restart of HAProxy (C(load-server-state-from-file global))
        starts from the live address, port, weight and state.
      - HAProxy only restores a changed address for servers declared with a host name and
        C(init-addr last,...), as the M(immutable.deploy.router) role does.
      - Writing this file mirrors the live state and does not count as a change.
    type: path
notes:
  - The runtime API needs C(level admin) on the stats socket.
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Put release 2.0 (two replicas) in the green slot, and take it live with all the traffic
  immutable.deploy.haproxy_backend:
    socket: /var/lib/immutable-deploy/router/shop/admin.sock
    state_file: /var/lib/immutable-deploy/router/shop/server-state
    backend: shop
    servers:
      - {name: green1, address: 127.0.0.1, port: 32768, weight: 100, state: ready}
      - {name: green2, address: 127.0.0.1, port: 32769, weight: 100, state: ready}
    exclusive: true
    wait_drained: true
    drain_timeout: 30

- name: Canary, 10 percent to green1
  immutable.deploy.haproxy_backend:
    socket: tcp:127.0.0.1:9999
    backend: shop
    servers:
      - {name: blue1, weight: 90}
      - {name: green1, weight: 10, state: ready}
"""

RETURN = r"""
backend:
  description: The backend.
  returned: always
  type: str
servers:
  description: Every server of the backend after the change (as it would be, in check mode).
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Server name., type: str, returned: always}
    address: {description: IP address; null when none., type: str, returned: always}
    port: {description: Port., type: int, returned: always}
    weight: {description: Configured (user) weight., type: int, returned: always}
    state: {description: "Administrative state: ready, drain or maint.", type: str, returned: always}
    op_state: {description: "Operational state: stopped, starting, running or stopping.", type: str, returned: always}
    health: {description: "Status from C(show stat), for example UP, DOWN, MAINT, DRAIN, no check.", type: str, returned: always}
    scur: {description: Current sessions., type: int, returned: always}
    hrsp_2xx: {description: HTTP 2xx responses since HAProxy started., type: int, returned: always}
    hrsp_5xx: {description: HTTP 5xx responses since HAProxy started., type: int, returned: always}
    req_tot: {description: HTTP requests since HAProxy started., type: int, returned: always}
    rtime: {description: 'Average response time of the last 1024 requests, in milliseconds.', type: int, returned: always}
  sample:
    - {name: green1, address: 127.0.0.1, port: 32768, weight: 100, state: ready, op_state: running, health: UP,
       scur: 0, hrsp_2xx: 120, hrsp_5xx: 0, req_tot: 120, rtime: 2}
changes:
  description: Servers that changed (or would), with the fields before and after.
  returned: always
  type: list
  elements: dict
  sample:
    - name: green1
      before: {address: 127.0.0.1, port: 1, weight: 0, state: maint}
      after: {address: 127.0.0.1, port: 32768, weight: 100, state: ready}
commands:
  description: Runtime API commands sent (or that would be sent), in order.
  returned: always
  type: list
  elements: str
  sample: ["set server shop/green1 addr 127.0.0.1 port 32768", "set server shop/green1 weight 100"]
drained:
  description: Servers waited for with O(wait_drained) and the seconds it took; empty when not waited.
  returned: always
  type: dict
  sample: {servers: [blue1, blue2], seconds: 1.5}
"""

from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import apply_backend
from ansible_collections.immutable.deploy.plugins.module_utils.lock import LOCK_OPTION, guarded
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        socket=dict(type="str", required=True),
        timeout=dict(type="float", default=5),
        backend=dict(type="str", required=True),
        servers=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str", required=True),
            address=dict(type="str"),
            port=dict(type="int"),
            weight=dict(type="int"),
            state=dict(type="str", choices=["ready", "drain", "maint"]),
        )),
        exclusive=dict(type="bool", default=False),
        wait_up=dict(type="bool", default=False),
        up_timeout=dict(type="float", default=30),
        wait_drained=dict(type="bool", default=False),
        drain_timeout=dict(type="float", default=60),
        state_file=dict(type="path"),
        lock=LOCK_OPTION,
    )
    run_module(lambda m: guarded(m.params["lock"], m.check_mode, lambda: apply_backend(m.params, m.check_mode)),
               argument_spec=argument_spec)


if __name__ == "__main__":
    main()
