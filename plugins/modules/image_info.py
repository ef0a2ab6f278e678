#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: image_info
short_description: Resolve an image tag or digest to its digest and labels
version_added: 0.1.0
description:
  - Looks an image up in the local Docker engine and/or through the registry HTTP API, without
    pulling, and returns its digest, ID, labels and a C(name@sha256:...) reference that pins it.
  - Roles use it to pin a tag to a digest before anything is deployed. A moving tag is reported
    in RV(moving); deciding to refuse it is left to the caller.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.docker
  - immutable.deploy.registry
  - immutable.deploy.registry.credentials
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.docker) in C(module_defaults) sets O(docker_host), O(docker_timeout) for all modules of the group.
      - C(group/immutable.deploy.registry) in C(module_defaults) sets O(registry_scheme), O(validate_certs), O(moving_tags) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.docker
      - immutable.deploy.registry
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  ref:
    description: C(name:tag), C(name@sha256:...) or both.
    type: str
    required: true
  source:
    description: Where to look. V(registry) needs no Docker engine.
    type: str
    default: both
    choices: [local, registry, both]
  require_exists:
    description: Fail when the image is found nowhere.
    type: bool
    default: false
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Pin a version to its digest before deploying
  immutable.deploy.image_info:
    ref: 127.0.0.1:5000/shop/web:1.4.2
    source: registry
    require_exists: true
  register: web

- name: Use the pinned reference
  ansible.builtin.debug:
    msg: "{{ web.image.ref }}"
"""

RETURN = r"""
exists:
  description: Whether the image was found in any place looked at.
  returned: always
  type: bool
moving:
  description: Whether the reference is a moving tag (see O(moving_tags)).
  returned: always
  type: bool
image:
  description: What the reference resolves to.
  returned: always
  type: dict
  contains:
    name: {description: Repository., type: str, returned: always}
    tag: {description: Tag of the reference (null for a digest-only reference)., type: str, returned: always}
    digest: {description: Manifest digest (registry or local repo digest)., type: str, returned: always}
    id: {description: Image ID (config digest)., type: str, returned: always}
    ref: {description: C(name@sha256:...) when a digest is known., type: str, returned: always}
    labels: {description: Image labels., type: dict, returned: always}
    fingerprint: {description: Build-input fingerprint label (null unless built by image_build)., type: str, returned: always}
local:
  description: Local engine view (id, repo_digests, created), or null when not found or not looked at.
  returned: always
  type: dict
registry:
  description: Registry view (digest, media_type, created), or null when not found or not looked at.
  returned: always
  type: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import (
    DOCKER_ARGS, DOCKER_IMPORT_ERROR)
from ansible_collections.immutable.deploy.plugins.module_utils.images.build import info
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import MOVING_TAGS_ARG, REGISTRY_ARGS
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        ref=dict(type="str", required=True),
        source=dict(type="str", default="both", choices=["local", "registry", "both"]),
        require_exists=dict(type="bool", default=False),
        **DOCKER_ARGS, **REGISTRY_ARGS, **MOVING_TAGS_ARG,
    )

    def handler(module):
        needs_docker = module.params["source"] != "registry"
        if needs_docker and DOCKER_IMPORT_ERROR:
            from ansible.module_utils.basic import missing_required_lib
            module.fail_json(msg=missing_required_lib("docker"), exception=DOCKER_IMPORT_ERROR)
        return info(module.params)

    run_module(handler, argument_spec=argument_spec)


if __name__ == "__main__":
    main()
