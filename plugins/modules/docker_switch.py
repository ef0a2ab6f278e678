#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: docker_switch
short_description: Send all traffic of an app to one of its releases on a Docker host, in one run
version_added: 0.1.0
description:
  - Reads the releases of O(app) (container labels) and what the router sends them, chooses the target release
    (O(to), or by default the newest release that takes no traffic, that is the previous one), and switches the
    router to it. This is the fast path of the M(immutable.deploy.rollback) role; the blue-green role builds its
    switch from the same pieces.
  - A warm target (still running, as the M(immutable.deploy.blue_green) role keeps the previous release) costs one
    router write. A target that was kept stopped is started first and must become healthy before any traffic moves
    (O(start)); when it does not, it is stopped again and the router is left untouched.
  - HAProxy (O(router_kind=haproxy)) through the runtime API, as M(immutable.deploy.haproxy_backend) does it
    (the target's servers come up before the old ones drain); nginx (O(router_kind=nginx)) by re-rendering the
    upstream file, C(nginx -t) and a graceful reload, as M(immutable.deploy.nginx_upstream) does it.
  - Nothing changes when the target already takes all the traffic.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.docker
  - immutable.deploy.lock
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.docker) in C(module_defaults) sets O(docker_host), O(docker_timeout) for all modules of the group.
      - C(group/immutable.deploy.lock) in C(module_defaults) sets O(lock) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.docker
      - immutable.deploy.lock
  check_mode:
    support: full
    details: A stopped target is reported as to be started; its ports, and so the router change, are only known once it runs.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  app:
    description: App name, as labelled on its containers.
    type: str
    required: true
  to:
    description:
      - Release id or image digest (C(sha256:...)) of the target release.
      - Default, the newest release that takes no traffic (the one before the live release).
    type: str
  start:
    description: Start the target when it is stopped, and wait until it is healthy, before the switch.
    type: bool
    default: true
  wait_timeout:
    description: Seconds a started target has to become healthy.
    type: int
    default: 120
  weight:
    description: Weight of each of the target's servers, 1 to 256.
    type: int
    default: 100
  router_kind:
    description: The router in front of the app's containers.
    type: str
    choices: [haproxy, nginx]
    default: haproxy
  router_socket:
    description: HAProxy runtime API (a unix socket path or C(tcp:HOST:PORT)); required for O(router_kind=haproxy).
    type: str
  router_backend:
    description: HAProxy backend of the app; default O(app).
    type: str
  router_timeout:
    description: Seconds to wait for one HAProxy runtime API answer.
    type: float
    default: 5
  router_state_file:
    description: HAProxy server-state file rewritten after the switch, so a reload or restart keeps it.
    type: path
  router_max_replicas:
    description: Servers per slot in the HAProxy backend (C(blue1..N), C(green1..N)), as configured by the router role.
    type: int
    default: 4
  up_timeout:
    description: Seconds the target's HAProxy servers have to pass their health checks before the old ones drain.
    type: float
    default: 30
  drain:
    description:
      - Wait until the release left has no request in flight (HAProxy, its servers have no session; nginx, the
        workers of the old configuration have exited).
      - Not needed for a rollback, since the release left keeps running and finishes its in-flight requests.
    type: bool
    default: false
  drain_timeout:
    description: Seconds to wait for the drain (O(drain=true)).
    type: float
    default: 30
  router_upstream_file:
    description: The app's nginx upstream file; required for O(router_kind=nginx).
    type: path
  nginx_conf:
    description: The nginx main configuration that includes O(router_upstream_file); required for O(router_kind=nginx).
    type: path
  nginx_binary:
    description: nginx executable, a name on PATH or a path.
    type: str
    default: nginx
  nginx_pid_file:
    description: Pid file of the nginx master; default, the C(pid) directive of O(nginx_conf).
    type: path
  nginx_reload_timeout:
    description: Seconds nginx has to start new workers after the reload signal.
    type: float
    default: 10
seealso:
  - module: immutable.deploy.docker_release_info
  - module: immutable.deploy.haproxy_backend
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Back to the previous release of web (kept warm by the blue_green role)
  immutable.deploy.docker_switch:
    app: web
    router_socket: /var/lib/immutable-deploy/router/web/haproxy.sock
    router_state_file: /var/lib/immutable-deploy/router/web/server-state
    lock:
      name: web
      owner: "{{ awx_job_id | default('manual') }}"
      purpose: rollback

- name: To a named release behind the nginx router
  immutable.deploy.docker_switch:
    app: web
    to: 1.4.2
    router_kind: nginx
    router_upstream_file: /var/lib/immutable-deploy/router/web/nginx-web/upstreams/web.conf
    nginx_conf: /var/lib/immutable-deploy/router/web/nginx-web/nginx.conf
"""

RETURN = r"""
target:
  description: The release that takes the traffic, as M(immutable.deploy.docker_release_info) returns it.
  returned: always
  type: dict
previous:
  description: The release that took the traffic before (null when none did or nothing changed).
  returned: always
  type: dict
started:
  description: Whether the target was started because it was stopped.
  returned: always
  type: bool
releases:
  description: Every release of the app before the switch (id, slot, digest, state, weight), newest first.
  returned: always
  type: list
  elements: dict
router:
  description:
    - HAProxy, C(backend), C(changes) (name, before, after), C(commands) sent and C(drained).
    - nginx, C(path), C(servers) rendered, C(reloaded) and C(master_pid).
  returned: always
  type: dict
router_mismatches:
  description:
    - HAProxy servers found pointing at containers their slot does not hold (see
      M(immutable.deploy.docker_release_info)); this run re-pointed them. Without O(to) such a router
      is refused, naming them, because the previous release cannot be known.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import (
    DOCKER_ARGS, DOCKER_IMPORT_ERROR)
from ansible_collections.immutable.deploy.plugins.module_utils.docker.switch import switch
from ansible_collections.immutable.deploy.plugins.module_utils.lock import LOCK_OPTION, guarded
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        to=dict(type="str"),
        start=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
        weight=dict(type="int", default=100),
        router_kind=dict(type="str", default="haproxy", choices=["haproxy", "nginx"]),
        router_socket=dict(type="str"),
        router_backend=dict(type="str"),
        router_timeout=dict(type="float", default=5),
        router_state_file=dict(type="path"),
        router_max_replicas=dict(type="int", default=4),
        up_timeout=dict(type="float", default=30),
        drain=dict(type="bool", default=False),
        drain_timeout=dict(type="float", default=30),
        router_upstream_file=dict(type="path"),
        nginx_conf=dict(type="path"),
        nginx_binary=dict(type="str", default="nginx"),
        nginx_pid_file=dict(type="path"),
        nginx_reload_timeout=dict(type="float", default=10),
        lock=LOCK_OPTION,
        **DOCKER_ARGS,
    )
    run_module(lambda m: guarded(m.params["lock"], m.check_mode,
                                 lambda: switch(m.params, m.check_mode, m._diff)),  # pylint: disable=protected-access
               requires={"docker": DOCKER_IMPORT_ERROR}, argument_spec=argument_spec,
               required_if=[["router_kind", "haproxy", ["router_socket"]],
                            ["router_kind", "nginx", ["router_upstream_file", "nginx_conf"]]])


if __name__ == "__main__":
    main()
