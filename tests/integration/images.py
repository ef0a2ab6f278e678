"""Helpers for tests that need sample images: build contexts, registry reads, cleanup."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request
from typing import Iterable, Optional

import docker

from conftest import AUTH, AUTH_REGISTRY, ROOT

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def sample_context(path, version: str) -> str:
    """A FROM-scratch busybox httpd app serving its version (scripts/sample_app.sh)."""
    subprocess.run([os.path.join(ROOT, "scripts", "sample_app.sh"), str(path), version],
                   check=True, stdout=subprocess.DEVNULL)
    return str(path)


def _open(registry: str, path: str, method: str = "GET"):
    req = urllib.request.Request("http://%s/v2/%s" % (registry, path), method=method,
                                 headers={"Accept": MANIFEST_V2})
    if registry == AUTH_REGISTRY:
        raw = ("%s:%s" % (AUTH["username"], AUTH["password"])).encode()
        req.add_header("Authorization", "Basic " + base64.b64encode(raw).decode())
    return urllib.request.urlopen(req, timeout=10)


def registry_digest(name: str, tag: str) -> Optional[str]:
    """What the registry itself says name:tag points at (None when absent)."""
    registry, repo = name.split("/", 1)
    try:
        with _open(registry, "%s/manifests/%s" % (repo, tag), "HEAD") as resp:
            return resp.headers["Docker-Content-Digest"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def remove_repos(names: Iterable[str]) -> None:
    """Delete the local images and the registry manifests of these repositories."""
    client = docker.from_env()
    for name in names:
        # by tag, newest first: an image built on another's layers (legacy builder) is its child,
        # and removing the parent by id first would be refused
        images = sorted(client.images.list(name=name), key=lambda i: i.attrs.get("Created", ""), reverse=True)
        for image in images:
            for tag in image.tags:
                if tag.rsplit(":", 1)[0] == name:
                    client.images.remove(tag, force=True)
        registry, repo = name.split("/", 1)
        try:
            with _open(registry, "%s/tags/list" % repo) as resp:
                tags = json.load(resp).get("tags") or []
        except urllib.error.HTTPError:
            continue
        for tag in tags:
            digest = registry_digest(name, tag)
            if digest:
                try:
                    _open(registry, "%s/manifests/%s" % (repo, digest), "DELETE").close()
                except urllib.error.HTTPError:
                    pass
