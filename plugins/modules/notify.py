#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: notify
short_description: Send a deploy event to a webhook (JSON or a Slack-compatible message), signed
version_added: 0.1.0
description:
  - POSTs one deploy event (start, success, failure, abort, rollback, paused) to O(url), either as the event
    itself in JSON (O(format=generic)) or as a Slack incoming-webhook message (O(format=slack); Mattermost and
    Rocket.Chat accept it too).
  - With O(secret), the header O(signature_header) carries C(sha256=<hex>), the HMAC-SHA256 of the exact
    body bytes, so the receiver can check who sent it. Every attempt of one call carries the same
    C(X-Immutable-Deploy-Delivery) id, so a receiver can drop a duplicate.
  - Connection errors, timeouts, HTTP 408, 425, 429 and 5xx are retried O(retries) times, waiting O(backoff)
    seconds before the first retry and twice as long before each next one (or what the receiver's
    C(Retry-After) asks, at most 60 s). Other answers fail at once.
  - A notification never changes the managed system, so the task is never C(changed).
  - The roles M(immutable.deploy.blue_green), M(immutable.deploy.canary) and M(immutable.deploy.rollback) call
    it at start, success, failure, abort and rollback when their C(<role>_notify) variable lists webhooks.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  action_group:
    description: Not in any action group; it shares no option with the other modules.
    support: none
    membership: []
  check_mode:
    support: full
    details: Builds and returns the event and sends nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description:
      - Webhook URL (http or https). Treated as a secret, since chat webhook URLs carry their token; results
        name only its scheme and host (RV(endpoint)).
      - Defaults to the E(IMMUTABLE_DEPLOY_NOTIFY_URL) environment variable (an AWX custom credential can inject it).
    type: str
    required: true
  format:
    description: V(generic) sends the event as JSON; V(slack) a Slack-compatible C(text) and C(blocks) message.
    type: str
    choices: [generic, slack]
    default: generic
  event:
    description: What happened.
    type: str
    required: true
    choices: [start, success, failure, abort, rollback, paused]
  app:
    description: The app deployed.
    type: str
    required: true
  strategy:
    description: The strategy or job, for example V(blue_green), V(canary), V(rollback).
    type: str
  target:
    description: Where releases run, for example V(docker) or V(kubernetes).
    type: str
  release:
    description: The release deployed (or rolled back to).
    type: str
  previous:
    description: The release that was live before.
    type: str
  image:
    description: The image reference, pinned by digest.
    type: str
  reason:
    description: Why, for failure, abort and rollback events.
    type: str
  run_id:
    description: Token of this run; the start and the closing event of one run carry the same one.
    type: str
  host:
    description: Host the event is about; default the host the module runs on.
    type: str
  details:
    description: Structured outcome to pass along (for example the role's C(*_result) fact).
    type: dict
    default: {}
  secret:
    description:
      - Shared secret of the HMAC-SHA256 signature. Never logged. Without it the request is not signed.
      - Defaults to the E(IMMUTABLE_DEPLOY_NOTIFY_SECRET) environment variable.
    type: str
  signature_header:
    description: Header that carries the signature.
    type: str
    default: X-Immutable-Deploy-Signature-256
  headers:
    description: Extra request headers (for example an C(Authorization) header).
    type: dict
    default: {}
  timeout:
    description: Seconds to wait for each attempt.
    type: float
    default: 10
  retries:
    description: Attempts after the first one.
    type: int
    default: 3
  backoff:
    description: Seconds before the first retry; doubled before each next one.
    type: float
    default: 1
  required:
    description:
      - V(true) fails the task when the event could not be delivered.
      - V(false) returns RV(delivered=false) with a warning instead, so a webhook that is down never fails
        a deploy that went well (the roles pass C(<role>_notify_required)).
    type: bool
    default: true
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_path:
    description: CA certificate bundle (PEM) to verify the server with, for an internal CA.
    type: path
  client_cert:
    description: Client certificate (PEM) for mutual TLS.
    type: path
  client_key:
    description: Private key of O(client_cert) when it is not in the same file.
    type: path
  use_proxy:
    description: Use the proxy of the C(https_proxy)/C(http_proxy) environment variables (honouring C(no_proxy)).
    type: bool
    default: true
  http_agent:
    description: User-Agent header.
    type: str
    default: immutable.deploy-notify
notes:
  - "Verifying a signature (Python): C(hmac.compare_digest(header, 'sha256=' + hmac.new(secret, body,
    hashlib.sha256).hexdigest())) over the raw request body."
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Tell the team chat that web 2.0.0 is live
  immutable.deploy.notify:
    url: "{{ slack_webhook_url }}"
    format: slack
    event: success
    app: web
    strategy: blue_green
    release: 2.0.0
    previous: 1.9.0

- name: Signed JSON event to an internal receiver behind an internal CA; never fail the job for it
  immutable.deploy.notify:
    url: https://deploy-events.example.internal/hooks/deploy
    secret: "{{ deploy_events_secret }}"
    ca_path: /etc/pki/internal-ca.pem
    event: failure
    app: web
    reason: "release 2.0.0 never got healthy"
    retries: 5
    required: false
"""

RETURN = r"""
event:
  description: The event (the body of a V(generic) notification).
  returned: always
  type: dict
  sample: {"schema": "immutable.deploy/event/v1", "event": "success", "app": "web", "strategy": "blue_green",
           "target": "docker", "release": "2.0.0", "previous": "1.9.0", "image": "registry/web:2.0.0@sha256:...",
           "reason": null, "run_id": "k2x9...", "host": "web1", "timestamp": "2025-01-31T12:00:00Z", "details": {}}
format:
  description: The format sent.
  returned: always
  type: str
endpoint:
  description: Scheme and host of O(url) (its path and query are left out, as they may carry a token).
  returned: always
  type: str
  sample: https://hooks.slack.com
delivery:
  description: Id of this delivery, the same on every attempt (header C(X-Immutable-Deploy-Delivery)).
  returned: always
  type: str
signed:
  description: Whether the request carried a signature.
  returned: always
  type: bool
delivered:
  description: Whether the receiver accepted it (always V(false) in check mode, where nothing is sent).
  returned: always
  type: bool
status:
  description: HTTP status of the last attempt; null when no answer came.
  returned: always
  type: int
attempts:
  description: Every attempt, with C(attempt), C(status), C(error), C(seconds) and, before a retry, C(retry_in).
  returned: always
  type: list
  elements: dict
  sample: [{"attempt": 1, "status": 503, "error": "HTTP 503 Service Unavailable", "seconds": 0.01, "retry_in": 1.0},
           {"attempt": 2, "status": 200, "error": null, "seconds": 0.01}]
error:
  description: Why it was not delivered, with O(required=false).
  returned: when not delivered and not required
  type: str
"""

from ansible.module_utils.basic import env_fallback

from ansible_collections.immutable.deploy.plugins.module_utils import notify
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def handler(module):
    result = notify.notify(module.params, module.check_mode)
    if "error" in result:
        module.warn(result["error"])
    return result


def main() -> None:
    run_module(handler, argument_spec=dict(
        url=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["IMMUTABLE_DEPLOY_NOTIFY_URL"])),
        format=dict(type="str", default="generic", choices=list(notify.FORMATS)),
        event=dict(type="str", required=True, choices=list(notify.EVENTS)),
        app=dict(type="str", required=True),
        strategy=dict(type="str"),
        target=dict(type="str"),
        release=dict(type="str"),
        previous=dict(type="str"),
        image=dict(type="str"),
        reason=dict(type="str"),
        run_id=dict(type="str"),
        host=dict(type="str"),
        details=dict(type="dict", default={}),
        secret=dict(type="str", no_log=True, fallback=(env_fallback, ["IMMUTABLE_DEPLOY_NOTIFY_SECRET"])),
        signature_header=dict(type="str", default="X-Immutable-Deploy-Signature-256"),
        headers=dict(type="dict", default={}),
        timeout=dict(type="float", default=10),
        retries=dict(type="int", default=3),
        backoff=dict(type="float", default=1),
        required=dict(type="bool", default=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        client_cert=dict(type="path"),
        client_key=dict(type="path"),
        use_proxy=dict(type="bool", default=True),
        http_agent=dict(type="str", default="immutable.deploy-notify"),
    ))


if __name__ == "__main__":
    main()
