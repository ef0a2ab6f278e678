#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_traffic
short_description: Route an app's traffic between its releases on Kubernetes
version_added: 0.1.0
description:
  - Moves the traffic of an app between releases created by M(immutable.deploy.k8s_release)
    (one Deployment per release, labelled with app and release).
  - O(strategy=service) (blue-green) makes a Service select exactly one release. The selector moves in one
    JSON patch, so the endpoints controller replaces the whole address list at once and the Service never
    lists no address in between. With O(wait), waits until the Endpoints list only the ready pods of the release.
    Point a preview Service at the new release the same way with O(service=<app>-preview).
  - O(strategy=replica_ratio) (canary without a router) makes the Service select every release of the app and
    sets the replicas of the canary and stable release so that the canary gets O(weight) percent of them.
    Releases that grow are scaled first and waited for, then the others shrink, so capacity never drops.
    Only C(spec.replicas) changes; the full size annotation of a release stays.
  - O(strategy=ingress_nginx) sets ingress-nginx canary annotations on an Ingress of the canary Service;
    O(strategy=gateway) sets the backend weights of a Gateway API HTTPRoute.
  - Everything is validated before the first write. A release that does not exist, a weight out of range, a
    ratio the replicas cannot express and (with O(require_ready)) a release that is not ready are errors.
  - With O(strategy=service) and O(watch_seconds), the release is watched after the switch from inside its pods
    (see M(immutable.deploy.k8s_probe)); when it fails, the selector goes back to the release it selected before in
    the same module run (one patch, tested against the selector just set) and the module fails with the answers.
  - With O(strategy=service), a release a Service now routes to loses its C(immutable-deploy.io/scale-down-at)
    deadline (a rollback inside a canary's C(scale_down_delay)), and releases whose deadline has passed and that the
    Service does not select are scaled to 0 (their full size is kept for a later rollback). A switch of the preview
    Service C(<app>-preview) scales nothing down.
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
    details: Writes are sent as server-side dry runs (C(dryRun=All)), so the API server validates them; nothing is waited for.
  diff_mode:
    support: full
    details: Selector and replicas before and after.
  platform:
    platforms: posix
options:
  app:
    description: App name.
    type: str
    required: true
  strategy:
    description: How the traffic is split, see the description.
    type: str
    choices: [service, replica_ratio, ingress_nginx, gateway]
    default: service
  release:
    description:
      - The release that receives the traffic (O(strategy=service)) or the canary release (the other strategies).
      - Required with O(strategy=service) and O(strategy=replica_ratio).
    type: str
  stable_release:
    description: The release that keeps the rest of the traffic. Required with O(strategy=replica_ratio).
    type: str
  weight:
    description:
      - Percent of the traffic for O(release), 0 to 100. Used by O(strategy=replica_ratio), O(strategy=ingress_nginx)
        and O(strategy=gateway); required with O(strategy=replica_ratio).
      - With O(strategy=replica_ratio), O(total_replicas) times O(weight) must be a multiple of 100
        (with 4 replicas, one of 0, 25, 50, 75, 100).
    type: int
  total_replicas:
    description:
      - Replicas of the canary and stable release together, with O(strategy=replica_ratio).
      - Defaults to the full size of O(stable_release) (its C(immutable-deploy.io/replicas) annotation).
    type: int
  service:
    description: Name of the Service that routes to the app. Defaults to O(app).
    type: str
  service_ports:
    description: Ports of the Service when it is created (an existing Service keeps its ports).
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
  require_ready:
    description:
      - With O(strategy=service), refuse to route to a release whose Deployment has fewer ready replicas than it
        wants (or wants none). Nothing is changed then.
    type: bool
    default: true
  restore_replicas:
    description:
      - With O(strategy=service), first scale O(release) back to its full size (its C(immutable-deploy.io/replicas)
        annotation) when it runs fewer replicas, for example the stable release after a promoted canary, and wait
        until they are ready (O(wait_timeout)) before the Service is changed. Used by rollbacks.
    type: bool
    default: false
  wait:
    description:
      - With O(strategy=service), wait until the Service's Endpoints list only ready pods of O(release), as many as
        it has ready replicas.
      - With O(strategy=replica_ratio), wait until every release that grows is ready before others shrink, and at the
        end until the Endpoints list the new number of ready pods of each release.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait, for each wait of O(wait).
    type: int
    default: 60
  ingress:
    description: Name of the app's main Ingress, with O(strategy=ingress_nginx).
    type: str
  canary_service:
    description: Name of the Service that selects the canary release, with O(strategy=ingress_nginx) and O(strategy=gateway).
    type: str
  header:
    description: Name of a request header that routes to the canary when set, with O(strategy=ingress_nginx) and O(strategy=gateway).
    type: str
  header_value:
    description: Value of O(header) that routes to the canary.
    type: str
  cookie:
    description: Name of a cookie that routes to the canary when set to C(always), with O(strategy=ingress_nginx).
    type: str
  httproute:
    description: Name of the HTTPRoute, with O(strategy=gateway).
    type: str
  state:
    description: V(absent) removes the canary routing objects, with O(strategy=ingress_nginx) and O(strategy=gateway).
    type: str
    choices: [present, absent]
    default: present
  watch_seconds:
    description:
      - With O(strategy=service), seconds to watch O(release) after the switch with O(probe); V(0) does not watch.
      - Answers that fail beyond O(watch_max_failures) send the traffic back to the previous release and fail.
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
notes:
  - Traffic decisions are visible through the API only (Service selector, Endpoints ready addresses).
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Preview the new release before the switch
  immutable.deploy.k8s_traffic:
    app: web
    namespace: shop
    release: 2.0.0
    service: web-preview

- name: Blue-green switch of Service web to release 2.0.0
  immutable.deploy.k8s_traffic:
    app: web
    namespace: shop
    release: 2.0.0
  register: switch

- name: Canary by replicas, 25 percent of 4 replicas to 2.1.0
  immutable.deploy.k8s_traffic:
    app: web
    namespace: shop
    strategy: replica_ratio
    release: 2.1.0
    stable_release: 2.0.0
    weight: 25
    total_replicas: 4

- name: Canary through ingress-nginx, 10 percent
  immutable.deploy.k8s_traffic:
    app: web
    namespace: shop
    strategy: ingress_nginx
    release: 2.1.0
    ingress: web
    canary_service: web-canary
    weight: 10
"""

RETURN = r"""
strategy:
  description: The strategy applied.
  returned: always
  type: str
service:
  description: Name of the Service.
  returned: when O(strategy) is V(service) or V(replica_ratio)
  type: str
action:
  description: What was done to the Service, V(create), V(patch) or V(none).
  returned: when O(strategy) is V(service) or V(replica_ratio)
  type: str
previous_release:
  description: The release the Service selected before, or null when it selected none (or the whole app).
  returned: when O(strategy=service)
  type: str
selector:
  description: Selector of the Service before (null when the Service did not exist) and after.
  returned: when O(strategy) is V(service) or V(replica_ratio)
  type: dict
  sample: {before: {immutable-deploy.io/app: web, immutable-deploy.io/release: 1.0.0},
           after: {immutable-deploy.io/app: web, immutable-deploy.io/release: 2.0.0}}
switch_seconds:
  description: Seconds from the selector patch until the Endpoints listed only the new release; null when nothing was switched or waited.
  returned: when O(strategy=service)
  type: float
endpoints:
  description: Ready addresses of the Service, C(ready) those of C(release), C(other) those of other pods.
  returned: when O(strategy=service)
  type: dict
  sample: {release: 2.0.0, ready: 2, other: 0}
replicas:
  description: Replicas of the canary and stable release after the change, by release id.
  returned: when O(strategy=replica_ratio)
  type: dict
  sample: {2.1.0: 1, 2.0.0: 3}
watch:
  description: With O(watch_seconds), what the watch saw (rounds, requests, failures, outcomes, answers per pod).
  returned: when O(strategy=service) and O(watch_seconds) is set
  type: dict
scaled_down:
  description: Releases whose scale-down deadline had passed and that were scaled to 0, with C(release), C(replicas_before), C(deadline).
  returned: when O(strategy=service)
  type: list
  elements: dict
kept_warm_cleared:
  description: Whether O(release) had a scale-down deadline that was removed because it takes traffic again.
  returned: when O(strategy=service)
  type: bool
restored:
  description: With O(restore_replicas), the release scaled back to its full size, or null when it already ran them all.
  returned: when O(strategy=service)
  type: dict
  sample: {release: 1.0.0, replicas_before: 0, replicas: 4}
weights:
  description:
    - O(strategy=replica_ratio), percent of the traffic by release id, measured from the ready addresses of the
      Endpoints after O(wait), the planned ones otherwise.
    - O(strategy=ingress_nginx) and O(strategy=gateway), percent of the traffic by Service name.
  returned: when O(strategy) is not V(service)
  type: dict
  sample: {2.1.0: 25, 2.0.0: 75}
total_replicas:
  description: Replicas of both releases together.
  returned: when O(strategy=replica_ratio)
  type: int
before:
  description: Routing objects before the change.
  returned: when O(strategy) is V(ingress_nginx) or V(gateway)
  type: dict
after:
  description: Routing objects after the change.
  returned: when O(strategy) is V(ingress_nginx) or V(gateway)
  type: dict
canary_ingress:
  description: Name of the canary Ingress (C(<ingress>-canary)).
  returned: when O(strategy=ingress_nginx)
  type: str
httproute:
  description: Name of the HTTPRoute.
  returned: when O(strategy=gateway)
  type: str
api_version:
  description: Gateway API version of the HTTPRoute, for example C(gateway.networking.k8s.io/v1beta1).
  returned: when O(strategy=gateway)
  type: str
"""

from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import LEASE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.probe import PROBE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.traffic import SERVICE_PORTS_OPTION, apply
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        strategy=dict(type="str", default="service", choices=["service", "replica_ratio", "ingress_nginx", "gateway"]),
        release=dict(type="str"),
        stable_release=dict(type="str"),
        weight=dict(type="int"),
        total_replicas=dict(type="int"),
        service=dict(type="str"),
        service_ports=SERVICE_PORTS_OPTION,
        require_ready=dict(type="bool", default=True),
        restore_replicas=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=60),
        ingress=dict(type="str"),
        canary_service=dict(type="str"),
        header=dict(type="str"),
        header_value=dict(type="str"),
        cookie=dict(type="str"),
        httproute=dict(type="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        watch_seconds=dict(type="float", default=0),
        watch_interval=dict(type="float", default=1),
        watch_max_failures=dict(type="int", default=0),
        probe=PROBE_OPTION,
        lock=LEASE_OPTION,
        **K8S_ARGS,
    )
    run_module(lambda m: apply(m.params, m.check_mode), requires={"kubernetes": K8S_IMPORT_ERROR},
               argument_spec=argument_spec,
               required_if=[["strategy", "service", ["release"]],
                            ["strategy", "replica_ratio", ["release", "stable_release", "weight"]]])


if __name__ == "__main__":
    main()
