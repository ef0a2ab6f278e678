# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection and naming conventions shared by the k8s_* modules.

Truth lives in the cluster: a release is a Deployment labelled with app, release
and slot; its digest, spec hash and creation time are annotations. Nothing is
kept on the controller.
"""
from __future__ import annotations

import json
import os
import re
import traceback
from typing import Any, Dict, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    K8S_IMPORT_ERROR: Optional[str] = None
except ImportError:  # reported by module_runner with Ansible's standard message
    K8S_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):  # type: ignore[no-redef]
        """Placeholder so except clauses still parse without the library."""

# Label keys must be DNS-prefixed names with a single '/': ours differ from the Docker labels.
PREFIX = "immutable-deploy.io/"
LABEL_APP = PREFIX + "app"
LABEL_RELEASE = PREFIX + "release"
LABEL_SLOT = PREFIX + "slot"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "immutable.deploy"
ANN_DIGEST = PREFIX + "digest"
ANN_IMAGE = PREFIX + "image"
ANN_CREATED = PREFIX + "created"
ANN_SPEC = PREFIX + "spec"
ANN_SPEC_FIELDS = PREFIX + "spec-fields"
ANN_REPLICAS = PREFIX + "replicas"  # the release's full size, kept while a canary scales it

K8S_ARGS: Dict[str, Any] = dict(
    kubeconfig=dict(type="path"),
    context=dict(type="str"),
    namespace=dict(type="str", default="default"),
    request_timeout=dict(type="int", default=30),
)

_NS_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def object_name(app: str, release: str) -> str:
    """DNS-1123 name of a release's objects: '1.4.2_rc' -> 'web-1-4-2-rc'.

    Two release ids may map to one name ('1.4.2' and '1-4-2'); the release label
    on the object tells them apart and k8s_release refuses the second one.
    """
    return "%s-%s" % (app, re.sub(r"[^a-z0-9-]", "-", release.lower()).strip("-"))


def selector_for(app: str, release: Optional[str] = None) -> Dict[str, str]:
    sel = {LABEL_APP: app}
    if release is not None:
        sel[LABEL_RELEASE] = release
    return sel


def label_selector(labels: Dict[str, str]) -> str:
    return ",".join("%s=%s" % kv for kv in sorted(labels.items()))


def connect(kubeconfig: Optional[str] = None, context: Optional[str] = None) -> "k8s_client.ApiClient":
    """An ApiClient from kubeconfig (option, then KUBECONFIG, then ~/.kube/config) or in-cluster."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if kubeconfig and not os.path.isfile(kubeconfig):
        raise DeployError("Option 'kubeconfig': file %r does not exist. Accepted: a readable kubeconfig file, "
                          "or leave it unset to use KUBECONFIG, ~/.kube/config or the in-cluster service account."
                          % kubeconfig, option="kubeconfig")
    try:
        if os.path.isfile(path):
            return k8s_config.new_client_from_config(config_file=path, context=context)
        if context:
            raise DeployError("Option 'context': %r given but no kubeconfig was found (%s)." % (context, path),
                              option="context")
        configuration = k8s_client.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s_client.ApiClient(configuration)
    except ConfigException as exc:
        raise DeployError("Cannot load Kubernetes credentials (kubeconfig %s, context %s): %s. Set kubeconfig "
                          "or KUBECONFIG, or run inside a pod with a service account."
                          % (path, context or "current", exc), option="kubeconfig")


def api_error(exc: Exception, what: str) -> DeployError:
    """An ApiException (or a connection error) as a DeployError with the server's own message."""
    status = getattr(exc, "status", None)
    message = str(exc)
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message") or message
        except (ValueError, AttributeError):
            message = str(body)[:500]
    if status is None or status == 0:
        return DeployError("%s: the Kubernetes API is unreachable: %s" % (what, message))
    return DeployError("%s: HTTP %s from the Kubernetes API: %s" % (what, status, message), status=status)


def check_namespace(core: "k8s_client.CoreV1Api", namespace: str) -> None:
    """Fail clearly (and before any change) when the namespace is invalid or absent."""
    if not isinstance(namespace, str) or not _NS_RE.match(namespace):
        raise DeployError("Invalid value for option 'namespace': %r. Accepted: a DNS label (lowercase letters, "
                          "digits and '-', at most 63 characters)." % (namespace,), option="namespace")
    try:
        core.read_namespace(namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise DeployError("Option 'namespace': namespace %r does not exist. Create it first." % namespace,
                              option="namespace")
        raise api_error(exc, "Reading namespace %s" % namespace)
    except Exception as exc:  # urllib3 connection errors have no common public base here
        raise api_error(exc, "Reading namespace %s" % namespace)


class Cluster:
    """Typed APIs plus what every call needs: namespace, request timeout, one error translation."""

    def __init__(self, p: Dict[str, Any]) -> None:
        self.api = connect(p.get("kubeconfig"), p.get("context"))
        self.core = k8s_client.CoreV1Api(self.api)
        self.apps = k8s_client.AppsV1Api(self.api)
        self.ns = p["namespace"]
        self.timeout = p["request_timeout"]

    def call(self, what: str, fn: Any, *args: Any, allow: Tuple[int, ...] = (), **kwargs: Any) -> Dict[str, Any]:
        """fn's result as a plain dict; {} when the API answered with a status in allow (404, 409...)."""
        try:
            return to_dict(self.api, fn(*args, _request_timeout=self.timeout, **kwargs))
        except ApiException as exc:
            if exc.status in allow:
                return {}
            raise api_error(exc, what)
        except DeployError:
            raise
        except Exception as exc:  # urllib3 connection errors have no common public base here
            raise api_error(exc, what)


def to_dict(api: "k8s_client.ApiClient", obj: Any) -> Dict[str, Any]:
    """A typed client object as the plain dict the API returned (camelCase keys)."""
    return api.sanitize_for_serialization(obj) if obj is not None else {}
