# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one gateway to a Docker engine.

Every engine call of the collection goes through Engine: plain dicts in and out, None
where the caller says a 404 is an answer (a container removed between a list and an
inspect), and one DeployError for anything else, the engine's own explanation in it,
as community.docker's client base does.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, cast

from ansible_collections.immutable.deploy.plugins.module_utils.docker.unix_api import ApiError, UnixAPI, socket_path
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

# The SDK is imported only when a call needs it (see unix_api.py); its presence is checked cheaply.
DOCKER_IMPORT_ERROR: Optional[str] = None if importlib.util.find_spec("docker") else "No module named 'docker'"


def _sdk_errors() -> Tuple[Type[BaseException], ...]:
    """The SDK's exception base, once the SDK is loaded (before that, no SDK call can have failed)."""
    if "docker" not in sys.modules:
        return ()
    from docker.errors import DockerException  # pylint: disable=import-outside-toplevel
    return (DockerException,)


DOCKER_ARGS: Dict[str, Any] = dict(
    docker_host=dict(type="str", aliases=["docker_url"]),
    docker_timeout=dict(type="int", default=120),
)


def text_of(exc: BaseException) -> str:
    data = getattr(exc, "explanation", None) or exc
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def stream_errors(stream: Iterable[Dict[str, Any]], what: str, tail: int = 25) -> Tuple[List[str], Dict[str, Any]]:
    """Consume a build/push/pull JSON stream; return (log lines, aux data) or raise with the log tail."""
    lines: List[str] = []
    aux: Dict[str, Any] = {}
    for chunk in stream:
        if "stream" in chunk:
            lines.extend(line for line in chunk["stream"].splitlines() if line.strip())
        elif "status" in chunk:
            lines.append(" ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k)))
        if "aux" in chunk:
            aux.update(chunk["aux"])
        if "error" in chunk:
            raise DeployError("%s failed: %s" % (what, chunk["error"].strip()), log_tail=lines[-tail:])
    return lines, aux


def image_labels(inspected: Optional[Dict[str, Any]]) -> Dict[str, str]:
    if not inspected:
        return {}
    return (inspected.get("Config") or {}).get("Labels") or {}


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404 or getattr(exc, "status_code", None) == 404 or \
        getattr(getattr(exc, "response", None), "status_code", None) == 404


class Engine:
    """A Docker engine: DOCKER_HOST applies when docker_host is not given.

    A local unix socket is spoken to with the standard library (unix_api.py); any other engine,
    and the calls that need the SDK's helpers, go through the docker SDK.
    """

    def __init__(self, docker_host: Optional[str] = None, timeout: int = 120, api: Optional[Any] = None) -> None:
        self.url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.timeout = timeout
        self._sdk: Optional[Any] = None
        if api is not None:
            self.api = api
            return
        path = socket_path(self.url)
        try:
            self.api = UnixAPI(path, timeout) if path else self.sdk
            self.api.ping()
        except (ApiError, OSError) + _sdk_errors() as exc:
            raise DeployError("The Docker engine at %s is unreachable: %s. Set docker_host or "
                              "DOCKER_HOST, or start the engine." % (self.url, exc), docker_host=self.url)

    @property
    def sdk(self) -> Any:
        """The docker SDK's low-level client, created on first use."""
        if self._sdk is None:
            import docker  # pylint: disable=import-outside-toplevel
            self._sdk = docker.APIClient(base_url=self.url, version="auto", timeout=self.timeout)
        return self._sdk

    @property
    def local(self) -> bool:
        """Whether the engine runs on this host, so its published ports can be probed here."""
        return self.url.startswith("unix://") or "127.0.0.1" in self.url or "localhost" in self.url

    def call(self, what: str, fn: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """fn(*args); None on 404 with missing_ok; any other failure a DeployError naming `what`.

        The answers are the engine's JSON (UnixAPI or the SDK, both untyped): the typed methods
        below cast them to the shapes the Docker Engine API documents.
        """
        try:
            return fn(*args, **kwargs)
        except (ApiError, OSError) + _sdk_errors() as exc:
            if _not_found(exc):
                if missing_ok:
                    return None
                raise DeployError("%s: not found." % what)
            raise DeployError("%s failed: %s" % (what, text_of(exc)), explanation=text_of(exc)) from None

    # -- containers --------------------------------------------------------------------------
    def containers(self, labels: Optional[List[str]] = None) -> List[Dict[str, Any]]:
        """Summaries of all containers (stopped ones too), optionally filtered by labels."""
        filters = {"label": labels} if labels else None
        return cast(List[Dict[str, Any]],
                    self.call("Listing containers", self.api.containers, all=True, filters=filters))

    def inspect_container(self, ref: str) -> Optional[Dict[str, Any]]:
        return cast(Optional[Dict[str, Any]],
                    self.call("Inspecting container %s" % ref, self.api.inspect_container, ref, missing_ok=True))

    def inspect_all(self, labels: List[str]) -> List[Dict[str, Any]]:
        """Every container with these labels, inspected; those removed meanwhile are skipped."""
        found = (self.inspect_container(s["Id"]) for s in self.containers(labels))
        return [c for c in found if c is not None]

    def create_container(self, image: str, name: str, host_config: Dict[str, Any], **kwargs: Any) -> str:
        out = self.call("Creating container %s" % name, self.sdk.create_container, image, name=name,
                        host_config=self.sdk.create_host_config(**host_config), detach=True, **kwargs)
        return cast(str, out["Id"])

    def start(self, ref: str) -> None:
        self.call("Starting container %s" % ref, self.api.start, ref)

    def stop(self, ref: str, timeout: int) -> None:
        self.call("Stopping container %s" % ref, self.api.stop, ref, timeout=timeout, missing_ok=True)

    def remove(self, ref: str) -> None:
        self.call("Removing container %s" % ref, self.api.remove_container, ref, force=True, v=True, missing_ok=True)

    def logs(self, ref: str, tail: int) -> List[str]:
        """The last lines of a container's output; none when they cannot be read (it is a report)."""
        try:
            data = self.api.logs(ref, tail=tail) if isinstance(self.api, UnixAPI) else \
                self.api.logs(ref, tail=tail, stdout=True, stderr=True)
        except (ApiError, OSError) + _sdk_errors():
            return []
        return (data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")).splitlines()

    # -- images -------------------------------------------------------------------------------
    def inspect_image(self, ref: str) -> Optional[Dict[str, Any]]:
        return cast(Optional[Dict[str, Any]],
                    self.call("Inspecting image %s" % ref, self.api.inspect_image, ref, missing_ok=True))

    def _stream(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Tuple[List[str], Dict[str, Any]]:
        try:
            return stream_errors(fn(*args, decode=True, **kwargs), what)
        except (OSError,) + _sdk_errors() as exc:  # the stream breaks off, or the call itself fails
            raise DeployError("%s failed: %s" % (what, text_of(exc)), explanation=text_of(exc)) from None

    def pull(self, image: str, auth: Optional[Dict[str, str]] = None) -> None:
        self._stream("Pull of %s" % image, self.sdk.pull, image, auth_config=auth, stream=True)

    def build(self, tag: str, **kwargs: Any) -> List[str]:
        return self._stream("Build of %s" % tag, self.sdk.build, tag=tag, **kwargs)[0]

    def push(self, name: str, tag: str, auth: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        return self._stream("Push of %s:%s" % (name, tag), self.sdk.push, name, tag=tag, auth_config=auth,
                            stream=True)[1]
