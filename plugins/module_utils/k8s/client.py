# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one gateway to the Kubernetes API.

Every read and write of the collection goes through Client: objects in and out are the
plain dicts the API speaks (camelCase), a missing object is None where the caller says
it may be missing, a check-mode write is a server-side dry run, and every failure, HTTP
or connection, becomes one DeployError worded the same way. A command run in a pod
(exec, through the API server and the kubelet) goes through it too.
"""
from __future__ import annotations

import json
import os
import re
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible.module_utils.basic import env_fallback

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError as Urllib3Error
    K8S_IMPORT_ERROR: Optional[str] = None
except ImportError:  # reported by module_runner with Ansible's standard message
    K8S_IMPORT_ERROR = traceback.format_exc()

    class ApiException(Exception):  # type: ignore[no-redef]
        """Placeholder so except clauses still parse without the library."""

    class Urllib3Error(Exception):  # type: ignore[no-redef]
        """Placeholder so except clauses still parse without the library."""

    class ConfigException(Exception):  # type: ignore[no-redef]
        """Placeholder so except clauses still parse without the library."""

# The K8S_AUTH_* variables are kubernetes.core's: AWX's Kubernetes credential injects them.
K8S_ARGS: Dict[str, Any] = dict(
    kubeconfig=dict(type="path", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    # kubernetes.core calls it validate_certs, which k8s_release already has for registries.
    verify_ssl=dict(type="bool", fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    namespace=dict(type="str", default="default"),
    request_timeout=dict(type="int", default=30),
)

# kind -> (typed API class, method suffix); every kind here is namespaced.
KINDS: Dict[str, Tuple[str, str]] = {
    "Deployment": ("AppsV1Api", "deployment"),
    "Pod": ("CoreV1Api", "pod"),
    "Event": ("CoreV1Api", "event"),
    "Service": ("CoreV1Api", "service"),
    "Endpoints": ("CoreV1Api", "endpoints"),
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Secret": ("CoreV1Api", "secret"),
    "Ingress": ("NetworkingV1Api", "ingress"),
    "Lease": ("CoordinationV1Api", "lease"),
}
MERGE_PATCH = "application/merge-patch+json"  # the client would default a dict body to a strategic merge
_NS_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Failures of a call: the API's answer, or no answer at all (refused, reset, timed out).
CALL_ERRORS = (ApiException, Urllib3Error, OSError)


def _files(p: Dict[str, Any]) -> None:
    for option in ("ca_cert", "client_cert", "client_key"):
        if p.get(option) and not os.path.isfile(p[option]):
            raise DeployError("Option '%s': file %r does not exist. Accepted: a readable PEM file."
                              % (option, p[option]), option=option)


def _direct(p: Dict[str, Any]) -> "k8s_client.ApiClient":
    """host + api_key (a bearer token) and TLS options, as AWX's Kubernetes credential gives them."""
    configuration = k8s_client.Configuration()
    configuration.host = p["host"]
    if p.get("api_key"):
        configuration.api_key = {"authorization": "Bearer " + p["api_key"]}
    if p.get("verify_ssl") is not None:
        configuration.verify_ssl = p["verify_ssl"]
    configuration.ssl_ca_cert = p.get("ca_cert")
    configuration.cert_file, configuration.key_file = p.get("client_cert"), p.get("client_key")
    return k8s_client.ApiClient(configuration)


def connect(p: Dict[str, Any]) -> "k8s_client.ApiClient":
    """An ApiClient from host (+ api_key), else kubeconfig (option, KUBECONFIG, ~/.kube/config), else in-cluster."""
    kubeconfig, context = p.get("kubeconfig"), p.get("context")
    _files(p)
    if p.get("host"):
        if kubeconfig or context:
            raise DeployError("Options 'host' and 'kubeconfig'/'context' exclude each other: give the API server and "
                              "its credentials directly (host, api_key, ca_cert) or through a kubeconfig.",
                              option="host")
        return _direct(p)
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    if kubeconfig and not os.path.isfile(kubeconfig):
        raise DeployError("Option 'kubeconfig': file %r does not exist. Accepted: a readable kubeconfig file, "
                          "or leave it unset to use KUBECONFIG, ~/.kube/config or the in-cluster service account."
                          % kubeconfig, option="kubeconfig")
    try:
        if os.path.isfile(path):
            api = k8s_config.new_client_from_config(config_file=path, context=context)
        elif context:
            raise DeployError("Option 'context': %r given but no kubeconfig was found (%s)." % (context, path),
                              option="context")
        else:
            configuration = k8s_client.Configuration()
            k8s_config.load_incluster_config(client_configuration=configuration)
            api = k8s_client.ApiClient(configuration)
    except ConfigException as exc:
        raise DeployError("Cannot load Kubernetes credentials (kubeconfig %s, context %s): %s. Set kubeconfig "
                          "or KUBECONFIG, host and api_key, or run inside a pod with a service account."
                          % (path, context or "current", exc), option="kubeconfig")
    # TLS options given beside a kubeconfig override its own.
    if p.get("verify_ssl") is not None:
        api.configuration.verify_ssl = p["verify_ssl"]
    if p.get("ca_cert"):
        api.configuration.ssl_ca_cert = p["ca_cert"]
    return api


def api_error(exc: BaseException, what: str) -> DeployError:
    """A failed call as a DeployError with the server's own message."""
    status = getattr(exc, "status", None)
    message = str(exc)
    body = getattr(exc, "body", None)
    if body:
        try:
            message = json.loads(body).get("message") or message
        except (ValueError, AttributeError):
            message = str(body)[:500]
    if not status:
        return DeployError("%s: the Kubernetes API is unreachable: %s" % (what, message))
    return DeployError("%s: HTTP %s from the Kubernetes API: %s" % (what, status, message), status=status)


def exec_status(error_channel: str) -> int:
    """The exit code from an exec's status message (channel 3): 0 on Success, the ExitCode cause on
    NonZeroExitCode, 126 when the command could not be run at all (the message goes to stderr by the caller)."""
    try:
        status = json.loads(error_channel or "{}")
    except ValueError:
        return 126
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    return 126


def exec_failure(error_channel: str) -> str:
    """The runtime's message when a command could not run (for example 'executable file not found')."""
    try:
        status = json.loads(error_channel or "{}")
    except ValueError:
        return error_channel
    return str(status.get("message") or "the command ended without an exit status")


def validate_namespace(namespace: Any) -> str:
    if not isinstance(namespace, str) or not _NS_RE.match(namespace):
        raise invalid_option("namespace", namespace, "a DNS label (lowercase letters, digits and '-', at most 63 "
                             "characters)")
    return namespace


class Client:
    """get / list / create / patch / delete of namespaced objects, with one error translation."""

    def __init__(self, p: Dict[str, Any], api: Optional[Any] = None) -> None:
        self.ns = validate_namespace(p.get("namespace") or "default")
        self.timeout = p.get("request_timeout") or 30
        self.api = api if api is not None else connect(p)
        self._apis: Dict[str, Any] = {}
        # Called before every real write; a deploy lock held by this run raises here once it is lost.
        self.fence: Optional[Callable[[], None]] = None

    def _write(self, dry_run: bool) -> Dict[str, Any]:
        if self.fence is not None and not dry_run:
            self.fence()
        return {"dry_run": "All"} if dry_run else {}

    # -- the one place an API method is called -----------------------------------------------
    def call(self, what: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False,
             conflict_ok: bool = False, **kwargs: Any) -> Any:
        """fn(*args) as plain data; None on 404 with missing_ok, on 409 with conflict_ok."""
        try:
            out = fn(*args, _request_timeout=self.timeout, **kwargs)
        except CALL_ERRORS as exc:  # pylint: disable=catching-non-exception  # a tuple of exception classes
            status = getattr(exc, "status", None)
            if (missing_ok and status == 404) or (conflict_ok and status == 409):
                return None
            raise api_error(exc, what) from None
        return self.api.sanitize_for_serialization(out) if out is not None else None

    def typed(self, name: str) -> Any:
        if name not in self._apis:
            self._apis[name] = getattr(k8s_client, name)(self.api)
        return self._apis[name]

    def _method(self, verb: str, kind: str) -> Callable[..., Any]:
        api, suffix = KINDS[kind]
        return getattr(self.typed(api), "%s_namespaced_%s" % (verb, suffix))

    # -- namespaced objects -------------------------------------------------------------------
    def get(self, kind: str, name: str, missing_ok: bool = True) -> Optional[Dict[str, Any]]:
        return self.call("Reading %s %s/%s" % (kind, self.ns, name), self._method("read", kind), name, self.ns,
                         missing_ok=missing_ok)

    def list(self, kind: str, label_selector: Optional[str] = None,
             field_selector: Optional[str] = None) -> List[Dict[str, Any]]:
        kwargs = {k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v}
        found = self.call("Listing %s in %s%s" % (kind, self.ns, " (%s)" % (label_selector or field_selector)
                                                  if kwargs else ""), self._method("list", kind), self.ns, **kwargs)
        return (found or {}).get("items") or []

    def create(self, kind: str, body: Dict[str, Any], dry_run: bool = False,
               exists_ok: bool = False) -> Optional[Dict[str, Any]]:
        """The created object; None when it already exists and exists_ok."""
        name = (body.get("metadata") or {}).get("name")
        return self.call("Creating %s %s/%s" % (kind, self.ns, name), self._method("create", kind), self.ns, body,
                         conflict_ok=exists_ok, **self._write(dry_run))

    def patch(self, kind: str, name: str, body: Any, dry_run: bool = False, what: Optional[str] = None,
              merge: bool = False) -> Dict[str, Any]:
        """A JSON patch (a list of operations) or, with merge, a JSON merge patch."""
        extra = dict(self._write(dry_run), **({"_content_type": MERGE_PATCH} if merge else {}))
        return self.call(what or "Patching %s %s/%s" % (kind, self.ns, name), self._method("patch", kind), name,
                         self.ns, body, **extra)

    def delete(self, kind: str, name: str, dry_run: bool = False, background: bool = False) -> bool:
        """True when there was something to delete."""
        extra = dict(self._write(dry_run), **({"propagation_policy": "Background"} if background else {}))
        return self.call("Deleting %s %s/%s" % (kind, self.ns, name), self._method("delete", kind), name, self.ns,
                         missing_ok=True, **extra) is not None

    def exec(self, pod: str, command: List[str], timeout: float,
             container: Optional[str] = None) -> Tuple[Optional[int], str, str]:
        """Run command in a pod (API server -> kubelet, never the pod's address): (exit code, stdout, stderr).

        The exit code is None when the command did not end within timeout seconds. A command
        that cannot start (not in the image) is an exit code 126/127-like failure with the
        runtime's message as stderr, not an exception: callers report it as an answer.
        """
        from kubernetes.stream import stream  # pylint: disable=import-outside-toplevel  # websocket only here
        what = "Running %s in pod %s/%s" % (command[0] if command else "?", self.ns, pod)
        kwargs = dict(command=command, stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        if container:
            kwargs["container"] = container
        api = self.typed("CoreV1Api")
        try:
            # stream() swaps the ApiClient's transport while it opens the socket: never share this
            # client with another thread (the lease renewer has its own).
            ws = stream(api.connect_get_namespaced_pod_exec, pod, self.ns, _request_timeout=self.timeout, **kwargs)
        except CALL_ERRORS as exc:  # pylint: disable=catching-non-exception  # a tuple of exception classes
            raise api_error(exc, what) from None
        try:
            ws.run_forever(timeout=timeout)
            out, err = ws.read_channel(1), ws.read_channel(2)
            if ws.is_open():
                return None, out, err
            status = ws.read_channel(3)
            code = exec_status(status)
            if code == 126 and not err:
                err = exec_failure(status)
            return code, out, err
        finally:
            ws.close()

    def require_namespace(self) -> None:
        """Fail clearly, before any change, when the namespace does not exist."""
        if self.call("Reading namespace %s" % self.ns, self.typed("CoreV1Api").read_namespace, self.ns,
                     missing_ok=True) is None:
            raise DeployError("Option 'namespace': namespace %r does not exist. Create it first." % self.ns,
                              option="namespace")

    # -- custom resources ------------------------------------------------------------------------
    def served_resources(self, group: str, version: str) -> Optional[List[str]]:
        """Plural names served under group/version; None when the API group version is not served."""
        found = self.call("Discovering %s/%s" % (group, version), self.typed("CustomObjectsApi").get_api_resources,
                          group, version, missing_ok=True)
        return None if found is None else [r.get("name") for r in found.get("resources") or []]

    def get_custom(self, group: str, version: str, plural: str, name: str) -> Optional[Dict[str, Any]]:
        return self.call("Reading %s %s/%s" % (plural, self.ns, name),
                         self.typed("CustomObjectsApi").get_namespaced_custom_object, group, version, self.ns,
                         plural, name, missing_ok=True)

    def patch_custom(self, group: str, version: str, plural: str, name: str, body: Dict[str, Any],
                     dry_run: bool = False) -> Dict[str, Any]:
        return self.call("Updating %s %s/%s" % (plural, self.ns, name),
                         self.typed("CustomObjectsApi").patch_namespaced_custom_object, group, version, self.ns,
                         plural, name, body, _content_type=MERGE_PATCH, **self._write(dry_run))
