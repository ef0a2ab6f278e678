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
    type: path
  context:
    description: The kubeconfig context to use instead of its current one.
    type: str
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
