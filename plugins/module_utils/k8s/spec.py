# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a release on Kubernetes is made of, decided without the cluster (pure).

Every option that changes what runs is validated and normalized into a spec; the
spec hash and per-field hashes become annotations, so another spec under the same
release id is refused. Configuration travels with the release as immutable
ConfigMaps and a Secret named by the hash of their content.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn

# Fields in the order errors list them. Replicas is scaling, not content: not part of the spec.
SPEC_FIELDS = ("slot", "digest", "container_port", "env", "secret_env", "config_files", "readiness",
               "liveness", "resources", "labels", "image_pull_policy", "termination_grace_period_seconds")
RESERVED_LABELS = (kn.LABEL_MANAGED, kn.LABEL_NAME)
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


def option_int(option: str, value: Any, low: int, high: Optional[int] = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        raise invalid_option(option, value, "an integer from %d%s" % (low, " to %d" % high if high else " up"))
    return value


def _label_key_ok(key: str) -> bool:
    prefix, _sep, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_LABEL_VALUE_RE.match(name))


def normalize_labels(value: Optional[Dict[str, Any]]) -> Dict[str, str]:
    labels = model.str_map("labels", value)
    for key, val in sorted(labels.items()):
        if key.startswith(kn.PREFIX) or key in RESERVED_LABELS:
            raise invalid_option("labels", key, "keys outside %s* and other than %s, which this module sets"
                                 % (kn.PREFIX, ", ".join(RESERVED_LABELS)))
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
        out.update(path=path, port=option_int(option + ".port", value.get("port") or port, 1, 65535))
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
        out[key] = option_int("%s.%s" % (option, key), default if given is None else given, low)
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
    port = option_int("container_port", p.get("container_port", 8080), 1, 65535)
    if p.get("image_pull_policy", "IfNotPresent") not in PULL_POLICIES:
        raise invalid_option("image_pull_policy", p.get("image_pull_policy"), ", ".join(PULL_POLICIES))
    env_names = "environment variable names: letters, digits, '_', '-', '.', not starting with a digit"
    env = model.str_map("env", p.get("env"), _ENV_NAME_RE, env_names)
    secret = model.str_map("secret_env", p.get("secret_env"), _ENV_NAME_RE, env_names)
    both = sorted(set(env) & set(secret))
    if both:
        raise invalid_option("env", both, "names that are not also in secret_env")
    files = model.str_map("config_files", p.get("config_files"), _FILE_NAME_RE,
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
        "termination_grace_period_seconds": option_int("termination_grace_period_seconds",
                                                       p.get("termination_grace_period_seconds", 30), 0, 3600),
    }


def secret_values(p: Dict[str, Any]) -> Dict[str, str]:
    return model.str_map("secret_env", p.get("secret_env"))


def content_name(name: str, kind: str, data: Dict[str, str]) -> str:
    """'<deployment>-<kind>-<10 hex of sha256 of the content>': new content, new object."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return "%s-%s-%s" % (name, kind, hashlib.sha256(canonical).hexdigest()[:10])


def config_objects(app: str, release_id: str, spec: Dict[str, Any], secret: Dict[str, str]) -> List[Dict[str, Any]]:
    """The ConfigMaps and Secret of a release: [{kind: env|secret|files, name, body}]."""
    name = kn.object_name(app, release_id)
    labels = {kn.LABEL_APP: app, kn.LABEL_RELEASE: release_id, kn.LABEL_MANAGED: kn.MANAGED_BY}
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
    labels.update({kn.LABEL_APP: app, kn.LABEL_RELEASE: release_id, kn.LABEL_SLOT: spec["slot"],
                   kn.LABEL_MANAGED: kn.MANAGED_BY, kn.LABEL_NAME: app})
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
    name = kn.object_name(app, release_id)
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
        kn.ANN_DIGEST: spec["digest"], kn.ANN_IMAGE: image, kn.ANN_CREATED: created,
        kn.ANN_SPEC: model.spec_hash(spec), kn.ANN_SPEC_FIELDS: model.spec_fields(spec, SPEC_FIELDS),
        kn.ANN_REPLICAS: str(replicas),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas, "progressDeadlineSeconds": progress_deadline,
            "selector": {"matchLabels": kn.selector_for(app, release_id)},
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
    if labels.get(kn.LABEL_MANAGED) != kn.MANAGED_BY or labels.get(kn.LABEL_APP) != app:
        raise DeployError("Deployment %s already exists and is not a release of app %r managed by %s; rename or "
                          "remove it. Nothing was changed." % (meta.get("name"), app, kn.MANAGED_BY), option="app")
    if labels.get(kn.LABEL_RELEASE) != release_id:
        raise DeployError("Option 'release': %r maps to Deployment name %s, which already holds release %r of app %r. "
                          "Release ids that differ only in '.', '_', '-' or case share one object name; choose "
                          "another id. Nothing was changed." % (release_id, meta.get("name"),
                                                                labels.get(kn.LABEL_RELEASE), app),
                          option="release", existing_release=labels.get(kn.LABEL_RELEASE))


def check_same_spec(dep: Dict[str, Any], app: str, release_id: str, spec: Dict[str, Any]) -> None:
    ann = (dep.get("metadata") or {}).get("annotations") or {}
    if ann.get(kn.ANN_SPEC) == model.spec_hash(spec):
        return
    fields = model.differing_fields(ann.get(kn.ANN_SPEC_FIELDS), spec, SPEC_FIELDS) or ["unknown (spec scheme)"]
    raise DeployError(
        "Release %r of app %r already exists (Deployment %s) with another spec (differs in: %s; existing slot %s, "
        "digest %s). A release is immutable: deploy the change under a new release id, or remove this one first "
        "(state: absent). Nothing was changed."
        % (release_id, app, dep["metadata"]["name"], ", ".join(fields),
           (dep["metadata"].get("labels") or {}).get(kn.LABEL_SLOT), ann.get(kn.ANN_DIGEST)),
        differs=fields, option="release")
