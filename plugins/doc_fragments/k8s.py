# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file.
      - Defaults to the E(KUBECONFIG) environment variable, then C(~/.kube/config), then the in-cluster
        service account when running inside a pod.
      - Also read from E(K8S_AUTH_KUBECONFIG).
    type: path
  context:
    description: The kubeconfig context to use instead of its current one. Also read from E(K8S_AUTH_CONTEXT).
    type: str
  host:
    description:
      - URL of the Kubernetes API server, to connect without a kubeconfig (with O(api_key) and O(ca_cert)).
      - Also read from E(K8S_AUTH_HOST), which AWX's built-in Kubernetes credential sets.
      - Mutually exclusive with O(kubeconfig) and O(context).
    type: str
  api_key:
    description: Bearer token for O(host), such as a service account token. Also read from E(K8S_AUTH_API_KEY).
    type: str
  verify_ssl:
    description:
      - Whether to verify the API server's TLS certificate. Default, the kubeconfig's setting, else true.
      - Also read from E(K8S_AUTH_VERIFY_SSL). (kubernetes.core names it C(validate_certs), which here is
        the registry's option.)
    type: bool
  ca_cert:
    description: CA certificate (PEM) the API server's certificate is verified with. Also read from E(K8S_AUTH_SSL_CA_CERT).
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description: Client certificate (PEM) for O(host). Also read from E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Key of O(client_cert) (PEM). Also read from E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  namespace:
    description: Namespace of the app's objects. It must exist.
    type: str
    default: default
  request_timeout:
    description: Seconds to wait for one Kubernetes API request.
    type: int
    default: 30
requirements:
  - kubernetes (Python client) >= 24.2
notes:
  - Works with Kubernetes 1.20 and later (apps/v1, core/v1, networking.k8s.io/v1).
"""

    # The lock option of the Kubernetes modules that change things (the app's Lease).
    LEASE = r"""
options:
  lock:
    description:
      - The app's deploy lock in the cluster, the Lease C(<name>-deploy-lock) of M(immutable.deploy.deploy_lock)
        with O(immutable.deploy.deploy_lock#module:backend=kubernetes), held for the duration of this module run.
      - A lock this run already holds (O(lock.owner) taken by an earlier task) is renewed when the module starts, from a
        thread every third of O(lock.lease_seconds) while it works, and once more when it ends; it stays held. A lock
        that was free (or whose holder's lease had expired) is taken and released at the end of this module run.
      - When another live run holds it, the module fails at once, changes nothing, and says who holds it, why and
        when it expires. Once the lock is lost (taken over after it expired), the module makes no further write.
    type: dict
    suboptions:
      name:
        description: Lock name, usually the app name.
        type: str
        required: true
      owner:
        description: Token of this run.
        type: str
        required: true
      purpose:
        description: Recorded in the Lease, shown to a run that finds it taken.
        type: str
        default: deploy
      break_lock:
        description: Take the lock even when another live run holds it.
        type: bool
        default: false
      lease_seconds:
        description:
          - Seconds the lock stays valid after each renewal, at least 3. It must cover the time until the run's next
            module renews it (a pause or an analysis that follows this module).
        type: int
        default: 30
"""

    # The probe option: a command run in the release's pods through the API, and/or a URL.
    PROBE = r"""
options:
  probe:
    description: How each pod (and optionally a URL) is asked. Defaults apply when omitted.
    type: dict
    suboptions:
      command:
        description:
          - Command (exec form) run in the pod's first container instead of the default wget. C({url}) (the pod's
            own C(http://127.0.0.1:<port><path>)), C({port}), C({path}) and C({timeout}) are filled in.
          - Its answer is judged by an C(HTTP/1.1 NNN) status line in its output when there is one (against
            O(probe.expect_status)), else by its exit code (0 passes).
        type: list
        elements: str
      port:
        description: Port the app listens on in the pod. Defaults to the container port named C(http) (or the first).
        type: int
      path:
        description: URL path asked.
        type: str
        default: /health
      timeout:
        description: Seconds one answer may take.
        type: int
        default: 5
      expect_status:
        description: HTTP status codes that pass.
        type: list
        elements: int
        default: [200]
      body_contains:
        description: Text the answer's body must contain.
        type: str
      url:
        description:
          - A URL asked from the host the module runs on, besides the pods, for example an ingress address.
        type: str
      pods:
        description: V(all) asks every running pod of the release; V(none) only O(probe.url).
        type: str
        choices: [all, none]
        default: all
"""
