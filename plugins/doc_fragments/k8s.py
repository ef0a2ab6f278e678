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
