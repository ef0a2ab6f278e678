#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_canary
short_description: Steps, manual gates, promote and abort of a replica-ratio canary, recorded in the cluster
version_added: 0.1.0
description:
  - A canary of releases created by M(immutable.deploy.k8s_release), by replica ratio behind the app's Service (see
    O(immutable.deploy.k8s_traffic#module:strategy=replica_ratio)). Its progress is recorded on the canary's Deployment
    (annotation C(immutable-deploy.io/canary), JSON with the stable release, the steps, the step reached, C(running)
    or C(paused) and why), so any controller can carry on after a manual gate or abort it. Nothing is kept on the
    controller.
  - O(action=step) gives O(release) O(weight) percent of the pods (the side that grows is ready before the other
    shrinks) and records the step; then it waits O(pause) seconds and runs O(analysis) in the same process. A fail
    verdict aborts the canary at once from that process (as O(action=abort), without waiting for the stable pods),
    so no module start-up lies between the verdict and stable getting the traffic back; the result's
    C(analysis.abort) has the verdict-to-write latency. The task itself does not fail on a verdict; the caller
    reads C(analysis.verdict). O(action=pause) records a gate (O(reason)). O(action=status) returns the canary in
    progress.
  - O(action=promote) grows the canary to the full size (O(total_replicas), else the recorded one), switches the
    Service to it alone, records that size as its full size and clears the record. The old stable is scaled to 0,
    or with O(scale_down_delay) scaled back to its full size, waited for, and kept there; its Deployment gets the
    deadline in the annotation C(immutable-deploy.io/scale-down-at). A rollback inside that window is one selector
    patch.
  - O(action=abort) makes the Service select stable alone at once (one selector patch), then scales stable back to
    its full size and the canary to 0, clears the record and waits until stable is fully ready. Only when stable has
    no ready pod (a canary at 100 percent) is it scaled up and a first pod waited for before the switch.
  - O(action=scale_down) scales to 0 the releases whose deadline passed and that the app's Service does not select; with
    O(wait) it first sleeps until the latest deadline ahead (at most O(wait_timeout)), without holding O(lock), and
    skips (not fails) when another run holds the lock then, as that run's switch honours the deadline.
  - Promote and abort find the canary from the record when O(release) is omitted, and do nothing when there is
    none, so both are idempotent.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.k8s
  - immutable.deploy.k8s.lease
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
    details: Writes are sent as server-side dry runs; nothing is waited for.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  app:
    description: App name.
    type: str
    required: true
  action:
    description: What to do, see the description.
    type: str
    required: true
    choices: [step, pause, promote, abort, scale_down, status]
  release:
    description:
      - The canary release. Required with O(action=step); otherwise defaults to the canary the cluster records as in
        progress.
    type: str
  stable_release:
    description: The stable release. Required with O(action=step); otherwise defaults to the recorded one.
    type: str
  weight:
    description: Percent of the pods for the canary, with O(action=step).
    type: int
  total_replicas:
    description: Replicas of both releases together. Defaults to the recorded one, else the full size of the stable release.
    type: int
  step:
    description: Index of the step, recorded with O(action=step) and O(action=pause) (promote carries on after it).
    type: int
  steps:
    description: The whole list of steps, recorded with O(action=step) so that another controller continues the same plan.
    type: list
    elements: dict
  reason:
    description: Why the canary stops, with O(action=pause).
    type: str
    default: manual gate
  scale_down_delay:
    description: With O(action=promote), seconds the old stable stays at full scale after the switch; V(0) scales it to 0 at once.
    type: float
    default: 0
  pause:
    description: With O(action=step), seconds to wait after the step before O(analysis) (the lock is renewed meanwhile).
    type: float
    default: 0
  analysis:
    description:
      - With O(action=step), the analysis of the step, as M(immutable.deploy.release_analysis) runs it (same rounds,
        verdict rules, metrics and condition language), measured by this module after O(pause).
    type: dict
    suboptions:
      interval:
        description: Seconds each round lasts before its measurement.
        type: float
        default: 10
      count:
        description: Number of rounds.
        type: int
        default: 1
      failure_limit:
        description: Failed rounds tolerated.
        type: int
        default: 0
      inconclusive:
        description: What inconclusive rounds mean, V(pause) (verdict V(inconclusive)), V(fail) or V(pass).
        type: str
        choices: [pause, fail, pass]
        default: pause
      fail_fast:
        description: End a round early as soon as a metric that can be read early fails.
        type: bool
        default: true
      metrics:
        description: What to measure, as the O(immutable.deploy.release_analysis#module:metrics) option.
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: Name of the metric, unique.
            type: str
            required: true
          provider:
            description: Where the value comes from; the option of the same name holds its settings.
            type: str
            required: true
            choices: [haproxy, http, prometheus, command]
          success:
            description: Condition that must be true for the measurement to pass.
            type: str
            required: true
          query:
            description: V(haproxy) only, as in M(immutable.deploy.release_analysis).
            type: str
            choices: [error_ratio, mean_response_time, request_count]
          min_requests:
            description: V(haproxy) only. Fewer canary requests make the measurement inconclusive.
            type: int
            default: 0
          haproxy:
            description: HAProxy per-server counters, as in M(immutable.deploy.release_analysis).
            type: dict
            suboptions:
              socket:
                description: HAProxy stats socket.
                type: str
                required: true
              backend:
                description: Backend whose servers are measured.
                type: str
                required: true
              canary:
                description: Name prefix of the canary servers.
                type: str
                required: true
              stable:
                description: Name prefix of the stable servers.
                type: str
              timeout:
                description: Seconds to wait for the socket.
                type: float
                default: 5
          http:
            description: A number picked from a JSON document over HTTP (GET).
            type: dict
            suboptions:
              url:
                description: URL of the JSON document.
                type: str
                required: true
              jmespath:
                description: JMESPath expression selecting the number.
                type: str
              headers:
                description: Request headers. Hidden from logs.
                type: dict
              timeout:
                description: Seconds to wait for the answer.
                type: float
                default: 5
          prometheus:
            description: A Prometheus instant query.
            type: dict
            suboptions:
              url:
                description: Base URL of Prometheus.
                type: str
                required: true
              query:
                description: PromQL expression; its single sample is the value.
                type: str
                required: true
              headers:
                description: Request headers. Hidden from logs.
                type: dict
              timeout:
                description: Seconds to wait for the answer.
                type: float
                default: 5
          command:
            description: A command run on the host of the module; its output as a number, and its exit code.
            type: dict
            suboptions:
              argv:
                description: The command and its arguments (no shell unless it runs one).
                type: list
                elements: str
                required: true
              timeout:
                description: Seconds the command may take.
                type: float
                default: 10
  service:
    description: Name of the app's Service. Defaults to O(app).
    type: str
  service_ports:
    description: Ports of the Service if it has to be created (an existing Service keeps its ports).
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
    description: Wait for replicas and Endpoints after each change; with O(action=scale_down), wait for the deadline.
    type: bool
    default: true
  wait_timeout:
    description: Seconds for each wait.
    type: int
    default: 60
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: 25 percent of the pods to 2.1.0, recorded as step 0
  immutable.deploy.k8s_canary:
    app: web
    namespace: shop
    action: step
    release: 2.1.0
    stable_release: 2.0.0
    weight: 25
    total_replicas: 4
    step: 0
    steps: [{index: 0, weight: 25, pause: manual, analysis: true}, {index: 1, weight: 100, pause: 0, analysis: true}]

- name: Stop at a manual gate
  immutable.deploy.k8s_canary:
    app: web
    namespace: shop
    action: pause
    step: 0

- name: Promote whatever canary is in progress, keep the old stable warm for 10 minutes
  immutable.deploy.k8s_canary:
    app: web
    namespace: shop
    action: promote
    scale_down_delay: 600

- name: Abort whatever canary is in progress (nothing to do when there is none)
  immutable.deploy.k8s_canary:
    app: web
    namespace: shop
    action: abort
"""

RETURN = r"""
action:
  description: The action done.
  returned: always
  type: str
canary:
  description:
    - The canary's record (C(canary), C(stable), C(weight), C(step), C(next_step), C(steps), C(total_replicas),
      C(state) V(running) or V(paused), C(reason), C(updated)) as it was when the action started (step and pause,
      as written); null when no canary is in progress.
  returned: always
  type: dict
replicas:
  description: Replicas by release id after a step or an abort.
  returned: when O(action) is V(step) or V(abort) and a canary was found
  type: dict
weights:
  description: Percent of the ready pods by release id after a step.
  returned: when O(action=step)
  type: dict
analysis:
  description:
    - With O(analysis), what M(immutable.deploy.release_analysis) returns (C(verdict), C(reason), C(measurements),
      C(summary), C(rounds)); on a fail verdict also C(abort) with C(written), C(latency_ms) (verdict to the abort's
      last write), C(timing) and C(stable_ready) (how long until stable was fully ready again).
  returned: when O(action=step) and O(analysis) is given
  type: dict
switch:
  description: What M(immutable.deploy.k8s_traffic) would return for the promote's selector switch.
  returned: when O(action=promote) and a canary was found
  type: dict
previous:
  description: The old stable after a promote, C(release), C(replicas_before), C(replicas), C(scale_down_at), C(warm).
  returned: when O(action=promote) and a canary was found
  type: dict
timing:
  description:
    - With O(action=abort), milliseconds from the module's start until the selector patch (C(selector_ms)) and the
      scaling (C(scaled_ms)), and seconds until stable was fully ready with the canary out of the Endpoints (C(stable_ready_s)).
  returned: when O(action=abort) and a canary was found
  type: dict
scaled_down:
  description: With O(action=scale_down), releases scaled to 0 (C(release), C(replicas_before), C(deadline)).
  returned: when O(action=scale_down)
  type: list
  elements: dict
skipped:
  description: With O(action=scale_down), why nothing was done (the lock was held by another run).
  returned: when skipped
  type: str
"""

from ansible_collections.immutable.deploy.plugins.module_utils.k8s.canary import ACTIONS, ANALYSIS_OPTION, run
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import LEASE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.traffic import SERVICE_PORTS_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        action=dict(type="str", required=True, choices=list(ACTIONS)),
        release=dict(type="str"),
        stable_release=dict(type="str"),
        weight=dict(type="int"),
        total_replicas=dict(type="int"),
        step=dict(type="int"),
        steps=dict(type="list", elements="dict"),
        reason=dict(type="str", default="manual gate"),
        scale_down_delay=dict(type="float", default=0),
        pause=dict(type="float", default=0),
        analysis=ANALYSIS_OPTION,
        service=dict(type="str"),
        service_ports=SERVICE_PORTS_OPTION,
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=60),
        lock=LEASE_OPTION,
        **K8S_ARGS,
    )
    run_module(lambda m: run(m.params, m.check_mode), requires={"kubernetes": K8S_IMPORT_ERROR},
               argument_spec=argument_spec,
               required_if=[["action", "step", ["release", "stable_release", "weight"]]])


if __name__ == "__main__":
    main()
