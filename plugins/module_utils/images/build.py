# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image services: build once, resolve to a digest, promote the same digest."""
from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional, cast

from ansible_collections.immutable.deploy.plugins.module_utils.docker.engine import Engine, image_labels
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils.images.fingerprint import (
    FINGERPRINT_LABEL, fingerprint)
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import Manifest, registry_for


def _reuse_error(ref: image_ref.ImageRef, where: str, found: Optional[str], wanted: str) -> DeployError:
    return DeployError(
        "Version %r of %s already exists in the %s with other content (fingerprint %s, these "
        "inputs give %s). A version is never re-pointed: bump 'version'."
        % (ref.tag, ref.name, where, found or "none: not built by immutable.deploy", wanted),
        option="version", existing_fingerprint=found, fingerprint=wanted)


def build(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    name = image_ref.parse(p["name"], "name")
    if name.tag or name.digest:
        raise DeployError("Option 'name' must be a repository without tag or digest, got %r; "
                          "put the version in 'version'." % p["name"], option="name")
    ref = image_ref.parse("%s:%s" % (p["name"], p["version"]), "version")
    image_ref.require_version_tag(ref, "version", p["moving_tags"])
    tag = cast(str, ref.tag)  # require_version_tag raised if there is none
    context = p["path"]
    if not os.path.isdir(context):
        raise DeployError("Option 'path': build context %r does not exist or is not a directory."
                          % context, option="path")
    dockerfile = os.path.join(context, p["dockerfile"])
    if not os.path.isfile(dockerfile):
        raise DeployError("Option 'dockerfile': %r not found (looked for %s)."
                          % (p["dockerfile"], dockerfile), option="dockerfile")
    fp = fingerprint(context, dockerfile, p["build_args"], p["target"], p["labels"])

    client = Engine(p["docker_host"], p["docker_timeout"])
    local = client.inspect_image(ref.tagged)
    if local and image_labels(local).get(FINGERPRINT_LABEL) != fp:
        raise _reuse_error(ref, "local engine", image_labels(local).get(FINGERPRINT_LABEL), fp)

    registry, remote = None, None
    if p["push"]:
        registry = registry_for(ref, p)
        registry.check()  # reachability and credentials are checked before anything changes
        remote = registry.get_manifest(ref.repository, tag)
        if remote:
            labels = (registry.get_config(ref.repository, remote).get("config") or {}).get("Labels") or {}
            if labels.get(FINGERPRINT_LABEL) != fp:
                raise _reuse_error(ref, "registry %s" % ref.registry, labels.get(FINGERPRINT_LABEL), fp)

    need_build = local is None and remote is None
    need_push = bool(p["push"]) and remote is None
    before = {"local": local["Id"] if local else None, "registry": remote.digest if remote else None}
    result: Dict[str, Any] = {"changed": need_build or need_push, "fingerprint": fp,
                              "built": need_build, "pushed": need_push}
    if check_mode or not result["changed"]:
        image = _describe(ref, local, remote, fp)
    else:
        if need_build:
            local = _docker_build(client, p, ref, fp, dockerfile)
        if need_push:
            remote_digest = _docker_push(client, p, ref)
            remote = registry.get_manifest(ref.repository, remote_digest) if registry else None
            if remote is None or remote.digest != remote_digest:
                raise DeployError("Pushed %s but the registry does not serve digest %s."
                                  % (ref.tagged, remote_digest))
        image = _describe(ref, local, remote, fp)
    result["image"] = image
    after = {"local": image["id"] if (local or need_build) else None,
             "registry": image["digest"] if p["push"] else None}
    result["diff"] = {"before": {ref.tagged: before}, "after": {ref.tagged: after}}
    return result


def _describe(ref: image_ref.ImageRef, local: Optional[Dict[str, Any]], remote: Optional[Manifest],
              fp: str) -> Dict[str, Any]:
    digest = remote.digest if remote else None
    if digest is None and local:
        prefix = ref.name + "@"
        digest = next((d.split("@", 1)[1] for d in local.get("RepoDigests") or [] if d.startswith(prefix)), None)
    image_id = local["Id"] if local else (remote.data.get("config", {}).get("digest") if remote else None)
    return {
        "name": ref.name, "version": ref.tag, "tagged": ref.tagged, "id": image_id,
        "digest": digest, "ref": ref.with_digest(digest).pinned if digest else image_id,
        "fingerprint": fp, "labels": image_labels(local),
    }


def _docker_build(client: Engine, p: Dict[str, Any], ref: image_ref.ImageRef, fp: str,
                  dockerfile: str) -> Dict[str, Any]:
    labels = dict(p["labels"])
    labels.update({
        FINGERPRINT_LABEL: fp,
        "org.opencontainers.image.version": ref.tag,
        "org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    for key in ("revision", "source"):
        if p.get(key):
            labels["org.opencontainers.image." + key] = p[key]
    client.build(ref.tagged, path=p["path"], dockerfile=os.path.relpath(dockerfile, p["path"]),
                 buildargs=p["build_args"], target=p["target"], labels=labels, rm=True, forcerm=True, pull=p["pull"])
    built = client.inspect_image(ref.tagged)
    if built is None:
        raise DeployError("Build of %s reported success but no image carries that tag." % ref.tagged)
    return built


def registry_auth(p: Dict[str, Any]) -> Optional[Dict[str, str]]:
    """Credentials for the engine's own pull and push (no_log in every module that takes them)."""
    if not p.get("registry_username"):
        return None
    return {"username": p["registry_username"], "password": p.get("registry_password") or ""}


def _docker_push(client: Engine, p: Dict[str, Any], ref: image_ref.ImageRef) -> str:
    aux = client.push(ref.name, cast(str, ref.tag), registry_auth(p))  # build() pushes a version tag only
    if not aux.get("Digest"):
        raise DeployError("Push of %s returned no digest." % ref.tagged)
    return cast(str, aux["Digest"])  # the engine's push stream reports the digest as a string


def info(p: Dict[str, Any]) -> Dict[str, Any]:
    """Resolve a tag or digest to digest, id and labels, locally and/or in the registry."""
    ref = image_ref.parse(p["ref"], "ref")
    if not ref.tag and not ref.digest:
        ref = ref._replace(tag="latest")  # what Docker would resolve; reported as moving below
    result: Dict[str, Any] = {"changed": False, "exists": False, "local": None, "registry": None,
                              "moving": bool(ref.tag and not ref.digest
                                             and image_ref.is_moving(ref.tag, p["moving_tags"]))}
    labels: Dict[str, str] = {}
    digest, image_id = ref.digest, None
    if p["source"] in ("local", "both"):
        local = Engine(p["docker_host"], p["docker_timeout"]).inspect_image(str(ref) if not ref.digest else ref.pinned)
        if local:
            labels = image_labels(local)
            image_id = local["Id"]
            repo_digests = [d.split("@", 1)[1] for d in local.get("RepoDigests") or []
                            if d.startswith(ref.name + "@")]
            digest = digest or (repo_digests[0] if repo_digests else None)
            result["local"] = {"id": image_id, "repo_digests": local.get("RepoDigests") or [],
                               "created": local.get("Created")}
    if p["source"] in ("registry", "both"):
        registry = registry_for(ref, p)
        manifest = registry.get_manifest(ref.repository, cast(str, ref.digest or ref.tag))  # "latest" at least
        if manifest:
            config = registry.get_config(ref.repository, manifest)
            labels = labels or (config.get("config") or {}).get("Labels") or {}
            digest = manifest.digest
            image_id = image_id or manifest.data.get("config", {}).get("digest")
            result["registry"] = {"digest": manifest.digest, "media_type": manifest.media_type,
                                  "created": config.get("created")}
        elif p["source"] == "registry":
            digest = None
    result["exists"] = bool(result["local"] or result["registry"])
    result["image"] = {
        "name": ref.name, "tag": ref.tag, "digest": digest if result["exists"] else None,
        "id": image_id, "labels": labels, "fingerprint": labels.get(FINGERPRINT_LABEL),
        "ref": ref._replace(tag=None).with_digest(digest).pinned if (digest and result["exists"]) else None,
    }
    if p["require_exists"] and not result["exists"]:
        raise DeployError("Option 'ref': %s was not found (%s)." % (ref, "local engine and registry"
                          if p["source"] == "both" else p["source"]), option="ref")
    return result
