#!/usr/bin/python
# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_release
short_description: Run one immutable release of an app as a Kubernetes Deployment
version_added: 0.1.0
description:
  - A release is one Deployment named C(<app>-<release>) (the release id lowercased, other characters
    than letters, digits and C(-) turned into C(-)), running one digest-pinned image. The Deployment and
    its pods are labelled C(immutable-deploy.io/app), C(immutable-deploy.io/release),
    C(immutable-deploy.io/slot), C(app.kubernetes.io/managed-by=immutable.deploy) and
    C(app.kubernetes.io/name=<app>); the Deployment selects its pods by app and release. Annotations
    C(immutable-deploy.io/digest), C(.../image), C(.../created), C(.../spec), C(.../spec-fields) and
    C(.../replicas) are the only record; nothing is stored on the controller.
  - A release is never patched in place. Every option that changes what runs (the spec) is hashed into
    the C(immutable-deploy.io/spec) annotation. Running the module again with the same spec changes
    nothing; with another spec under the same O(release) it fails, names the options that differ and
    writes nothing. Deploy a change under a new release id.
  - O(replicas) is scaling, not content, and is not part of the spec. When only O(replicas) differs from
    the size recorded in C(immutable-deploy.io/replicas), the Deployment is scaled (only C(spec.replicas)
    and that annotation change) and the result is changed. A Deployment scaled by someone else (for
    example a canary) while its recorded size is unchanged is left at its current scale.
  - Configuration travels with the release. O(env), O(secret_env) and O(config_files) become an
    immutable ConfigMap, Secret and ConfigMap named C(<deployment>-env-<hash>), C(<deployment>-secret-<hash>)
    and C(<deployment>-files-<hash>) (the first 10 hex digits of the SHA-256 of their content); the
    container reads the first two with C(envFrom) and mounts the files read-only at O(config_mount_path).
  - A version tag in O(image) is resolved to its digest through the registry HTTP API and the pods run
    C(name@sha256:...). Moving tags are refused (see O(moving_tags)). The cluster pulls the image with
    its own credentials (image pull secrets of the namespace's service account).
  - With O(wait=true) the module waits until every replica is updated, available and ready. It fails at
    once when a pod cannot pull its image, crash-loops or cannot start its container, or when the
    Deployment exceeds O(progress_deadline_seconds), and at O(wait_timeout) otherwise; the message and
    RV(pods) carry each pod's phase, container states, restarts, Ready condition and last Warning events
    (for example C(Readiness probe failed)). The Deployment is left in place after a failed wait; the
    strategy decides whether to retire it.
  - Check mode sends the same creates (or the scale) to the API server as a server-side dry run, so
    admission and validation errors show without any write.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - immutable.deploy.k8s
  - immutable.deploy.registry
  - immutable.deploy.registry.credentials
  - immutable.deploy.k8s.lease
attributes:
  action_group:
    description:
      - C(group/immutable.deploy.k8s) in C(module_defaults) sets the connection options (O(kubeconfig), O(context),
        O(host), O(api_key), O(verify_ssl), O(ca_cert), O(client_cert), O(client_key)), O(namespace) and
        O(request_timeout) for all modules of the group.
      - C(group/immutable.deploy.registry) in C(module_defaults) sets O(registry_scheme), O(validate_certs), O(moving_tags) for all modules of the group.
    support: full
    membership:
      - immutable.deploy.k8s
      - immutable.deploy.registry
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  app:
    description: App name, 2 to 40 lowercase letters, digits and single dashes, starting with a letter.
    type: str
    required: true
  release:
    description:
      - Release id, usually the version, for example C(1.4.2). Letters, digits, C(.), C(_), C(-), starting
        and ending with a letter or digit.
      - Two ids that give the same Deployment name (C(1.0.0) and C(1-0-0)) cannot exist together; the
        second is refused.
    type: str
    required: true
  slot:
    description: Slot of the release. Required with O(state=present). Part of the spec.
    type: str
    choices: [blue, green]
  image:
    description:
      - C(name@sha256:...) (used as is) or C(name:version) (resolved to its digest in the registry).
        Required with O(state=present).
    type: str
  replicas:
    description: Number of pods, 0 to 100. Not part of the spec; see the description.
    type: int
    default: 1
  container_port:
    description: TCP port the app listens on, named C(http) in the pod spec.
    type: int
    default: 8080
  env:
    description: Environment variables, delivered through an immutable ConfigMap. Part of the spec.
    type: dict
    default: {}
  secret_env:
    description:
      - Environment variables with secret values, delivered through an immutable Secret. Never logged or
        returned; the spec records only a hash of them, so changing a secret is a new release.
    type: dict
    default: {}
  config_files:
    description:
      - Files as a map of file name to content, delivered through an immutable ConfigMap mounted
        read-only at O(config_mount_path). Part of the spec.
    type: dict
    default: {}
  config_mount_path:
    description: Directory where O(config_files) are mounted. Part of the spec when files are given.
    type: str
    default: /etc/app
  readiness:
    description:
      - Readiness probe. When omitted, an HTTP probe of C(/health) on O(container_port) with the defaults
        below. Part of the spec.
    type: dict
    suboptions: &probe
      type:
        description: V(http) probes O(readiness.path) on O(readiness.port); V(cmd) runs O(readiness.command); V(none) sets no probe.
        type: str
        default: http
        choices: [http, cmd, none]
      path:
        description: URL path for V(http).
        type: str
        default: /health
      port:
        description: Port for V(http); defaults to O(container_port).
        type: int
      command:
        description: Command (exec form) for V(cmd); exit code 0 means success.
        type: list
        elements: str
      period_seconds:
        description: Seconds between probes.
        type: int
        default: 2
      failure_threshold:
        description: Consecutive failures before the probe counts as failed.
        type: int
        default: 3
      initial_delay_seconds:
        description: Seconds after the container starts before the first probe.
        type: int
        default: 0
  liveness:
    description:
      - Liveness probe, same shape as O(readiness); none by default. A container that fails it is
        restarted. Part of the spec.
    type: dict
    suboptions: *probe
  resources:
    description: Container resource requests and limits. Part of the spec.
    type: dict
    suboptions:
      requests:
        description: Requested C(cpu) (such as C(250m)) and C(memory) (such as C(128Mi)).
        type: dict
        suboptions: &amounts
          cpu:
            description: CPU quantity, for example C(250m) or C(1).
            type: str
          memory:
            description: Memory quantity, for example C(128Mi).
            type: str
      limits:
        description: Limits of C(cpu) and C(memory).
        type: dict
        suboptions: *amounts
  labels:
    description:
      - Extra labels of the Deployment and its pods. Keys under C(immutable-deploy.io/) and the two
        C(app.kubernetes.io/) keys this module sets are refused. Part of the spec.
    type: dict
    default: {}
  image_pull_policy:
    description: Image pull policy of the container. Part of the spec.
    type: str
    default: IfNotPresent
    choices: [IfNotPresent, Always, Never]
  termination_grace_period_seconds:
    description:
      - Seconds a pod gets between SIGTERM and SIGKILL when the release is retired or scaled down. Part of the spec.
      - An app that ignores SIGTERM (a shell or busybox as PID 1) holds its pods that long.
    type: int
    default: 30
  progress_deadline_seconds:
    description: Seconds the Deployment may make no progress before Kubernetes marks it failed.
    type: int
    default: 120
  wait:
    description: Wait until every replica is ready (after a create or a scale, and when the release already exists).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for readiness, or with O(state=absent) for the pods to be gone.
    type: int
    default: 120
  state:
    description:
      - V(present) creates the release if needed (or scales it) and waits for it.
      - V(absent) deletes its Deployment (background propagation) and its ConfigMaps and Secret, and
        with O(wait=true) waits until its pods are gone.
    type: str
    default: present
    choices: [present, absent]
author:
  - immutable.deploy developers (@immutable-deploy)
"""

EXAMPLES = r"""
- name: Start release 1.4.2 of web in the green slot
  immutable.deploy.k8s_release:
    namespace: shop
    app: web
    release: "1.4.2"
    slot: green
    image: registry.example.com/shop/web:1.4.2
    replicas: 2
    env:
      LOG_LEVEL: info
    secret_env:
      DB_PASSWORD: "{{ vault_db_password }}"
    config_files:
      app.yaml: "{{ lookup('ansible.builtin.template', 'app.yaml.j2') }}"
    readiness:
      path: /health
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {memory: 128Mi}
  register: web

- name: Scale the release (the only change a release accepts)
  immutable.deploy.k8s_release:
    namespace: shop
    app: web
    release: "1.4.2"
    slot: green
    image: "{{ web.release.image }}"
    replicas: 4
    env:
      LOG_LEVEL: info
    secret_env:
      DB_PASSWORD: "{{ vault_db_password }}"
    config_files:
      app.yaml: "{{ lookup('ansible.builtin.template', 'app.yaml.j2') }}"
    readiness:
      path: /health
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {memory: 128Mi}

- name: Retire release 1.4.1
  immutable.deploy.k8s_release:
    namespace: shop
    app: web
    release: "1.4.1"
    state: absent
"""

RETURN = r"""
release:
  description: The release after the change (predicted by the dry run in check mode).
  returned: always
  type: dict
  contains:
    app:
      description: App name.
      type: str
      returned: always
    id:
      description: Release id.
      type: str
      returned: always
    name:
      description: Name of the Deployment.
      type: str
      returned: always
      sample: web-1-4-2
    namespace:
      description: Namespace.
      type: str
      returned: always
    slot:
      description: Slot (blue or green); null when absent.
      type: str
      returned: always
    digest:
      description: Image digest the pods run.
      type: str
      returned: always
    image:
      description: The digest-pinned image reference the pods run.
      type: str
      returned: always
    replicas:
      description: Requested size of the release (0 when absent).
      type: int
      returned: always
    ready_replicas:
      description: Pods ready now.
      type: int
      returned: always
    created:
      description: Creation time of the release (UTC, ISO 8601).
      type: str
      returned: always
    spec_hash:
      description: Hash of the spec (the C(immutable-deploy.io/spec) annotation).
      type: str
      returned: always
    configmaps:
      description: Names of the release's ConfigMaps.
      type: list
      elements: str
      returned: always
    secrets:
      description: Names of the release's Secrets (never their values).
      type: list
      elements: str
      returned: always
    state:
      description: V(ready) (every wanted replica ready), V(progressing) (not yet, or not waited for) or V(absent).
      type: str
      returned: always
diff:
  description: Summary before and after (name, slot, digest, image, replicas, spec hash, object names); no value.
  returned: always
  type: dict
pods:
  description:
    - On a failed wait only, one entry per pod (up to 5) with C(name), C(phase), C(ready), C(ready_reason),
      C(reason), C(message), C(restarts), C(terminating), C(containers) (C(name), C(state), C(reason),
      C(message), C(exit_code), C(restart_count), C(ready), C(last_terminated)) and C(events) (the last
      Warning events, C(reason), C(message), C(count), C(time)).
  returned: failure
  type: list
  elements: dict
"""

from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import MOVING_TAGS_ARG, REGISTRY_ARGS
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import K8S_ARGS, K8S_IMPORT_ERROR
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.lease import LEASE_OPTION
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.release import ensure
from ansible_collections.immutable.deploy.plugins.module_utils.module_runner import run_module


def main() -> None:
    probe = dict(
        type=dict(type="str", default="http", choices=["http", "cmd", "none"]),
        path=dict(type="str", default="/health"),
        port=dict(type="int"),
        command=dict(type="list", elements="str"),
        period_seconds=dict(type="int", default=2),
        failure_threshold=dict(type="int", default=3),
        initial_delay_seconds=dict(type="int", default=0),
    )
    amounts = dict(cpu=dict(type="str"), memory=dict(type="str"))
    argument_spec = dict(
        app=dict(type="str", required=True),
        release=dict(type="str", required=True),
        slot=dict(type="str", choices=["blue", "green"]),
        image=dict(type="str"),
        replicas=dict(type="int", default=1),
        container_port=dict(type="int", default=8080),
        env=dict(type="dict", default={}),
        secret_env=dict(type="dict", default={}, no_log=True),
        config_files=dict(type="dict", default={}),
        config_mount_path=dict(type="str", default="/etc/app"),
        readiness=dict(type="dict", options=probe),
        liveness=dict(type="dict", options=probe),
        resources=dict(type="dict", options=dict(requests=dict(type="dict", options=amounts),
                                                 limits=dict(type="dict", options=amounts))),
        labels=dict(type="dict", default={}),
        image_pull_policy=dict(type="str", default="IfNotPresent", choices=["IfNotPresent", "Always", "Never"]),
        termination_grace_period_seconds=dict(type="int", default=30),
        progress_deadline_seconds=dict(type="int", default=120),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        lock=LEASE_OPTION,
        **K8S_ARGS, **REGISTRY_ARGS, **MOVING_TAGS_ARG,
    )
    run_module(lambda m: ensure(m.params, m.check_mode), requires={"kubernetes": K8S_IMPORT_ERROR},
               argument_spec=argument_spec, required_if=[("state", "present", ("slot", "image"))])


if __name__ == "__main__":
    main()
