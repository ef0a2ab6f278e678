# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Releases on Kubernetes: one Deployment per release id, digest-pinned, never patched.

Configuration travels with the release as immutable ConfigMaps and a Secret named
by the hash of their content. The spec hash, per-field hashes, digest and the
requested size are annotations on the Deployment: the cluster is the only record.
Only the size of a release may change (scaling is not content).
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils import image_ref
from ansible_collections.immutable.deploy.plugins.module_utils import k8s_common as kc
from ansible_collections.immutable.deploy.plugins.module_utils import k8s_wait
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.images import registry_for

# Fields in the order errors list them. Replicas is scaling, not content: not part of the spec.
SPEC_FIELDS = ("slot", "digest", "container_port", "env", "secret_env", "config_files", "readiness",
               "liveness", "resources", "labels", "image_pull_policy", "termination_grace_period_seconds")
LABEL_NAME = "app.kubernetes.io/name"
RESERVED_LABELS = (kc.LABEL_MANAGED, LABEL_NAME)
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
CONFIG_VOLUME = "config"
MAX_REPLICAS = 100

_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FILE_NAME_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_QUANTITY_RE = re.compile(r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$")


# -- validation and the spec (pure) -------------------------------------------------------------
def validate_release_id(release_id: Any) -> str:
    """release.validate_release, and usable as a label value (which must end with a letter or digit)."""
    model.validate_release(release_id)
    if not release_id[-1].isalnum():
        raise invalid_option("release", release_id, "on Kubernetes, an id that ends with a letter or digit "
                                                    "(it is a label value), for example '1.4.2'")
    return release_id


def _str_map(option: str, value: Optional[Dict[str, Any]], key_re: Optional["re.Pattern[str]"] = None,
             accepted_keys: str = "") -> Dict[str, str]:
    out = {}
    for key, val in (value or {}).items():
        if not isinstance(key, str) or not key or (key_re is not None and not key_re.match(key)):
            raise invalid_option(option, key, accepted_keys or "non-empty string keys")
        if isinstance(val, (dict, list)) or val is None:
            raise invalid_option("%s.%s" % (option, key), "<%s>" % type(val).__name__ if val is not None else None,
                                 "a string, number or boolean")
        # YAML booleans become 'true'/'false', what a program reads, not Python's 'True'.
        out[key] = str(val).lower() if isinstance(val, bool) else str(val)
    return out


def _int(option: str, value: Any, low: int, high: Optional[int] = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        raise invalid_option(option, value, "an integer from %d%s" % (low, " to %d" % high if high else " up"))
    return value


def _label_key_ok(key: str) -> bool:
    prefix, _sep, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_VALUE_RE.match(name))


def normalize_labels(value: Optional[Dict[str, Any]]) -> Dict[str, str]:
    labels = _str_map("labels", value)
    for key, val in sorted(labels.items()):
        if key.startswith(kc.PREFIX) or key in RESERVED_LABELS:
            raise invalid_option("labels", key, "keys outside %s* and other than %s, which this module sets"
                                 % (kc.PREFIX, ", ".join(RESERVED_LABELS)))
        if not _label_key_ok(key):
            raise invalid_option("labels", key, "a Kubernetes label key: [prefix/]name, name 1 to 63 letters, "
                                                "digits, '-', '_', '.', starting and ending alphanumeric")
        if len(val) > 63 or not _LABEL_VALUE_RE.match(val):
            raise invalid_option("labels.%s" % key, val, "a label value: at most 63 letters, digits, '-', '_', "
                                                         "'.', starting and ending alphanumeric (or empty)")
    return labels


def normalize_probe(option: str, value: Optional[Dict[str, Any]], port: int) -> Optional[Dict[str, Any]]:
    """A probe as the spec records it; type none (or no value) is no probe."""
    if value is None:
        return None
    kind = value.get("type") or "http"
    out: Dict[str, Any] = {"type": kind}
    if kind == "none":
        return None
    if kind == "http":
        path = value.get("path") or "/health"
        if not path.startswith("/"):
            raise invalid_option(option + ".path", path, "an absolute URL path such as '/health'")
        out.update(path=path, port=_int(option + ".port", value.get("port") or port, 1, 65535))
    elif kind == "cmd":
        command = value.get("command") or []
        if not command:
            raise DeployError("Option '%s': type 'cmd' needs %s.command (a list, exec form)." % (option, option),
                              option=option + ".command")
        out["command"] = [str(c) for c in command]
    else:
        raise invalid_option(option + ".type", kind, "http, cmd or none")
    for key, default, low in (("period_seconds", 2, 1), ("failure_threshold", 3, 1), ("initial_delay_seconds", 0, 0)):
        given = value.get(key)
        out[key] = _int("%s.%s" % (option, key), default if given is None else given, low)
    return out


def normalize_resources(value: Optional[Dict[str, Any]]) -> Dict[str, Dict[str, str]]:
    out: Dict[str, Dict[str, str]] = {}
    for group, amounts in (value or {}).items():
        if amounts is None:
            continue
        if group not in ("requests", "limits") or not isinstance(amounts, dict):
            raise invalid_option("resources", group, "keys requests and limits, each a map of cpu and memory")
        for res, amount in amounts.items():
            if amount is None:
                continue
            text = str(amount) if isinstance(amount, (str, int, float)) and not isinstance(amount, bool) else ""
            if res not in ("cpu", "memory"):
                raise invalid_option("resources.%s" % group, res, "cpu and memory")
            if not _QUANTITY_RE.match(text):
                raise invalid_option("resources.%s.%s" % (group, res), amount,
                                     "a Kubernetes quantity such as '250m', '0.5', '128Mi' or '1Gi'")
            out.setdefault(group, {})[res] = text
    return out


def normalize_spec(p: Dict[str, Any], digest: str) -> Dict[str, Any]:
    """Every option that changes what runs, normalized. Secret values appear only as a hash."""
    port = _int("container_port", p.get("container_port", 8080), 1, 65535)
    if p.get("image_pull_policy", "IfNotPresent") not in PULL_POLICIES:
        raise invalid_option("image_pull_policy", p.get("image_pull_policy"), ", ".join(PULL_POLICIES))
    env_names = "environment variable names: letters, digits, '_', '-', '.', not starting with a digit"
    env = _str_map("env", p.get("env"), _ENV_NAME_RE, env_names)
    secret = _str_map("secret_env", p.get("secret_env"), _ENV_NAME_RE, env_names)
    both = sorted(set(env) & set(secret))
    if both:
        raise invalid_option("env", both, "names that are not also in secret_env")
    files = _str_map("config_files", p.get("config_files"), _FILE_NAME_RE,
                     "file names of letters, digits, '-', '_', '.' (no '/')")
    if set(files) & {".", ".."}:
        raise invalid_option("config_files", sorted(set(files) & {".", ".."}), "file names other than . and ..")
    mount = p.get("config_mount_path") or "/etc/app"
    if not mount.startswith("/") or mount == "/":
        raise invalid_option("config_mount_path", mount, "an absolute directory path other than /, such as /etc/app")
    readiness = p.get("readiness")
    return {
        "slot": model.validate_slot(p.get("slot")),
        "digest": digest,
        "container_port": port,
        "env": env,
        "secret_env": model.spec_hash(secret) if secret else None,
        # The mount path is part of what runs, so it is hashed with the files.
        "config_files": {"files": files, "mount_path": mount} if files else None,
        # No readiness option: the default HTTP probe of /health on the container port.
        "readiness": normalize_probe("readiness", {} if readiness is None else readiness, port),
        "liveness": normalize_probe("liveness", p.get("liveness"), port),
        "resources": normalize_resources(p.get("resources")),
        "labels": normalize_labels(p.get("labels")),
        "image_pull_policy": p.get("image_pull_policy", "IfNotPresent"),
        "termination_grace_period_seconds": _int("termination_grace_period_seconds",
                                                 p.get("termination_grace_period_seconds", 30), 0, 3600),
    }


def secret_values(p: Dict[str, Any]) -> Dict[str, str]:
    return _str_map("secret_env", p.get("secret_env"))


def content_name(name: str, kind: str, data: Dict[str, str]) -> str:
    """'<deployment>-<kind>-<10 hex of sha256 of the content>': new content, new object."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "%s-%s-%s" % (name, kind, hashlib.sha256(canonical).hexdigest()[:10])


def config_objects(app: str, release_id: str, spec: Dict[str, Any], secret: Dict[str, str]) -> List[Dict[str, Any]]:
    """The ConfigMaps and Secret of a release: [{kind: env|secret|files, name, body}]."""
    name = kc.object_name(app, release_id)
    labels = {kc.LABEL_APP: app, kc.LABEL_RELEASE: release_id, kc.LABEL_MANAGED: kc.MANAGED_BY}
    out = []
    for kind, data in (("env", spec["env"]), ("secret", secret),
                       ("files", (spec["config_files"] or {}).get("files") or {})):
        if not data:
            continue
        obj_name = content_name(name, kind, data)
        meta = {"name": obj_name, "labels": dict(labels)}
        if kind == "secret":
            body = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "immutable": True,
                    "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
        else:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "immutable": True, "data": dict(data)}
        out.append({"kind": kind, "name": obj_name, "body": body})
    return out


def object_labels(app: str, release_id: str, spec: Dict[str, Any]) -> Dict[str, str]:
    labels = dict(spec["labels"])
    labels.update({kc.LABEL_APP: app, kc.LABEL_RELEASE: release_id, kc.LABEL_SLOT: spec["slot"],
                   kc.LABEL_MANAGED: kc.MANAGED_BY, LABEL_NAME: app})
    return labels


def _probe_body(probe: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    if not probe:
        return None
    body: Dict[str, Any] = {"periodSeconds": probe["period_seconds"], "failureThreshold": probe["failure_threshold"],
                            "initialDelaySeconds": probe["initial_delay_seconds"]}
    if probe["type"] == "http":
        body["httpGet"] = {"path": probe["path"], "port": probe["port"], "scheme": "HTTP"}
    else:
        body["exec"] = {"command": probe["command"]}
    return body


def deployment_body(app: str, release_id: str, spec: Dict[str, Any], image: str, replicas: int, created: str,
                    configs: List[Dict[str, Any]], progress_deadline: int) -> Dict[str, Any]:
    name = kc.object_name(app, release_id)
    labels = object_labels(app, release_id, spec)
    container: Dict[str, Any] = {
        "name": app, "image": image, "imagePullPolicy": spec["image_pull_policy"],
        "ports": [{"name": "http", "containerPort": spec["container_port"], "protocol": "TCP"}],
    }
    by_kind = {c["kind"]: c["name"] for c in configs}
    env_from = ([{"configMapRef": {"name": by_kind["env"]}}] if "env" in by_kind else []) + \
        ([{"secretRef": {"name": by_kind["secret"]}}] if "secret" in by_kind else [])
    if env_from:
        container["envFrom"] = env_from
    pod: Dict[str, Any] = {"containers": [container],
                           # Service links would make a pod's env depend on what existed when it started.
                           "enableServiceLinks": False,
                           "terminationGracePeriodSeconds": spec["termination_grace_period_seconds"]}
    if "files" in by_kind:
        container["volumeMounts"] = [{"name": CONFIG_VOLUME, "mountPath": spec["config_files"]["mount_path"],
                                      "readOnly": True}]
        pod["volumes"] = [{"name": CONFIG_VOLUME, "configMap": {"name": by_kind["files"]}}]
    for key, probe in (("readinessProbe", spec["readiness"]), ("livenessProbe", spec["liveness"])):
        if probe:
            container[key] = _probe_body(probe)
    if spec["resources"]:
        container["resources"] = spec["resources"]
    annotations = {
        kc.ANN_DIGEST: spec["digest"], kc.ANN_IMAGE: image, kc.ANN_CREATED: created,
        kc.ANN_SPEC: model.spec_hash(spec), kc.ANN_SPEC_FIELDS: model.spec_fields(spec, SPEC_FIELDS),
        kc.ANN_REPLICAS: str(replicas),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas, "progressDeadlineSeconds": progress_deadline,
            "selector": {"matchLabels": kc.selector_for(app, release_id)},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def config_names(dep: Dict[str, Any]) -> Tuple[List[str], List[str]]:
    """(ConfigMap names, Secret names) a Deployment's pods use."""
    pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
    maps, secrets = [], []
    for c in pod.get("containers") or []:
        for ref in c.get("envFrom") or []:
            if ref.get("configMapRef"):
                maps.append(ref["configMapRef"]["name"])
            if ref.get("secretRef"):
                secrets.append(ref["secretRef"]["name"])
    maps += [v["configMap"]["name"] for v in pod.get("volumes") or [] if v.get("configMap")]
    return sorted(set(maps)), sorted(set(secrets))


def view(app: str, release_id: str, namespace: str, dep: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The release as its Deployment describes it (absent when there is none)."""
    name = kc.object_name(app, release_id)
    if not dep:
        return {"app": app, "id": release_id, "name": name, "namespace": namespace, "slot": None, "digest": None,
                "image": None, "replicas": 0, "ready_replicas": 0, "created": None, "spec_hash": None,
                "configmaps": [], "secrets": [], "state": "absent"}
    meta = dep.get("metadata") or {}
    ann, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    maps, secrets = config_names(dep)
    done, _summary = k8s_wait.rollout(dep) if dep.get("status") is not None else (False, "")
    replicas = (dep.get("spec") or {}).get("replicas", 1)
    return {"app": app, "id": release_id, "name": name, "namespace": namespace, "slot": labels.get(kc.LABEL_SLOT),
            "digest": ann.get(kc.ANN_DIGEST), "image": ann.get(kc.ANN_IMAGE),
            "replicas": int(ann.get(kc.ANN_REPLICAS, replicas)),
            "ready_replicas": ((dep.get("status") or {}).get("readyReplicas") or 0),
            "created": ann.get(kc.ANN_CREATED), "spec_hash": ann.get(kc.ANN_SPEC),
            "configmaps": maps, "secrets": secrets, "state": "ready" if done else "progressing"}


def summary(v: Dict[str, Any]) -> Dict[str, Any]:
    """What diff mode shows: identity and content hashes, never a value."""
    if v["state"] == "absent":
        return {"state": "absent"}
    keys = ("name", "slot", "digest", "image", "replicas", "spec_hash", "configmaps", "secrets")
    return dict({k: v[k] for k in keys}, state="present")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resolve_image(p: Dict[str, Any]) -> Tuple[str, str]:
    """('repo@sha256:...', digest): a digest is taken as given, a version tag is resolved in its registry."""
    ref = image_ref.parse(p["image"], "image")
    if ref.digest:
        return ref._replace(tag=None).pinned, ref.digest
    image_ref.require_version_tag(ref, "image", p.get("moving_tags") or image_ref.DEFAULT_MOVING_TAGS)
    manifest = registry_for(ref, p).get_manifest(ref.repository, ref.tag)
    if manifest is None:
        raise DeployError("Option 'image': %s was not found in registry %s." % (ref.tagged, ref.registry),
                          option="image")
    return ref._replace(tag=None).with_digest(manifest.digest).pinned, manifest.digest


def check_image_syntax(p: Dict[str, Any]) -> str:
    """Refuse a malformed image or a moving tag before connecting anywhere; a placeholder digest."""
    ref = image_ref.parse(p["image"], "image")
    if not ref.digest:
        image_ref.require_version_tag(ref, "image", p.get("moving_tags") or image_ref.DEFAULT_MOVING_TAGS)
    return ref.digest or "sha256:" + "0" * 64


def check_owner(dep: Optional[Dict[str, Any]], app: str, release_id: str) -> None:
    """Refuse a Deployment of that name that is not this release (a foreign one or a name clash)."""
    if not dep:
        return
    meta = dep.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(kc.LABEL_MANAGED) != kc.MANAGED_BY or labels.get(kc.LABEL_APP) != app:
        raise DeployError("Deployment %s already exists and is not a release of app %r managed by %s; rename or "
                          "remove it. Nothing was changed." % (meta.get("name"), app, kc.MANAGED_BY), option="app")
    if labels.get(kc.LABEL_RELEASE) != release_id:
        raise DeployError("Option 'release': %r maps to Deployment name %s, which already holds release %r of app %r. "
                          "Release ids that differ only in '.', '_', '-' or case share one object name; choose "
                          "another id. Nothing was changed." % (release_id, meta.get("name"),
                                                                labels.get(kc.LABEL_RELEASE), app),
                          option="release", existing_release=labels.get(kc.LABEL_RELEASE))


def check_same_spec(dep: Dict[str, Any], app: str, release_id: str, spec: Dict[str, Any]) -> None:
    ann = (dep.get("metadata") or {}).get("annotations") or {}
    if ann.get(kc.ANN_SPEC) == model.spec_hash(spec):
        return
    fields = model.differing_fields(ann.get(kc.ANN_SPEC_FIELDS), spec, SPEC_FIELDS) or ["unknown (spec scheme)"]
    raise DeployError(
        "Release %r of app %r already exists (Deployment %s) with another spec (differs in: %s; existing slot %s, "
        "digest %s). A release is immutable: deploy the change under a new release id, or remove this one first "
        "(state: absent). Nothing was changed."
        % (release_id, app, dep["metadata"]["name"], ", ".join(fields),
           (dep["metadata"].get("labels") or {}).get(kc.LABEL_SLOT), ann.get(kc.ANN_DIGEST)),
        differs=fields, option="release")


# -- the cluster ---------------------------------------------------------------------------------
class _Cluster(kc.Cluster):
    """The reads of a release."""

    def deployment(self, name: str) -> Dict[str, Any]:
        return self.call("Reading Deployment %s" % name, self.apps.read_namespaced_deployment, name, self.ns,
                         allow=(404,))

    def pods(self, selector: str) -> List[Dict[str, Any]]:
        return self.call("Listing pods", self.core.list_namespaced_pod, self.ns,
                         label_selector=selector).get("items") or []

    def events(self, pod: str) -> List[Dict[str, Any]]:
        return self.call("Listing events of pod %s" % pod, self.core.list_namespaced_event, self.ns,
                         field_selector="involvedObject.name=%s" % pod).get("items") or []


def _create_config(k: _Cluster, obj: Dict[str, Any], app: str, release_id: str, dry: Optional[str]) -> bool:
    """Create one ConfigMap/Secret; False when it already exists with this very content (a rerun)."""
    secret = obj["kind"] == "secret"
    what = "%s %s" % (obj["body"]["kind"], obj["name"])
    create = k.core.create_namespaced_secret if secret else k.core.create_namespaced_config_map
    if k.call("Creating " + what, create, k.ns, obj["body"], dry_run=dry, allow=(409,)):
        return True
    read = k.core.read_namespaced_secret if secret else k.core.read_namespaced_config_map
    found = k.call("Reading " + what, read, obj["name"], k.ns)
    labels = (found.get("metadata") or {}).get("labels") or {}
    if labels.get(kc.LABEL_APP) == app and labels.get(kc.LABEL_RELEASE) == release_id \
            and (found.get("data") or {}) == obj["body"]["data"]:
        return False
    raise DeployError("%s already exists with other content or for another release; it is named by the hash of "
                      "its content, so remove the stray object. Nothing was changed." % what, option="app")


def _create(k: _Cluster, app: str, release_id: str, spec: Dict[str, Any], image: str, replicas: int,
            configs: List[Dict[str, Any]], p: Dict[str, Any], dry: Optional[str]) -> Dict[str, Any]:
    name = kc.object_name(app, release_id)
    created: List[Dict[str, Any]] = []
    try:
        for obj in configs:
            if _create_config(k, obj, app, release_id, dry):
                created.append(obj)
        body = deployment_body(app, release_id, spec, image, replicas, now(), configs,
                               _int("progress_deadline_seconds", p.get("progress_deadline_seconds", 120), 1))
        return k.call("Creating Deployment %s" % name, k.apps.create_namespaced_deployment, k.ns, body, dry_run=dry)
    except DeployError as exc:
        if dry or not created:
            raise
        for obj in created:  # best effort: the objects of a release that was never created
            delete = k.core.delete_namespaced_secret if obj["kind"] == "secret" else k.core.delete_namespaced_config_map
            try:
                k.call("Deleting %s" % obj["name"], delete, obj["name"], k.ns, allow=(404,))
            except DeployError:
                pass
        raise DeployError(exc.msg + " The ConfigMaps/Secret created for it were removed again.", **exc.details)


def _scale(k: _Cluster, dep: Dict[str, Any], spec: Dict[str, Any], replicas: int, dry: Optional[str]) -> Dict[str, Any]:
    """Change only the size (and the recorded size); the test op refuses a Deployment replaced meanwhile."""
    name = dep["metadata"]["name"]
    patch = [{"op": "test", "path": "/metadata/annotations/" + kc.ANN_SPEC.replace("/", "~1"),
              "value": model.spec_hash(spec)},
             {"op": "replace", "path": "/spec/replicas", "value": replicas},
             {"op": "add", "path": "/metadata/annotations/" + kc.ANN_REPLICAS.replace("/", "~1"),
              "value": str(replicas)}]
    return k.call("Scaling Deployment %s" % name, k.apps.patch_namespaced_deployment, name, k.ns, patch, dry_run=dry)


def _wait(k: _Cluster, app: str, release_id: str, p: Dict[str, Any]) -> Dict[str, Any]:
    name = kc.object_name(app, release_id)
    selector = kc.label_selector(kc.selector_for(app, release_id))
    report = k8s_wait.wait_rollout(lambda: k.deployment(name), lambda: k.pods(selector), k.events,
                                   p.get("wait_timeout", 120))
    dep = k.deployment(name)
    if report is None:
        return dep
    how = "failed" if report["why"] == "failed" else "did not become ready within wait_timeout %ss" % p["wait_timeout"]
    raise DeployError(
        "Release %r of app %r (Deployment %s in namespace %s) %s (%s): %s. The Deployment was left in place with its "
        "ConfigMaps/Secret for inspection; the strategy decides whether to retire it (state: absent)."
        % (release_id, app, name, k.ns, how, report["summary"], k8s_wait.failure_text(report)),
        pods=report["pods"], why=report["why"], release=view(app, release_id, k.ns, dep or None))


def _remove(k: _Cluster, app: str, release_id: str, dep: Dict[str, Any], p: Dict[str, Any],
            check_mode: bool) -> Dict[str, Any]:
    labels = (dep.get("metadata") or {}).get("labels") or {}
    if dep and labels.get(kc.LABEL_MANAGED) == kc.MANAGED_BY and labels.get(kc.LABEL_APP) == app \
            and labels.get(kc.LABEL_RELEASE) != release_id:
        dep = {}  # the name holds another release (a clash of ids): this one is not there
    check_owner(dep, app, release_id)
    name, dry = kc.object_name(app, release_id), "All" if check_mode else None
    selector = kc.label_selector(dict(kc.selector_for(app, release_id), **{kc.LABEL_MANAGED: kc.MANAGED_BY}))
    # Also the leftovers of a release whose Deployment is already gone.
    maps = [m["metadata"]["name"] for m in k.call("Listing ConfigMaps", k.core.list_namespaced_config_map, k.ns,
                                                  label_selector=selector).get("items") or []]
    secrets = [s["metadata"]["name"] for s in k.call("Listing Secrets", k.core.list_namespaced_secret, k.ns,
                                                     label_selector=selector).get("items") or []]
    before = summary(view(app, release_id, k.ns, dep or None))
    if maps or secrets:
        before.update(configmaps=sorted(maps), secrets=sorted(secrets))
    if dep:
        k.call("Deleting Deployment %s" % name, k.apps.delete_namespaced_deployment, name, k.ns,
               propagation_policy="Background", dry_run=dry, allow=(404,))
    for obj, delete in [(m, k.core.delete_namespaced_config_map) for m in maps] + \
            [(s, k.core.delete_namespaced_secret) for s in secrets]:
        k.call("Deleting %s" % obj, delete, obj, k.ns, dry_run=dry, allow=(404,))
    if dep and p.get("wait", True) and not check_mode:
        left = k8s_wait.wait_gone(lambda: k.pods(kc.label_selector(kc.selector_for(app, release_id))),
                                  p.get("wait_timeout", 120))
        if left:
            raise DeployError("Deployment %s was deleted but %d pod(s) are still terminating after wait_timeout %ss: "
                              "%s." % (name, len(left), p["wait_timeout"], ", ".join(left)), pods=left)
    return {"changed": bool(dep or maps or secrets), "release": view(app, release_id, k.ns, None),
            "diff": {"before": before, "after": {"state": "absent"}}}


# -- the service ----------------------------------------------------------------------------------
def ensure(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    app = model.validate_app(p["app"])
    release_id = validate_release_id(p["release"])
    present = p.get("state", "present") == "present"
    if present:
        for option in ("slot", "image"):
            if not p.get(option):
                raise DeployError("Option '%s' is required with state=present." % option, option=option)
        # Every input is checked before connecting, and so before any write.
        normalize_spec(p, check_image_syntax(p))
        replicas = _int("replicas", p.get("replicas", 1), 0, MAX_REPLICAS)
        _int("progress_deadline_seconds", p.get("progress_deadline_seconds", 120), 1)
    _int("wait_timeout", p.get("wait_timeout", 120), 0)
    k = _Cluster(p)
    kc.check_namespace(k.core, k.ns)
    dep = k.deployment(kc.object_name(app, release_id))
    if not present:
        return _remove(k, app, release_id, dep, p, check_mode)

    check_owner(dep, app, release_id)
    image, digest = resolve_image(p)
    spec = normalize_spec(p, digest)
    before = view(app, release_id, k.ns, dep or None)
    dry = "All" if check_mode else None
    if dep:
        check_same_spec(dep, app, release_id, spec)
        # Compared with the recorded size, so a Deployment a canary scaled is left as the canary set it.
        changed = before["replicas"] != replicas
        if changed:
            dep = _scale(k, dep, spec, replicas, dry)
    else:
        changed = True
        configs = config_objects(app, release_id, spec, secret_values(p))
        dep = _create(k, app, release_id, spec, image, replicas, configs, p, dry)
    if p.get("wait", True) and not check_mode:
        dep = _wait(k, app, release_id, p)
    after = view(app, release_id, k.ns, dep)
    return {"changed": changed, "release": after, "diff": {"before": summary(before), "after": summary(after)}}
