#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: docker_release
short_description: Run one immutable release of an app on a Docker host
version_added: 0.1.0
description:
  - A release is O(replicas) containers named C(<app>-<release>-<n>), started from one digest-pinned
    image and labelled C(io.immutable-deploy.app), C(.release), C(.slot), C(.digest), C(.image),
    C(.created), C(.replica), C(.replicas), C(.spec) and C(.spec-fields). The labels are the only
    record; nothing is stored on the controller.
  - A release is never modified. O(image) and every option that changes what runs (the spec) are
    hashed into the C(io.immutable-deploy.spec) label. Running the module again with the same spec
    changes nothing; with another spec under the same O(release) it fails and names the options that
    differ. The slot is part of the spec (a release is created in one slot and stays there); deploy a
    new release id to use the other slot.
  - A version tag in O(image) is resolved to its digest first (local engine, then the registry) and
    the containers are created from C(name@sha256:...). Moving tags are refused (see O(moving_tags)).
  - A new release is started and waited for until every replica is healthy. When one fails, the
    module fails with the containers' last log lines and health check output and removes the
    containers it just created, unless O(keep_failed=true).
  - When O(image) is omitted, the module acts on an existing release as it is (start, stop, remove)
    without comparing any spec.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.docker
  - immutable.deploy.registry
  - immutable.deploy.registry.credentials
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.docker) in C(module_defaults) sets O(docker_host), O(docker_timeout) for all modules of the group.
      - C(group/immutable.deploy.registry) in C(module_defaults) sets O(registry_scheme), O(validate_certs), O(moving_tags) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.docker
      - immutable.deploy.registry
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  app:
    description: App name, 2 to 40 lowercase letters, digits and single dashes, starting with a letter.
    type: str
    required: true
  release:
    description: Release id, usually the version, for example C(1.4.2). Letters, digits, C(.), C(_), C(-).
    type: str
    required: true
  slot:
    description: Slot of the release. Required to create a release.
    type: str
    choices: [blue, green, amber]
  image:
    description:
      - C(name@sha256:...), C(name:version) (resolved to its digest), or a local image ID
        C(sha256:...) for an image built on this host and never pushed.
      - Required to create a release; when given for an existing release, its spec is compared.
    type: str
  replicas:
    description: Number of containers.
    type: int
    default: 1
  container_port:
    description: TCP port the app listens on inside the container; published on O(bind_address).
    type: int
  published_ports:
    description:
      - Host ports, one per replica, in replica order. Each must be free; the module fails before
        creating anything when one is in use.
      - When omitted, free host ports are chosen from O(host_port_range) and fixed in each container's
        configuration, so a container keeps its port across engine restarts and host reboots and the
        router's addresses stay true; they are returned in RV(release.endpoints).
    type: list
    elements: int
  host_port_range:
    description:
      - Range C(<low>-<high>) the host ports are chosen from when O(published_ports) is omitted.
      - Keep it apart from the kernel's ephemeral range (C(net.ipv4.ip_local_port_range), 32768+ by
        default), which Docker and outgoing connections use.
    type: str
    default: 27000-29999
  bind_address:
    description: Host address the ports are published on.
    type: str
    default: 127.0.0.1
  env:
    description: Environment variables. Part of the spec and visible in RV(diff) names only.
    type: dict
    default: {}
  secret_env:
    description:
      - Environment variables with secret values. Never logged or returned; the spec records only a
        hash of them, so changing a secret is a new release.
    type: dict
    default: {}
  command:
    description: Command (exec form) overriding the image's C(CMD).
    type: list
    elements: str
  restart_policy:
    description: Docker restart policy.
    type: str
    default: unless-stopped
    choices: ['no', always, unless-stopped, on-failure]
  memory:
    description: Memory limit such as C(256m) or C(1g).
    type: str
  cpus:
    description: CPU limit, for example C(0.5).
    type: float
  labels:
    description: Extra container labels; keys under C(io.immutable-deploy.) are reserved.
    type: dict
    default: {}
  healthcheck:
    description:
      - Health check run by Docker inside each container (a Docker C(HEALTHCHECK)).
      - Without it, the image's own C(HEALTHCHECK) applies; with none at all, a container counts as
        healthy once it has stayed up for a moment.
    type: dict
    suboptions:
      type:
        description:
          - V(http) probes C(http://127.0.0.1:<port><path>) with C(/bin/busybox wget) inside the
            container, so the image must contain C(/bin/busybox). V(cmd) runs O(healthcheck.command).
        type: str
        default: http
        choices: [http, cmd]
      path:
        description: URL path for V(http).
        type: str
        default: /
      port:
        description: Port for V(http); defaults to O(container_port).
        type: int
      command:
        description: Command (exec form) for V(cmd); exit code 0 means healthy.
        type: list
        elements: str
      interval:
        description: Seconds between checks.
        type: int
        default: 5
      timeout:
        description: Seconds before a check counts as failed.
        type: int
        default: 3
      retries:
        description: Consecutive failures that make a container unhealthy.
        type: int
        default: 3
      start_period:
        description: Seconds during which failures do not count.
        type: int
        default: 0
  wait_timeout:
    description: Seconds to wait for every started replica to become healthy.
    type: int
    default: 60
  keep_failed:
    description: Keep the containers of a new release that did not become healthy, for inspection.
    type: bool
    default: false
  state:
    description:
      - V(present) creates the release if needed (started and healthy) and leaves an existing one
        as it is.
      - V(started) also starts a stopped release, without changing it, and waits until it is healthy;
        when it does not become healthy it is stopped again.
      - V(stopped) keeps the release cold (containers stopped, not removed) for a fast rollback.
      - V(absent) removes its containers.
    type: str
    default: present
    choices: [present, started, stopped, absent]
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Start release 1.4.2 of web in the green slot
  immutable.deploy.docker_release:
    app: web
    release: "1.4.2"
    slot: green
    image: registry.example.com/shop/web:1.4.2
    replicas: 2
    container_port: 8080
    env:
      LOG_LEVEL: info
    secret_env:
      DB_PASSWORD: "{{ vault_db_password }}"
    healthcheck:
      type: http
      path: /health
      interval: 2
  register: web

- name: Endpoints for the router
  ansible.builtin.debug:
    msg: "{{ web.release.endpoints }}"

- name: Keep the previous release cold for rollback
  immutable.deploy.docker_release:
    app: web
    release: "1.4.1"
    state: stopped

- name: Roll back in seconds
  immutable.deploy.docker_release:
    app: web
    release: "1.4.1"
    state: started
"""

RETURN = r"""
release:
  description: The release after the change (predicted in check mode; container IDs and ephemeral ports are then null).
  returned: always
  type: dict
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
      description: Image reference the containers run, pinned by digest or image ID.
      type: str
      returned: always
    digest:
      description: Content digest (manifest digest, or image ID for a never-pushed image).
      type: str
      returned: always
    replicas:
      description: Number of replicas.
      type: int
      returned: always
    created:
      description: Creation time of the release (UTC, ISO 8601).
      type: str
      returned: always
    state:
      description: V(running), V(stopped), V(partial) or V(absent).
      type: str
      returned: always
    health:
      description: Overall health, V(healthy), V(unhealthy), V(starting) or V(stopped).
      type: str
      returned: always
    containers:
      description: One entry per replica.
      type: list
      elements: dict
      returned: always
      contains:
        name:
          description: Container name.
          type: str
          returned: always
        id:
          description: Container ID.
          type: str
          returned: always
        replica:
          description: Replica number from 1.
          type: int
          returned: always
        address:
          description: Published host address.
          type: str
          returned: always
        port:
          description: Published host port.
          type: int
          returned: always
        status:
          description: Docker status such as C(running) or C(exited).
          type: str
          returned: always
        health:
          description: V(healthy), V(unhealthy), V(starting) or V(stopped).
          type: str
          returned: always
    endpoints:
      description: C(address) and C(port) of every running replica, for a router.
      type: list
      elements: dict
      returned: always
      sample: [{address: 127.0.0.1, port: 32768}]
diff:
  description: Summary before and after (state, slot, digest, replicas).
  returned: always
  type: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import (
    DOCKER_ARGS, DOCKER_IMPORT_ERROR)
from ansible_collections.immutable.deploy.plugins.module_utils.docker.release import ensure
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import (
    MOVING_TAGS_ARG, REGISTRY_ARGS)
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    healthcheck = dict(
        type=dict(type="str", default="http", choices=["http", "cmd"]),
        path=dict(type="str", default="/"),
        port=dict(type="int"),
        command=dict(type="list", elements="str"),
        interval=dict(type="int", default=5),
        timeout=dict(type="int", default=3),
        retries=dict(type="int", default=3),
        start_period=dict(type="int", default=0),
    )
    argument_spec = dict(
        app=dict(type="str", required=True),
        release=dict(type="str", required=True),
        slot=dict(type="str", choices=["blue", "green", "amber"]),
        image=dict(type="str"),
        replicas=dict(type="int", default=1),
        container_port=dict(type="int"),
        published_ports=dict(type="list", elements="int"),
        host_port_range=dict(type="str", default="27000-29999"),
        bind_address=dict(type="str", default="127.0.0.1"),
        env=dict(type="dict", default={}),
        secret_env=dict(type="dict", default={}, no_log=True),
        command=dict(type="list", elements="str"),
        restart_policy=dict(type="str", default="unless-stopped", choices=["no", "always", "unless-stopped", "on-failure"]),
        memory=dict(type="str"),
        cpus=dict(type="float"),
        labels=dict(type="dict", default={}),
        healthcheck=dict(type="dict", options=healthcheck),
        wait_timeout=dict(type="int", default=60),
        keep_failed=dict(type="bool", default=False),
        state=dict(type="str", default="present", choices=["present", "started", "stopped", "absent"]),
        **DOCKER_ARGS, **REGISTRY_ARGS, **MOVING_TAGS_ARG,
    )
    run_module(lambda m: ensure(m.params, m.check_mode), requires={"docker": DOCKER_IMPORT_ERROR},
               argument_spec=argument_spec)


if __name__ == "__main__":
    main()
