#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: image_build
short_description: Build an immutable, versioned image once and optionally push it
version_added: 0.1.0
description:
  - Builds O(name):O(version) from a context with the Docker engine, labels it with a fingerprint
    of its inputs and OCI labels, and optionally pushes it, returning the digest that pins it.
  - A version is immutable. When O(name):O(version) already exists (in the local engine, or in the
    registry when O(push=true)) built from the same inputs, nothing is done, even when the local
    image or build cache was pruned. When it exists with other content, the module fails.
  - Moving tags such as V(latest) are refused, see O(moving_tags).
  - The fingerprint covers every file of the context not excluded by C(.dockerignore), their modes,
    the Dockerfile, O(build_args), O(labels) and O(target).
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
    support: full
  platform:
    platforms: posix
options:
  name:
    description: Repository, with the registry when it will be pushed, for example C(127.0.0.1:5000/shop/web).
    type: str
    required: true
  version:
    description: The immutable version tag, for example C(1.4.2) or C(2026.11.26-abc1234).
    type: str
    required: true
  path:
    description: The build context directory.
    type: path
    required: true
  dockerfile:
    description: Dockerfile path relative to O(path).
    type: str
    default: Dockerfile
  build_args:
    description: Build arguments. Part of the fingerprint, so do not pass secrets here.
    type: dict
    default: {}
  target:
    description: Multi-stage target to build.
    type: str
  labels:
    description: Extra image labels.
    type: dict
    default: {}
  revision:
    description: Source revision recorded as C(org.opencontainers.image.revision).
    type: str
  source:
    description: Source URL recorded as C(org.opencontainers.image.source).
    type: str
  pull:
    description: Pull newer base images while building.
    type: bool
    default: false
  push:
    description: Push the version to the registry named in O(name) and return its digest.
    type: bool
    default: false
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Build and push version 1.4.2
  immutable.deploy.image_build:
    name: registry.example.com/shop/web
    version: "1.4.2"
    path: "{{ playbook_dir }}/app"
    revision: "{{ lookup('ansible.builtin.pipe', 'git rev-parse HEAD') }}"
    push: true
    registry_username: ci
    registry_password: "{{ vault_registry_password }}"
  register: web

- name: Deploy exactly what was built
  ansible.builtin.debug:
    msg: "{{ web.image.ref }}"  # registry.example.com/shop/web@sha256:...
"""

RETURN = r"""
image:
  description: The image, built or found.
  returned: always
  type: dict
  contains:
    name: {description: Repository., type: str, returned: always}
    version: {description: Version tag., type: str, returned: always}
    tagged: {description: C(name:version)., type: str, returned: always}
    id: {description: Image ID (config digest); null in check mode before a first build., type: str, returned: always}
    digest: {description: Registry manifest digest; null until pushed., type: str, returned: always}
    ref:
      description: C(name@sha256:...) once pushed, else the local image ID. Deploy this, never the tag.
      type: str
      returned: always
      sample: 127.0.0.1:5000/shop/web@sha256:6f1c...
    fingerprint: {description: Fingerprint of the build inputs., type: str, returned: always}
    labels: {description: Image labels., type: dict, returned: always}
fingerprint:
  description: Fingerprint of the build inputs, also stored in the C(io.immutable-deploy.fingerprint) label.
  returned: always
  type: str
built:
  description: Whether an image was (or in check mode would be) built.
  returned: always
  type: bool
pushed:
  description: Whether the version was (or in check mode would be) pushed.
  returned: always
  type: bool
"""

from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import (
    DOCKER_ARGS, DOCKER_IMPORT_ERROR)
from ansible_collections.immutable.deploy.plugins.module_utils.images.build import build
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import MOVING_TAGS_ARG, REGISTRY_ARGS
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        version=dict(type="str", required=True),
        path=dict(type="path", required=True),
        dockerfile=dict(type="str", default="Dockerfile"),
        build_args=dict(type="dict", default={}),
        target=dict(type="str"),
        labels=dict(type="dict", default={}),
        revision=dict(type="str"),
        source=dict(type="str"),
        pull=dict(type="bool", default=False),
        push=dict(type="bool", default=False),
        **DOCKER_ARGS, **REGISTRY_ARGS, **MOVING_TAGS_ARG,
    )
    run_module(lambda m: build(m.params, m.check_mode), requires={"docker": DOCKER_IMPORT_ERROR},
               argument_spec=argument_spec)


if __name__ == "__main__":
    main()
