# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a release on a Docker host is made of: labels, container names and the spec (pure)."""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

from ansible_collections.immutable.deploy.plugins.module_utils import release as model
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option

PREFIX = "io.immutable-deploy."
LABEL_APP = PREFIX + "app"
LABEL_RELEASE = PREFIX + "release"
LABEL_SLOT = PREFIX + "slot"
LABEL_DIGEST = PREFIX + "digest"
LABEL_IMAGE = PREFIX + "image"
LABEL_CREATED = PREFIX + "created"
LABEL_REPLICA = PREFIX + "replica"
LABEL_REPLICAS = PREFIX + "replicas"
LABEL_SPEC = PREFIX + "spec"
LABEL_SPEC_FIELDS = PREFIX + "spec-fields"

# Fields in the order errors list them; identity (app, release) is not part of the spec.
SPEC_FIELDS = ("slot", "digest", "replicas", "container_port", "published_ports", "bind_address",
               "env", "secret_env", "command", "restart_policy", "memory", "cpus", "labels",
               "healthcheck")

_MEMORY_RE = re.compile(r"^([0-9]+)([bkmg]?)$")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def container_name(app: str, release: str, replica: int) -> str:
    return "%s-%s-%d" % (app, release, replica)


def parse_memory(value: Any) -> Optional[int]:
    """'256m' -> bytes; None stays None. Units b, k, m, g (powers of 1024), as Docker reads them."""
    if value is None or value == "":
        return None
    match = _MEMORY_RE.match(str(value).strip().lower())
    if not match or int(match.group(1)) == 0:
        raise invalid_option("memory", value, "a positive size such as '268435456', '512k', '256m' or '1g'")
    return int(match.group(1)) * _UNITS[match.group(2)]


def normalize_healthcheck(hc: Optional[Dict[str, Any]], container_port: Optional[int]) -> Optional[Dict[str, Any]]:
    """The health check as the spec records it, with the Docker test command resolved."""
    if not hc:
        return None
    kind = hc.get("type") or "http"
    if kind == "http":
        port = hc.get("port") or container_port
        if not port:
            raise DeployError("Option 'healthcheck': type 'http' needs healthcheck.port or container_port.",
                              option="healthcheck")
        path = hc.get("path") or "/"
        if not path.startswith("/"):
            raise invalid_option("healthcheck.path", path, "an absolute URL path such as '/health'")
        # Images are minimal: busybox's wget is the probe, no shell needed.
        test = ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:%d%s" % (port, path)]
    elif kind == "cmd":
        command = hc.get("command") or []
        if not command:
            raise DeployError("Option 'healthcheck': type 'cmd' needs healthcheck.command (a list, exec form).",
                              option="healthcheck.command")
        test = ["CMD"] + [str(c) for c in command]
    else:
        raise invalid_option("healthcheck.type", kind, "http or cmd")
    out: Dict[str, Any] = {"test": test}
    for key, minimum in (("interval", 1), ("timeout", 1), ("retries", 1), ("start_period", 0)):
        value = hc.get(key)
        if value is None:
            value = {"interval": 5, "timeout": 3, "retries": 3, "start_period": 0}[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise invalid_option("healthcheck." + key, value, "an integer >= %d" % minimum)
        out[key] = value
    return out


def normalize_spec(p: Dict[str, Any], digest: str) -> Dict[str, Any]:
    """Every option that changes what runs, normalized; wait/state options are not part of it."""
    replicas = p.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1 or replicas > 100:
        raise invalid_option("replicas", replicas, "an integer from 1 to 100")
    port = p.get("container_port")
    if port is not None and not 1 <= port <= 65535:
        raise invalid_option("container_port", port, "a TCP port from 1 to 65535")
    published = p.get("published_ports") or None
    if published is not None:
        if port is None:
            raise DeployError("Option 'published_ports' needs container_port.", option="published_ports")
        if len(published) != replicas or len(set(published)) != len(published) \
                or not all(1 <= x <= 65535 for x in published):
            raise invalid_option("published_ports", published,
                                 "%d distinct host ports from 1 to 65535, one per replica" % replicas)
    cpus = p.get("cpus")
    if cpus is not None and cpus <= 0:
        raise invalid_option("cpus", cpus, "a positive number such as 0.5")
    labels = model.str_map("labels", p.get("labels"))
    ours = sorted(k for k in labels if k.startswith(PREFIX))
    if ours:
        raise invalid_option("labels", ours, "keys outside %s*, which this module sets" % PREFIX)
    secret = model.str_map("secret_env", p.get("secret_env"))
    env = model.str_map("env", p.get("env"))
    both = sorted(set(env) & set(secret))
    if both:
        raise invalid_option("env", both, "names that are not also in secret_env")
    return {
        "slot": model.validate_slot(p.get("slot")),
        "digest": digest,
        "replicas": replicas,
        "container_port": port,
        "published_ports": list(published) if published else None,
        "bind_address": p.get("bind_address") or "127.0.0.1",
        "env": env,
        # Only a hash: the spec and its labels must never carry a secret value.
        "secret_env": model.content_hash(secret) if secret else None,
        "command": [str(c) for c in p["command"]] if p.get("command") else None,
        "restart_policy": p.get("restart_policy") or "unless-stopped",
        "memory": parse_memory(p.get("memory")),
        "cpus": float(cpus) if cpus is not None else None,
        "labels": labels,
        "healthcheck": normalize_healthcheck(p.get("healthcheck"), port),
    }


def labels_for(app: str, release: str, spec: Dict[str, Any], image: str, created: str,
               replica: int) -> Dict[str, str]:
    labels = dict(spec["labels"])
    labels.update({
        LABEL_APP: app, LABEL_RELEASE: release, LABEL_SLOT: spec["slot"], LABEL_DIGEST: spec["digest"],
        LABEL_IMAGE: image, LABEL_CREATED: created, LABEL_REPLICA: str(replica),
        LABEL_REPLICAS: str(spec["replicas"]), LABEL_SPEC: model.spec_hash(spec),
        LABEL_SPEC_FIELDS: model.spec_fields(spec, SPEC_FIELDS),
    })
    return labels
