#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: http_check
short_description: Smoke-test or watch an HTTP endpoint
version_added: 0.1.0
description:
  - V(until_ok) mode (smoke test) requests O(url) until one answer passes, or fails after O(duration).
  - V(watch) mode requests O(url) every O(interval) for O(duration) seconds and fails as soon as more
    than O(max_failures) answers fail, with every outcome counted. The strategies use it for the
    post-switch window.
  - Runs on the target, so a router bound to 127.0.0.1 there is reachable.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  action_group:
    description: Not in any action group; it shares no option with the other modules.
    support: none
    membership: []
  check_mode:
    support: full
    details: Requests are read-only and are sent in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: URL to request.
    type: str
    required: true
  mode:
    description: V(until_ok) or V(watch), see the description.
    type: str
    default: until_ok
    choices: [until_ok, watch]
  duration:
    description: Seconds to try (V(until_ok)) or to watch (V(watch)).
    type: float
    default: 10
  interval:
    description: Seconds between requests.
    type: float
    default: 0.5
  timeout:
    description: Seconds to wait for one answer.
    type: float
    default: 5
  expect_status:
    description: Status codes that pass.
    type: list
    elements: int
    default: [200]
  body_contains:
    description: Text the body must contain to pass.
    type: str
  max_failures:
    description: Failed answers tolerated in V(watch) mode.
    type: int
    default: 0
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Smoke-test the new release through the preview frontend
  immutable.deploy.http_check:
    url: http://127.0.0.1:8081/health
    duration: 20

- name: Watch the live frontend for 30 s after the switch
  immutable.deploy.http_check:
    url: http://127.0.0.1:8080/health
    mode: watch
    duration: 30
"""

RETURN = r"""
passed:
  description: Whether the check passed (a failed check fails the task).
  returned: always
  type: bool
requests:
  description: Requests sent.
  returned: always
  type: int
failures:
  description: Requests that did not pass.
  returned: always
  type: int
outcomes:
  description: 'Count of each outcome, for example C({"status 200": 40, "status 503": 1}).'
  returned: always
  type: dict
max_latency:
  description: Slowest answer in seconds.
  returned: always
  type: float
"""

from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.probe import check


def main() -> None:
    run_module(lambda m: check(m.params), argument_spec=dict(
        url=dict(type="str", required=True),
        mode=dict(type="str", default="until_ok", choices=["until_ok", "watch"]),
        duration=dict(type="float", default=10),
        interval=dict(type="float", default=0.5),
        timeout=dict(type="float", default=5),
        expect_status=dict(type="list", elements="int", default=[200]),
        body_contains=dict(type="str"),
        max_failures=dict(type="int", default=0),
    ))


if __name__ == "__main__":
    main()
