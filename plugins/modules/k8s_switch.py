#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_switch
short_description: All traffic of an app on Kubernetes to one of its releases in one module run (rollback)
version_added: 0.1.0
description:
  - The rollback of an app whose releases were created by M(immutable.deploy.k8s_release), in one process, under the
    app's deploy lock (a Lease, O(lock)), taken before anything is read and released at the end.
  - Reads the releases and what the app's Service selects, chooses the target like the C(rollback_plan) filter
    (O(to) by id or digest, else the newest release that is not live), scales it back to its full size when it runs
    fewer replicas (a release scaled to 0 after a canary or after its C(scale_down_delay)) and waits until it is
    ready, then moves the Service's selector in one JSON patch and waits until the Endpoints list only its pods.
  - A release kept warm (at full scale, ready) makes the rollback a single selector patch.
  - Going to the release the Service already selects alone changes nothing.
  - With O(watch_seconds) the target is watched after the switch with O(probe) (see M(immutable.deploy.k8s_probe));
    when it fails the module fails with the answers, and the Service stays on the target (the release it came
    from is the one being rolled back).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.k8s
  - immutable.deploy.k8s.lease
  - immutable.deploy.k8s.probe
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.k8s) in C(module_defaults) sets the connection options (O(kubeconfig), O(context),
        O(host), O(api_key), O(verify_ssl), O(ca_cert), O(client_cert), O(client_key)), O(namespace) and
        O(request_timeout) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.k8s
  check_mode:
    support: full
    details: The scale and the selector patch are server-side dry runs; the lock is not taken.
  diff_mode:
    support: full
    details: The Service's selector before and after.
  platform:
    platforms: posix
options:
  app:
    description: App name.
    type: str
    required: true
  to:
    description: Release id or image digest to go to. Default, the newest release that is not live.
    type: str
  service:
    description: Name of the app's Service. Defaults to O(app).
    type: str
  service_ports:
    description: Ports of the Service if it has to be created.
    type: list
    elements: dict
    default: [{port: 80, target_port: 8080, name: http}]
    suboptions:
      port:
        description: Port of the Service.
        type: int
        required: true
      target_port:
        description: Container port number or name.
        type: raw
      name:
        description: Port name.
        type: str
      protocol:
        description: Protocol.
        type: str
        choices: [TCP, UDP, SCTP]
        default: TCP
  wait:
    description: Wait until the Endpoints list only the target's pods.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for a scaled-down target to be ready, and for the Endpoints.
    type: int
    default: 120
  watch_seconds:
    description: Seconds to watch the target after the switch; V(0) does not watch.
    type: float
    default: 0
  watch_interval:
    description: Seconds between two rounds of the watch.
    type: float
    default: 1
  watch_max_failures:
    description: Failed answers the watch tolerates.
    type: int
    default: 0
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Back to the previous release of web, under the app's Lease
  immutable.deploy.k8s_switch:
    app: web
    namespace: shop
    lock:
      name: web
      owner: "{{ lookup('ansible.builtin.password', '/dev/null', chars=['ascii_lowercase', 'digits'], length=16) }}"
      purpose: rollback

- name: To a named release
  immutable.deploy.k8s_switch:
    app: web
    namespace: shop
    to: 1.4.2
"""

RETURN = r"""
target:
  description: The release now selected (id, name, digest, replicas, full_replicas, ready_replicas, state, live, weight as read before).
  returned: always
  type: dict
previous:
  description: The release that was live before, null when none.
  returned: always
  type: dict
noop:
  description: Whether the target was already the only live release.
  returned: always
  type: bool
restored:
  description: The target scaled back to its full size (C(release), C(replicas_before), C(replicas)), null when it was warm.
  returned: when a switch happened
  type: dict
switch_seconds:
  description: Seconds from the selector patch until the Endpoints listed only the target.
  returned: when a switch happened
  type: float
scaled_down:
  description: Releases whose scale-down deadline had passed and were scaled to 0 in the same run.
  returned: when a switch happened
  type: list
  elements: dict
switch:
  description: The whole result of the selector switch, as M(immutable.deploy.k8s_traffic) returns it.
  returned: when a switch happened
  type: dict
lock:
  description: The lock as taken (C(taken), C(lock), C(expired_holder) when a dead run's lease was taken over).
  returned: when O(lock) is given
  type: dict
timing:
  description: Seconds until the lock was held (C(lock_s)) and for the whole work (C(total_s)).
  returned: always
  type: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import LEASE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.probe import PROBE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.switch import run
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.traffic import SERVICE_PORTS_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        to=dict(type="str"),
        service=dict(type="str"),
        service_ports=SERVICE_PORTS_OPTION,
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
        watch_seconds=dict(type="float", default=0),
        watch_interval=dict(type="float", default=1),
        watch_max_failures=dict(type="int", default=0),
        probe=PROBE_OPTION,
        lock=LEASE_OPTION,
        **K8S_ARGS,
    )
    run_module(lambda m: run(m.params, m.check_mode), requires={"kubernetes": K8S_IMPORT_ERROR},
               argument_spec=argument_spec)


if __name__ == "__main__":
    main()
