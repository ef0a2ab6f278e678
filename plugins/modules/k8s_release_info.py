#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_release_info
short_description: List the releases of an app on Kubernetes, newest first, with their traffic
version_added: 0.1.0
description:
  - Reads the releases created by M(immutable.deploy.k8s_release) (one Deployment per release) from their labels,
    annotations and status; nothing is kept on the controller.
  - Tells which releases take traffic from the app's Service. When it selects one release, that release is live
    with weight 100. When it selects the whole app (a canary by replica ratio), each release's weight is its share
    of the ready addresses in the Service's Endpoints.
  - Marks the release the preview Service selects.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.k8s
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
    description: Only this release id (weights are still computed against all releases).
    type: str
  service:
    description: Name of the Service that routes to the app. Defaults to O(app).
    type: str
  preview_service:
    description: Name of the preview Service. Defaults to C(<app>-preview).
    type: str
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Which releases of web exist, and which one is live
  immutable.deploy.k8s_release_info:
    app: web
    namespace: shop
  register: web

- name: The live release
  ansible.builtin.debug:
    msg: "{{ (web.releases | selectattr('live') | first).id }} takes the traffic of {{ web.service.name }}"
"""

RETURN = r"""
releases:
  description: Releases of the app, newest first (by their C(immutable-deploy.io/created) annotation).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Release id.
      type: str
      returned: always
    name:
      description: Name of the Deployment.
      type: str
      returned: always
    slot:
      description: Slot (blue or green).
      type: str
      returned: always
    digest:
      description: Content digest of the image.
      type: str
      returned: always
    image:
      description: Image reference, pinned by digest.
      type: str
      returned: always
    replicas:
      description: Replicas the Deployment wants now (C(spec.replicas)).
      type: int
      returned: always
    full_replicas:
      description: The release's full size (kept while a canary scales it down).
      type: int
      returned: always
    ready_replicas:
      description: Ready replicas.
      type: int
      returned: always
    state:
      description: V(running) (all wanted replicas ready, at least one), V(stopped) (scaled to 0) or V(partial).
      type: str
      returned: always
    health:
      description:
        - V(healthy) (every wanted replica ready), V(unhealthy) (the rollout missed its progress deadline,
          a replica failed, or a pod cannot start, for example C(CrashLoopBackOff) or C(ImagePullBackOff))
          or V(progressing).
      type: str
      returned: always
    created:
      description: Creation time (UTC, ISO 8601).
      type: str
      returned: always
    live:
      description: Whether the Service sends traffic to the release.
      type: bool
      returned: always
    weight:
      description: Percent of the Service's traffic, 0 to 100 (rounded).
      type: int
      returned: always
    preview:
      description: Whether the preview Service selects the release.
      type: bool
      returned: always
    canary:
      description:
        - The progress of a canary of M(immutable.deploy.k8s_canary) when the release is one (C(stable), C(weight),
          C(step), C(next_step), C(steps), C(total_replicas), C(state) V(running) or V(paused), C(reason), C(updated));
          null otherwise.
      type: dict
      returned: always
    scale_down_at:
      description:
        - When a release kept warm after a promote (C(scale_down_delay)) is due to be scaled to 0 (UTC, RFC 3339);
          null when it is not in such a window.
      type: str
      returned: always
service:
  description: The Service, C(mode) V(release) when it selects one release, V(app) when it selects the whole app, V(none) otherwise.
  returned: always
  type: dict
  sample: {name: web, exists: true, mode: release,
           selector: {immutable-deploy.io/app: web, immutable-deploy.io/release: 2.0.0}}
preview_service:
  description: The preview Service, the same way as RV(service).
  returned: always
  type: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.release import info
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        app=dict(type="str", required=True),
        release=dict(type="str"),
        service=dict(type="str"),
        preview_service=dict(type="str"),
        **K8S_ARGS,
    )
    run_module(lambda m: info(m.params), requires={"kubernetes": K8S_IMPORT_ERROR}, argument_spec=argument_spec)


if __name__ == "__main__":
    main()
