# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small OCI distribution (registry HTTP API v2) client on the standard library.

Used to read what a tag points at without pulling, and to copy a digest between
repositories and registries byte for byte, which is what promotion means.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import ssl
import tempfile
import urllib.request
from typing import Any, Dict, Literal, NamedTuple, Optional, cast, overload
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urljoin

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
_CHUNK = 1024 * 1024
_PLAIN = urllib.request.build_opener()


class Manifest(NamedTuple):
    digest: str
    media_type: str
    body: bytes

    @property
    def data(self) -> Dict[str, Any]:
        return cast(Dict[str, Any], json.loads(self.body))  # a manifest is a JSON object (OCI spec)


def default_scheme(host: str) -> str:
    """Loopback registries speak plain HTTP, as Docker itself assumes."""
    bare = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    return "http" if bare in ("localhost", "127.0.0.1", "[::1]") else "https"


class Registry:
    def __init__(self, host: str, username: Optional[str] = None, password: Optional[str] = None,
                 scheme: str = "auto", timeout: float = 30, validate_certs: bool = True) -> None:
        self.host = host
        self.api_host = "registry-1.docker.io" if host == "docker.io" else host
        self.base = "%s://%s" % (default_scheme(host) if scheme == "auto" else scheme, self.api_host)
        self.username = username
        self.password = password
        self.timeout = timeout
        self.validate_certs = validate_certs
        self._auth: Dict[str, str] = {}  # scope -> Authorization header value
        self._opener: Optional[urllib.request.OpenerDirector] = None

    # -- transport --------------------------------------------------------------
    def _open(self, method: str, url: str, headers: Dict[str, str], data: Any = None) -> http.client.HTTPResponse:
        # One TLS context per registry, built only for https: loading the CA store
        # costs ~0.2 s, which open_url would pay on every request, even plain http.
        if not url.startswith("https:"):
            opener = _PLAIN
        elif self._opener is None:
            context = ssl.create_default_context()
            if not self.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._opener = opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        else:
            opener = self._opener
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        # urllib's http(s) handlers answer with the HTTPResponse itself (typeshed says Any).
        return cast(http.client.HTTPResponse, opener.open(request, timeout=self.timeout))

    # A response always, unless missing_ok: then None for a 404.
    @overload
    def _request(self, method: str, path: str, scope: str, headers: Optional[Dict[str, str]] = None,
                 data: Any = None, missing_ok: Literal[False] = False) -> http.client.HTTPResponse: ...

    @overload
    def _request(self, method: str, path: str, scope: str, headers: Optional[Dict[str, str]] = None,
                 data: Any = None, *, missing_ok: bool) -> Optional[http.client.HTTPResponse]: ...

    def _request(self, method: str, path: str, scope: str, headers: Optional[Dict[str, str]] = None,
                 data: Any = None, missing_ok: bool = False) -> Optional[http.client.HTTPResponse]:
        url = path if path.startswith("http") else self.base + path
        headers = dict(headers or {})
        for attempt in (1, 2):
            if scope in self._auth:
                headers["Authorization"] = self._auth[scope]
            try:
                if hasattr(data, "seek"):
                    data.seek(0)
                return self._open(method, url, headers, data)
            except HTTPError as exc:
                if exc.code == 404 and missing_ok:
                    return None
                if exc.code == 401 and attempt == 1:
                    self._authenticate(exc.headers.get("WWW-Authenticate", ""), scope)
                    continue
                if exc.code in (401, 403):
                    raise DeployError(
                        "Registry %s refused %s %s (HTTP %s): %s. Check registry_username and "
                        "registry_password." % (self.host, method, path.split("?")[0], exc.code,
                                                "authentication required" if not self.username
                                                else "wrong credentials or no access"),
                        registry=self.host, status=exc.code)
                raise DeployError("Registry %s answered HTTP %s to %s %s: %s"
                                  % (self.host, exc.code, method, path.split("?")[0], _body(exc)),
                                  registry=self.host, status=exc.code)
            except URLError as exc:
                raise DeployError("Registry %s is unreachable at %s: %s"
                                  % (self.host, self.base, exc.reason), registry=self.host)
        raise AssertionError("unreachable")

    def _authenticate(self, challenge: str, scope: str) -> None:
        kind, dummy, params = challenge.partition(" ")
        if kind.lower() == "basic":
            if not self.username:
                return  # the retry fails with "authentication required"
            raw = ("%s:%s" % (self.username, self.password or "")).encode()
            self._auth[scope] = "Basic " + base64.b64encode(raw).decode()
            return
        if kind.lower() != "bearer":
            return
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        query = {"service": fields.get("service", "")}
        if scope:
            query["scope"] = scope
        headers = {}
        if self.username:
            raw = ("%s:%s" % (self.username, self.password or "")).encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        try:
            resp = self._open("GET", fields.get("realm", "") + "?" + urlencode(query), headers)
            token = json.loads(resp.read())
        except (HTTPError, URLError, ValueError) as exc:
            raise DeployError("Registry %s: token request to %s failed: %s. Check registry_username "
                              "and registry_password." % (self.host, fields.get("realm"), exc),
                              registry=self.host)
        self._auth[scope] = "Bearer " + (token.get("token") or token.get("access_token", ""))

    # -- reads ------------------------------------------------------------------
    def check(self) -> None:
        """Reach the API root; raises DeployError when unreachable or credentials are wrong."""
        self._request("GET", "/v2/", "")

    def get_manifest(self, repo: str, reference: str) -> Optional[Manifest]:
        resp = self._request("GET", "/v2/%s/manifests/%s" % (repo, reference), _pull(repo),
                             {"Accept": ", ".join(MANIFEST_TYPES)}, missing_ok=True)
        if resp is None:
            return None
        body = resp.read()
        digest = resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()
        media_type = resp.headers.get("Content-Type", "").split(";")[0] or json.loads(body).get("mediaType", "")
        return Manifest(digest, media_type, body)

    def get_config(self, repo: str, manifest: Manifest) -> Dict[str, Any]:
        """The image config (labels, created) of a single-platform manifest."""
        data = manifest.data
        if manifest.media_type in INDEX_TYPES:
            child = self.get_manifest(repo, data["manifests"][0]["digest"])
            if child is None:
                return {}
            data = child.data
        resp = self._request("GET", "/v2/%s/blobs/%s" % (repo, data["config"]["digest"]), _pull(repo))
        return cast(Dict[str, Any], json.loads(resp.read()))  # an image config is a JSON object (OCI spec)

    def blob_exists(self, repo: str, digest: str) -> bool:
        return self._request("HEAD", "/v2/%s/blobs/%s" % (repo, digest), _pull(repo),
                             missing_ok=True) is not None

    # -- copy -------------------------------------------------------------------
    def copy_manifest(self, src: "Registry", src_repo: str, manifest: Manifest,
                      repo: str, tag: str) -> str:
        """Copy a manifest (and its children and blobs) from src; return the pushed digest."""
        data = manifest.data
        if manifest.media_type in INDEX_TYPES:
            for child in data.get("manifests", []):
                child_manifest = src.get_manifest(src_repo, child["digest"])
                if child_manifest is None:
                    raise DeployError("Registry %s: %s lists %s which is missing."
                                      % (src.host, manifest.digest, child["digest"]))
                self.copy_manifest(src, src_repo, child_manifest, repo, child["digest"])
        else:
            for blob in [data["config"]] + data.get("layers", []):
                self._copy_blob(src, src_repo, blob["digest"], repo)
        resp = self._request("PUT", "/v2/%s/manifests/%s" % (repo, tag), _push(repo),
                             {"Content-Type": manifest.media_type}, data=manifest.body)
        return resp.headers.get("Docker-Content-Digest") or manifest.digest

    def _copy_blob(self, src: "Registry", src_repo: str, digest: str, repo: str) -> None:
        if self.blob_exists(repo, digest):
            return
        if src.base == self.base:
            # Same registry: a cross-repository mount moves no bytes.
            query = urlencode({"mount": digest, "from": src_repo})
            resp = self._request("POST", "/v2/%s/blobs/uploads/?%s" % (repo, query),
                                 _push(repo) + " " + _pull(src_repo), data=b"")
            if resp.status == 201:
                return
            location = resp.headers["Location"]
        else:
            resp = self._request("POST", "/v2/%s/blobs/uploads/" % repo, _push(repo), data=b"")
            location = resp.headers["Location"]
        with tempfile.TemporaryFile() as spool:
            stream = src._request("GET", "/v2/%s/blobs/%s" % (src_repo, digest), _pull(src_repo))
            sha, size = hashlib.sha256(), 0
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                sha.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            if "sha256:" + sha.hexdigest() != digest:
                raise DeployError("Registry %s served blob %s with other content; refusing to copy."
                                  % (src.host, digest))
            url = urljoin(self.base + "/", location)
            url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
            self._request("PUT", url, _push(repo), {"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(size)}, data=spool)


def _pull(repo: str) -> str:
    return "repository:%s:pull" % repo


def _push(repo: str) -> str:
    return "repository:%s:pull,push" % repo


def _body(exc: HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", "replace")[:300]
    except Exception:  # pylint: disable=broad-except
        return str(exc)


REGISTRY_ARGS: Dict[str, Any] = dict(
    registry_username=dict(type="str"),
    registry_password=dict(type="str", no_log=True),
    registry_scheme=dict(type="str", default="auto", choices=["auto", "https", "http"]),
    validate_certs=dict(type="bool", default=True),
)
MOVING_TAGS_ARG: Dict[str, Any] = dict(
    moving_tags=dict(type="list", elements="str", default=list(image_ref.DEFAULT_MOVING_TAGS)),
)


def registry_for(ref: image_ref.ImageRef, p: Dict[str, Any], prefix: str = "registry") -> Registry:
    return Registry(ref.registry, p.get(prefix + "_username"), p.get(prefix + "_password"),
                    scheme=p.get("registry_scheme", "auto"), validate_certs=p.get("validate_certs", True))
