#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: release_analysis
short_description: Measure a release (canary) over time and return a verdict
version_added: 0.1.0
description:
  - Measures every metric in O(metrics) O(count) times, one round every O(interval) seconds, and returns the
    verdict V(pass), V(fail) or V(inconclusive) with every measurement. The canary role uses it between weight steps.
  - Every condition and JMESPath expression is checked before the first measurement, so bad input fails at once
    and nothing is measured.
  - Each round waits O(interval) seconds, then measures every metric. The V(haproxy) provider covers exactly that
    window (counter snapshot at the start, delta at the end; rounds are back to back); the other providers are
    sampled at the end of the round.
  - A metric's measurement passes when its O(metrics[].success) condition is true, fails when it is false, and is
    inconclusive when it cannot be taken (endpoint unreachable, HTTP error, JMESPath result missing or not a number,
    Prometheus error or empty vector, command timeout, fewer than O(metrics[].min_requests) canary requests) or the
    condition cannot be evaluated (for example V(stable) has no value). The reason is recorded; it never crashes.
  - 'Verdict rules: a round fails when any metric failed, else it is inconclusive when any metric was inconclusive,
    else it passes. The analysis stops with verdict V(fail) as soon as the failed rounds exceed O(failure_limit).
    When every round ran: with no inconclusive round the verdict is V(pass) (failed rounds within O(failure_limit) are
    tolerated); with at least one inconclusive round O(inconclusive) decides.'
  - 'Condition language (a safe evaluator built on Python''s ast, not eval and not Jinja): numbers, strings,
    V(True), V(False), V(None), the names of the provider, comparisons (chained too; V(in) and V(not in) on
    strings), V(and), V(or), V(not), V(+ - * /), parentheses, calls of V(abs), V(min) and V(max). The top of the
    condition must be a test. Anything else (attributes, subscripts, other calls, lambdas, V(**)) is rejected.'
  - 'Names: V(haproxy): V(result) (canary value), V(stable) (stable value, V(None) without stable requests or
    without O(metrics[].haproxy.stable)), V(requests), V(stable_requests). V(http), V(prometheus): V(result).
    V(command): V(exit_code), V(output) (stdout, stripped), V(result) (stdout as a number, else V(None)).'
  - Runs on the target, so a router or endpoint bound to 127.0.0.1 there is reachable.
  - With O(abort), a verdict V(fail) also gives stable all the traffic back, written by this module the moment it
    decides (HAProxy runtime API, precomputed commands, one write), not by a later task; C(abort) in the result
    gives the decision and write times and what was written. Without O(abort) the module only reads.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  action_group:
    description: Not in any action group; it shares no option with the other modules.
    support: none
    membership: []
  check_mode:
    support: full
    details:
      - The analysis is read-only (it only reads stats and endpoints and runs the given commands), so it runs in check mode too.
      - With O(abort), check mode reports the abort it would write on a verdict V(fail) (C(changed)) and writes nothing.
  diff_mode:
    support: full
    details: Only the O(abort) write changes anything; its diff is the listed servers' address, port, weight and state
      as read before the first measurement and as written.
  platform:
    platforms: posix
options:
  interval:
    description: Seconds each round lasts before its measurement (more than 0).
    type: float
    default: 10
  count:
    description: Number of rounds (measurements), 1 or more.
    type: int
    default: 3
  failure_limit:
    description: Failed rounds tolerated; one more ends the analysis at once with verdict V(fail).
    type: int
    default: 0
  inconclusive:
    description:
      - What an analysis with inconclusive rounds (and failures within O(failure_limit)) means.
      - V(pause) returns verdict V(inconclusive) without failing the task (the caller decides, for example with a pause).
      - V(fail) makes the verdict V(fail). V(pass) makes it V(pass).
    type: str
    default: fail
    choices: [pause, fail, pass]
  fail_on_verdict:
    description: Fail the task when the verdict is V(fail), with the verdict and the numbers in the message. The results are returned either way.
    type: bool
    default: true
  fail_fast:
    description:
      - End a round early, once a second, as soon as a metric that can be read before the round ends (the
        V(haproxy) provider, once O(metrics[].min_requests) is reached) fails its condition. A bad canary is
        then stopped within about a second of having enough requests instead of at the end of the interval.
      - Passing still takes the whole interval.
    type: bool
    default: false
  metrics:
    description: What to measure in every round.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the metric, unique; keys the results.
        type: str
        required: true
      provider:
        description: Where the value comes from; the option of the same name holds its settings.
        type: str
        required: true
        choices: [haproxy, http, prometheus, command]
      success:
        description: Condition that must be true for the measurement to pass, see the description for the language and names.
        type: str
        required: true
      query:
        description:
          - V(haproxy) only. V(error_ratio) = 5xx answers / all answers (hrsp_1xx..5xx and other) HAProxy counted for the servers in the round.
          - V(mean_response_time) = mean response time in ms. HAProxy only keeps C(rtime), each server's average over its last
            1024 requests; the value is that average at the end of the round weighted by each server's requests in the round,
            an approximation when a server gets more than 1024 requests per round or few requests.
          - V(request_count) = answers counted in the round.
          - Defaults to V(error_ratio).
        type: str
        choices: [error_ratio, mean_response_time, request_count]
      min_requests:
        description: V(haproxy) only. Fewer canary requests than this in a round make the measurement inconclusive.
        type: int
        default: 0
      haproxy:
        description: The router's own per-server counters, canary servers against stable servers.
        type: dict
        suboptions:
          socket:
            description: HAProxy stats socket, a unix socket path or C(tcp:HOST:PORT).
            type: str
            required: true
          backend:
            description: Backend whose servers are measured.
            type: str
            required: true
          canary:
            description: Name prefix of the canary servers (their slot, for example V(green)); their counters are summed.
            type: str
            required: true
          stable:
            description: Name prefix of the stable servers; supplies V(stable). Without it V(stable) is V(None).
            type: str
          timeout:
            description: Seconds to wait for the stats socket.
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
            description:
              - JMESPath expression selecting the number, which must be a JSON number (a numeric string is not one).
              - Needs the C(jmespath) Python library. Without it the whole document must be a number.
            type: str
          headers:
            description: Request headers, for example an Authorization header. Hidden from logs.
            type: dict
          timeout:
            description: Seconds to wait for the answer.
            type: float
            default: 5
      prometheus:
        description: A Prometheus instant query (C(/api/v1/query)); the result must be a scalar or a vector of one series.
        type: dict
        suboptions:
          url:
            description: Base URL of Prometheus, for example V(http://127.0.0.1:9090).
            type: str
            required: true
          query:
            description: PromQL expression; aggregate it to one series, for example with C(sum()).
            type: str
            required: true
          headers:
            description: Request headers, for example an Authorization header. Hidden from logs.
            type: dict
          timeout:
            description: Seconds to wait for the answer.
            type: float
            default: 5
      command:
        description: A command run on the target in every round (no shell unless O(metrics[].command.argv) starts one).
        type: dict
        suboptions:
          argv:
            description: The command and its arguments.
            type: list
            elements: str
            required: true
          timeout:
            description: Seconds the command may run; longer makes the measurement inconclusive.
            type: float
            default: 10
  abort:
    description:
      - What to write to an HAProxy router when the verdict is V(fail), in this module's process right after the
        verdict, before the module returns (a later task would leave the canary serving for a module start-up or more).
      - Checked before the first measurement (socket reachable, backends and servers known, weights and states valid);
        bad input fails at once and nothing is measured or changed. The runtime commands are computed then, so the
        abort itself is one write with no read before it.
      - Weight and state of every listed server are written as given (absolute, so the write is right even when
        something changed during the analysis); address and port only when they differ. Servers that take traffic
        are written first, then the ones leaving, so no backend is ever empty in between.
      - A failed write does not fail the module by itself; C(abort.error) says why, and the verdict is returned as usual.
      - Not written for the verdicts V(pass) and V(inconclusive), nor in check mode.
    type: dict
    suboptions:
      socket:
        description: HAProxy admin socket (C(level admin)), a unix socket path or C(tcp:HOST:PORT).
        type: str
        required: true
      timeout:
        description: Seconds to wait for the socket.
        type: float
        default: 5
      state_file:
        description: HAProxy server-state-file to save after the write (off the timed path), so a restart keeps the abort.
        type: path
      backends:
        description: Backends to write, in this order.
        type: list
        elements: dict
        required: true
        suboptions:
          backend:
            description: Backend name.
            type: str
            required: true
          exclusive:
            description: Servers of the backend not listed in O(abort.backends[].servers) get weight 0 and state V(maint).
            type: bool
            default: false
          servers:
            description: Servers and what to write to them (at least one unless O(abort.backends[].exclusive=true)).
            type: list
            elements: dict
            default: []
            suboptions:
              name:
                description: Server name in the backend.
                type: str
                required: true
              weight:
                description: Weight, 0 to 256.
                type: int
                required: true
              state:
                description: Administrative state.
                type: str
                choices: [ready, drain, maint]
                default: ready
              address:
                description: IP address; written only when it differs from the server's.
                type: str
              port:
                description: Port; written only when it differs from the server's.
                type: int
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Analyse the green canary against blue for 3 x 10 s
  immutable.deploy.release_analysis:
    interval: 10
    count: 3
    inconclusive: fail
    metrics:
      - name: error-rate
        provider: haproxy
        haproxy: {socket: /run/immutable-deploy/web/haproxy.sock, backend: web, canary: green, stable: blue}
        query: error_ratio
        min_requests: 20
        success: "result < 0.01 and result <= stable * 2 + 0.005"
      - name: p99
        provider: http
        http: {url: "http://127.0.0.1:9100/metrics.json", jmespath: "latency.p99"}
        success: "result < 300"
      - name: smoke
        provider: command
        command: {argv: [/usr/local/bin/smoke-test, --quick]}
        success: "exit_code == 0"
  register: analysis

- name: Pause-style analysis, the play decides what inconclusive means
  immutable.deploy.release_analysis:
    interval: 30
    count: 10
    failure_limit: 1
    inconclusive: pause
    metrics:
      - name: error-budget
        provider: prometheus
        prometheus: {url: "http://127.0.0.1:9090", query: 'sum(rate(http_requests_total{code=~"5.."}[1m]))'}
        success: "result < 1"
  register: analysis

- name: Analyse the canary; on a fail verdict give blue all traffic back from this very process
  immutable.deploy.release_analysis:
    interval: 10
    count: 1
    fail_fast: true
    fail_on_verdict: false
    metrics:
      - name: error-rate
        provider: haproxy
        haproxy: {socket: /run/immutable-deploy/web/haproxy.sock, backend: web, canary: green, stable: blue}
        min_requests: 20
        success: "result <= 0.01"
    abort:
      socket: /run/immutable-deploy/web/haproxy.sock
      state_file: /run/immutable-deploy/web/server-state
      backends:
        - backend: web
          servers:
            - {name: blue1, weight: 100, state: ready}
            - {name: green1, weight: 0, state: maint}
        - backend: web_preview
          exclusive: true
  register: analysis
"""

RETURN = r"""
verdict:
  description: V(pass), V(fail) or V(inconclusive) (only with O(inconclusive=pause)).
  returned: always
  type: str
  sample: fail
reason:
  description: Why, with the numbers of the deciding round.
  returned: always
  type: str
  sample: >-
    1 failed round(s) exceed failure_limit 0; stopped after round 1 of 3; round 1: error-rate=0.31 (stable 0.0)
    over 96 requests: condition 'result < 0.01' is false
measurements:
  description:
    - One entry per round run, with C(round), C(elapsed) (seconds since the start), C(outcome) (pass, fail, inconclusive) and C(metrics).
    - C(metrics) maps each metric name to C(value), C(passed) (true, false, or null when inconclusive), C(reason)
      (empty when passed), C(stable) (haproxy), C(requests) and C(stable_requests) (haproxy), C(exit_code) and C(output) (command).
  returned: always
  type: list
  elements: dict
  sample: [{"round": 1, "elapsed": 10.01, "outcome": "pass",
            "metrics": {"error-rate": {"value": 0.0, "stable": 0.0, "requests": 312, "stable_requests": 2871, "passed": true, "reason": ""}}}]
summary:
  description: Per metric, the count of C(passes), C(failures) and C(inconclusive) measurements.
  returned: always
  type: dict
  sample: {"error-rate": {"passes": 3, "failures": 0, "inconclusive": 0}}
rounds:
  description: Rounds that passed, failed and were inconclusive, C(planned) (O(count)) and C(run).
  returned: always
  type: dict
  sample: {"pass": 3, "fail": 0, "inconclusive": 0, "planned": 3, "run": 3}
elapsed:
  description: Seconds the analysis took.
  returned: always
  type: float
decided_at:
  description:
    - When the verdict was known, in seconds of the host's monotonic clock (C(CLOCK_MONOTONIC), shared by every process
      of the host, so comparable with timestamps taken by other programs there; not a wall-clock time).
  returned: always
  type: float
  sample: 84213.517342
abort:
  description:
    - The O(abort) write. C(written) (bool), C(reason), C(socket), C(backends) (each C(backend) with the C(servers) and
      the C(name), C(weight), C(state) (and C(address), C(port) when given) written or to be written), C(commands) (the
      runtime commands, in order).
    - When the verdict was V(fail) also C(decided_at) (as RV(decided_at)), C(written_at) (same clock, when HAProxy had
      answered the write), C(latency_ms) (decision to write done), C(pid) (this module's process, which both decided and
      wrote), C(state_file), and C(error) when the write failed.
  returned: when O(abort) is set
  type: dict
  sample: {"written": true, "reason": "verdict fail", "socket": "/run/immutable-deploy/web/haproxy.sock",
           "backends": [{"backend": "web", "servers": [{"name": "blue1", "weight": 100, "state": "ready"},
                                                       {"name": "green1", "weight": 0, "state": "maint"}]}],
           "commands": ["set server web/blue1 weight 100", "set server web/blue1 state ready",
                        "set server web/green1 state maint", "set server web/green1 weight 0"],
           "decided_at": 84213.517342, "written_at": 84213.518101, "latency_ms": 0.759, "pid": 4242,
           "state_file": "/run/immutable-deploy/web/server-state"}
"""

from ansible_collections.immutable.deploy.plugins.module_utils.analysis.verdict import METRIC_OPTIONS, run
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    run_module(lambda m: run(m.params, m.check_mode), argument_spec=dict(
        interval=dict(type="float", default=10),
        count=dict(type="int", default=3),
        failure_limit=dict(type="int", default=0),
        inconclusive=dict(type="str", default="fail", choices=["pause", "fail", "pass"]),
        fail_on_verdict=dict(type="bool", default=True),
        fail_fast=dict(type="bool", default=False),
        metrics=dict(type="list", elements="dict", required=True, options=METRIC_OPTIONS),
        abort=dict(type="dict", options=dict(
            socket=dict(type="str", required=True),
            timeout=dict(type="float", default=5),
            state_file=dict(type="path"),
            backends=dict(type="list", elements="dict", required=True, options=dict(
                backend=dict(type="str", required=True),
                exclusive=dict(type="bool", default=False),
                servers=dict(type="list", elements="dict", default=[], options=dict(
                    name=dict(type="str", required=True),
                    weight=dict(type="int", required=True),
                    state=dict(type="str", default="ready", choices=["ready", "drain", "maint"]),
                    address=dict(type="str"),
                    port=dict(type="int"),
                )),
            )),
        )),
    ))


if __name__ == "__main__":
    main()
