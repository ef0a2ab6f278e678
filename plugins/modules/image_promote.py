#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: image_promote
short_description: Promote one image digest to another tag, repository or registry
version_added: 0.1.0
description:
  - Copies the manifest and blobs of O(source) to O(target) through the registry HTTP API, byte for
    byte, so the digest cannot change and nothing is rebuilt. Within one registry, blobs are
    mounted across repositories and no layer bytes move. No Docker engine is needed.
  - The pushed digest is verified against the source digest.
  - When O(target) already points at the same digest nothing is done; when it points at another
    digest the module fails, since a version is never re-pointed.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.registry
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.registry) in C(module_defaults) sets O(registry_scheme), O(validate_certs), O(moving_tags) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.registry
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  source:
    description: C(name@sha256:...) (preferred) or C(name:version) of an image in a registry.
    type: str
    required: true
  target:
    description: C(repository:version) to create, in the same or another registry.
    type: str
    required: true
  source_username:
    description: User name for the source registry.
    type: str
  source_password:
    description: Password or token for the source registry. Never logged.
    type: str
  target_username:
    description: User name for the target registry.
    type: str
  target_password:
    description: Password or token for the target registry. Never logged.
    type: str
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Promote the tested digest to the production registry
  immutable.deploy.image_promote:
    source: registry.staging.example.com/shop/web@sha256:6f1c0a0d...
    target: registry.prod.example.com/shop/web:1.4.2
    target_username: release
    target_password: "{{ vault_prod_registry_password }}"
"""

RETURN = r"""
digest:
  description: The promoted digest, identical in source and target.
  returned: always
  type: str
source:
  description: C(ref) (pinned source) and C(tag).
  returned: always
  type: dict
target:
  description: C(ref) (target pinned by digest) and C(tagged).
  returned: always
  type: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.images.promote import promote
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import MOVING_TAGS_ARG, REGISTRY_ARGS
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        source=dict(type="str", required=True),
        target=dict(type="str", required=True),
        source_username=dict(type="str"),
        source_password=dict(type="str", no_log=True),
        target_username=dict(type="str"),
        target_password=dict(type="str", no_log=True),
        registry_scheme=REGISTRY_ARGS["registry_scheme"],
        validate_certs=REGISTRY_ARGS["validate_certs"],
        **MOVING_TAGS_ARG,
    )
    run_module(lambda m: promote(m.params, m.check_mode), argument_spec=argument_spec)


if __name__ == "__main__":
    main()
