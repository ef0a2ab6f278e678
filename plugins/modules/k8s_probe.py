#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_probe
short_description: Smoke-test or watch a release on Kubernetes from inside its own pods
version_added: 0.1.0
description:
  - Checks what a release of M(immutable.deploy.k8s_release) answers, without connecting to pod or ClusterIP
    addresses. The probe command runs in every running pod of the release through the Kubernetes API (exec,
    API server to kubelet) and asks the app on its own port; by default
    C(sh -c 'exec timeout <timeout> wget -q -S -O- http://127.0.0.1:<port><path>'), which busybox and GNU wget
    images have. C(wget -S) prints the status line, so an answer is judged by its HTTP status
    (O(probe.expect_status)); a command that prints none is judged by its exit code.
  - O(probe.url) also checks a URL from the host the module runs on, for example the app's ingress address.
  - O(mode=until_ok) (a smoke test) repeats rounds every O(interval) seconds until one round where every pod and
    the URL answer as expected, for at most O(duration) seconds. O(mode=watch) repeats rounds for O(duration)
    seconds and fails as soon as more than O(max_failures) answers failed.
  - A failure says what was answered, per pod the last outcome (for example C(status 500)), counts per outcome,
    and the start of a few failed answers' bodies. A pod that answers but is not Ready counts as a failure.
  - The probe changes nothing; it also runs in check mode.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.k8s
  - immutable.deploy.k8s.probe
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
    details: The probe reads only; it runs in check mode too.
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
    description: Release id whose pods are probed.
    type: str
    required: true
  mode:
    description: V(until_ok) (smoke test) or V(watch), see the description.
    type: str
    choices: [until_ok, watch]
    default: until_ok
  duration:
    description: Seconds to try (V(until_ok)) or to watch (V(watch)). V(0) is one round.
    type: float
    default: 10
  interval:
    description: Seconds between rounds.
    type: float
    default: 1
  max_failures:
    description: With O(mode=watch), failed answers allowed in the window.
    type: int
    default: 0
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Smoke-test release 2.0.0 of web before it gets traffic
  immutable.deploy.k8s_probe:
    app: web
    namespace: shop
    release: 2.0.0
    duration: 30
    probe:
      path: /health

- name: Watch the live release for a minute, through the ingress too
  immutable.deploy.k8s_probe:
    app: web
    namespace: shop
    release: 2.0.0
    mode: watch
    duration: 60
    interval: 2
    max_failures: 1
    probe:
      path: /
      url: https://shop.example.com/
      expect_status: [200, 204]

- name: An image without wget, probed by its own binary
  immutable.deploy.k8s_probe:
    app: api
    namespace: shop
    release: 7.1.0
    probe:
      command: [/app/healthcheck, --url, "{url}", --timeout, "{timeout}"]
"""

RETURN = r"""
passed:
  description: Whether the smoke test passed or the watch stayed within O(max_failures).
  returned: always
  type: bool
release:
  description: The release probed.
  returned: always
  type: str
rounds:
  description: Rounds run.
  returned: always
  type: int
requests:
  description: Answers asked for (one per pod per round, plus the URL).
  returned: always
  type: int
failures:
  description: Answers that were not as expected.
  returned: always
  type: int
outcomes:
  description: Count per outcome, for example C(status 200), C(status 500), C(exit 1) with the last line of its output, C(no answer within 5s).
  returned: always
  type: dict
  sample: {"status 200": 4, "status 500": 2}
answers:
  description: The last outcome per pod name (and per URL).
  returned: always
  type: dict
failed:
  description: Up to 5 failed answers, with C(target), C(outcome) and the start of the C(body).
  returned: always
  type: list
  elements: dict
seconds:
  description: Seconds the probe took.
  returned: always
  type: float
"""

from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import LEASE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.probe import PROBE_OPTION, check
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        release=dict(type="str", required=True),
        mode=dict(type="str", default="until_ok", choices=["until_ok", "watch"]),
        duration=dict(type="float", default=10),
        interval=dict(type="float", default=1),
        max_failures=dict(type="int", default=0),
        probe=PROBE_OPTION,
        lock=LEASE_OPTION,
        **K8S_ARGS,
    )
    run_module(lambda m: check(m.params, m.check_mode), requires={"kubernetes": K8S_IMPORT_ERROR},
               argument_spec=argument_spec)


if __name__ == "__main__":
    main()
