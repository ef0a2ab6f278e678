# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection to a Docker engine through the docker SDK, with errors made plain."""
from __future__ import annotations

import os
import traceback
from typing import Any, Dict, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

try:
    import docker
    from docker.errors import DockerException, NotFound
    DOCKER_IMPORT_ERROR: Optional[str] = None
except ImportError:  # reported by module_runner with Ansible's standard message
    DOCKER_IMPORT_ERROR = traceback.format_exc()

DOCKER_ARGS: Dict[str, Any] = dict(
    docker_host=dict(type="str", aliases=["docker_url"]),
    docker_timeout=dict(type="int", default=120),
)


def connect(docker_host: Optional[str] = None, timeout: int = 120) -> "docker.APIClient":
    """A low-level client; DOCKER_HOST applies when docker_host is not given."""
    base_url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.APIClient(base_url=base_url, version="auto", timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise DeployError("The Docker engine at %s is unreachable: %s. Set docker_host or "
                          "DOCKER_HOST, or start the engine." % (base_url, exc), docker_host=base_url)
    return client


def inspect_image(client: "docker.APIClient", ref: str) -> Optional[Dict[str, Any]]:
    try:
        return client.inspect_image(ref)
    except NotFound:
        return None


def inspect_container(client: "docker.APIClient", ref: str) -> Optional[Dict[str, Any]]:
    """The container, or None when it is gone (removed between a list and this call)."""
    try:
        return client.inspect_container(ref)
    except NotFound:
        return None


def image_labels(inspected: Optional[Dict[str, Any]]) -> Dict[str, str]:
    if not inspected:
        return {}
    return (inspected.get("Config") or {}).get("Labels") or {}


def stream_errors(stream, what: str, tail: int = 25):
    """Consume a build/push/pull JSON stream; return (log lines, aux data) or raise with the log tail."""
    lines, aux = [], {}
    for chunk in stream:
        if "stream" in chunk:
            lines.extend(line for line in chunk["stream"].splitlines() if line.strip())
        elif "status" in chunk:
            lines.append(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))
        if "aux" in chunk:
            aux.update(chunk["aux"])
        if "error" in chunk:
            raise DeployError("%s failed: %s" % (what, chunk["error"].strip()),
                              log_tail=lines[-tail:])
    return lines, aux
