#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: Take or release the deploy lock of an app on a target or in a Kubernetes cluster
version_added: 0.1.0
description:
  - O(backend=file), a lock file per app on the target, created atomically. A second deploy of the same app
    fails fast with who holds the lock, why and since when. A lock left by a killed run stays until it is
    broken on purpose with O(break_lock).
  - O(backend=kubernetes), a C(coordination.k8s.io/v1) Lease C(<name>-deploy-lock) in O(namespace), so every
    controller that deploys the app (operators, AWX nodes) shares it. C(holderIdentity) is O(owner); O(purpose)
    and the controller's host name are annotations. The lock expires O(lease_seconds) after its last renewal;
    taking it again with the same O(owner) renews it, and the Kubernetes modules of this collection renew it
    while they run when given it as their C(lock) option. A run that died is taken over once its lease has
    expired, without O(break_lock); a live holder makes the module fail at once with who holds it, why, since
    when and when it expires.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.k8s
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.k8s) in C(module_defaults) sets the connection options (O(kubeconfig), O(context),
        O(host), O(api_key), O(verify_ssl), O(ca_cert), O(client_cert), O(client_key)), O(namespace) and
        O(request_timeout) for all modules of the group; they are used with O(backend=kubernetes) only.
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
  name:
    description: The lock name, usually the app name.
    type: str
    required: true
  owner:
    description: Token identifying this run; taking a lock you already own is a no-op.
    type: str
    required: true
  purpose:
    description: What the run does, shown to whoever finds the lock taken.
    type: str
    default: deploy
  state:
    description: V(present) takes the lock, V(absent) releases it.
    type: str
    default: present
    choices: [present, absent]
  break_lock:
    description: Take or remove a lock held by another owner (for a run that died).
    type: bool
    default: false
  directory:
    description: Directory holding the lock files, with O(backend=file).
    type: path
    default: /var/lib/immutable-deploy/locks
  backend:
    description:
      - V(file), a lock file on the host the module runs on; V(kubernetes), a Lease in the cluster (see the
        description). The connection options are used with V(kubernetes) only.
    type: str
    default: file
    choices: [file, kubernetes]
  lease_seconds:
    description:
      - With O(backend=kubernetes), seconds the lock stays valid after each renewal (C(leaseDurationSeconds)),
        at least 3. A run that dies holds it at most that long.
    type: int
    default: 30
notes:
  - Requires the kubernetes Python client with O(backend=kubernetes) only.
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Take the lock for the deploy
  immutable.deploy.deploy_lock:
    name: shop-web
    owner: "{{ run_token }}"
    purpose: "blue-green to 1.4.2"

- name: Release it
  immutable.deploy.deploy_lock:
    name: shop-web
    owner: "{{ run_token }}"
    state: absent

- name: Take the lock of web shared by every controller of the cluster (a Lease in namespace shop)
  immutable.deploy.deploy_lock:
    backend: kubernetes
    namespace: shop
    name: web
    owner: "{{ run_token }}"
    purpose: "blue-green to 1.4.2"
    lease_seconds: 30
"""

RETURN = r"""
lock:
  description:
    - The lock record now held, or null after release. O(backend=file), owner, purpose, since, host, pid.
      O(backend=kubernetes), owner, purpose, host, since and renewed (RFC 3339), lease_seconds, age,
      expires_in (seconds), expired.
  returned: always
  type: dict
broken:
  description: The record of another owner's live lock that was broken with O(break_lock), if any.
  returned: always
  type: dict
expired_holder:
  description: With O(backend=kubernetes), the record of a run whose lease had expired and was taken over.
  returned: when O(backend=kubernetes) and O(state=present)
  type: dict
lease:
  description: With O(backend=kubernetes), C(<namespace>/<name>-deploy-lock).
  returned: when O(backend=kubernetes)
  type: str
"""

from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.immutable.deploy.plugins.module_utils import lock
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR, Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import LeaseLock
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def lease_lock(module: AnsibleModule) -> Dict[str, Any]:
    p = module.params
    if K8S_IMPORT_ERROR is not None:  # only this backend needs the library
        raise DeployError(missing_required_lib("kubernetes"), exception=K8S_IMPORT_ERROR)
    held = LeaseLock(Client(p), p["name"], p["owner"], p["purpose"], p["lease_seconds"])
    if p["state"] == "present":
        return held.acquire(p["break_lock"], module.check_mode)
    return held.release(p["break_lock"], module.check_mode)


def handler(module: AnsibleModule) -> Dict[str, Any]:
    p = module.params
    if p["backend"] == "kubernetes":
        return lease_lock(module)
    if p["state"] == "present":
        return lock.acquire(p["directory"], p["name"], p["owner"], p["purpose"], p["break_lock"], module.check_mode)
    return lock.release(p["directory"], p["name"], p["owner"], p["break_lock"], module.check_mode)


def main() -> None:
    run_module(handler, argument_spec=dict(
        name=dict(type="str", required=True),
        owner=dict(type="str", required=True),
        purpose=dict(type="str", default="deploy"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        break_lock=dict(type="bool", default=False),
        directory=dict(type="path", default="/var/lib/immutable-deploy/locks"),
        backend=dict(type="str", default="file", choices=["file", "kubernetes"]),
        lease_seconds=dict(type="int", default=30),
        **K8S_ARGS,
    ))


if __name__ == "__main__":
    main()
