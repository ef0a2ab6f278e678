# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Promotion: copy one digest to another tag, repository or registry, byte for byte.

The copy goes registry to registry through the distribution API (a cross-repository
mount when both sit in one registry), so the manifest bytes and hence the digest
cannot change and no Docker engine is needed: an AWX execution environment can
promote without a socket.
"""
from __future__ import annotations

from typing import Any, Dict, cast

from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import registry_for


def promote(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    src = image_ref.parse(p["source"], "source")
    if src.tag and not src.digest:
        image_ref.require_version_tag(src, "source", p["moving_tags"])
    elif not src.digest:
        raise DeployError("Option 'source': %r names no version or digest; give name@sha256:... "
                          "or name:version." % p["source"], option="source")
    dst = image_ref.parse(p["target"], "target")
    if dst.digest:
        raise DeployError("Option 'target': %r must be repository:version without a digest."
                          % p["target"], option="target")
    image_ref.require_version_tag(dst, "target", p["moving_tags"])
    # Both are there: each check above raised otherwise.
    wanted, dst_tag = cast(str, src.digest or src.tag), cast(str, dst.tag)

    src_registry = registry_for(src, p, "source")
    dst_registry = registry_for(dst, p, "target")
    manifest = src_registry.get_manifest(src.repository, wanted)
    if manifest is None:
        raise DeployError("Option 'source': %s does not exist in registry %s; nothing to promote."
                          % (src, src.registry), option="source")
    if src.digest and manifest.digest != src.digest:
        raise DeployError("Registry %s served %s for %s." % (src.registry, manifest.digest, src))

    existing = dst_registry.get_manifest(dst.repository, dst_tag)
    if existing and existing.digest != manifest.digest:
        raise DeployError("Option 'target': %s already points at %s, not %s. A version is never "
                          "re-pointed; promote to a new version." % (dst.tagged, existing.digest,
                                                                     manifest.digest),
                          option="target", existing_digest=existing.digest, digest=manifest.digest)
    changed = existing is None
    if changed and not check_mode:
        pushed = dst_registry.copy_manifest(src_registry, src.repository, manifest, dst.repository, dst_tag)
        if pushed != manifest.digest:
            raise DeployError("Promotion changed the digest: %s was pushed as %s." % (manifest.digest, pushed))
        again = dst_registry.get_manifest(dst.repository, dst_tag)
        if again is None or again.digest != manifest.digest:
            raise DeployError("After promotion %s does not resolve to %s." % (dst.tagged, manifest.digest))
    return {
        "changed": changed,
        "digest": manifest.digest,
        "source": {"ref": src.with_digest(manifest.digest).pinned, "tag": src.tag},
        "target": {"ref": dst.with_digest(manifest.digest).pinned, "tagged": dst.tagged},
        "diff": {"before": {dst.tagged: existing.digest if existing else None},
                 "after": {dst.tagged: manifest.digest}},
    }
