#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: Take or release the deploy lock of an app on a target
version_added: 0.1.0
description:
  - A lock file per app on the target, created atomically. A second deploy of the same app
    fails fast with who holds the lock, why and since when.
  - A lock left by a killed run stays until it is broken on purpose with O(break_lock).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  action_group:
    description: Not in any action group; it shares no option with the other modules.
    support: none
    membership: []
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
    description: Directory holding the lock files.
    type: path
    default: /var/lib/immutable-deploy/locks
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
"""

RETURN = r"""
lock:
  description: The lock record now held (owner, purpose, since, host, pid), or null after release.
  returned: always
  type: dict
broken:
  description: The record of another owner's lock that was broken, if any.
  returned: always
  type: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils import lock
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def handler(module):
    p = module.params
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
    ))


if __name__ == "__main__":
    main()
