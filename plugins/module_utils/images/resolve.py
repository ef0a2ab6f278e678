# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From what a user wrote to the digest that pins it, before anything changes."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, cast

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils.images.registry import registry_for


def resolve_image(p: Dict[str, Any], engine: Optional[Any] = None, option: str = "image") -> Tuple[str, str]:
    """(reference to run, digest that pins it) for p[option].

    A digest is taken as given; a version tag is looked up in the local engine first when one
    is given (an image built here and never pushed is pinned by its image ID, which is
    content-addressed too), then in its registry. Moving tags are refused.
    """
    text = p[option]
    if engine is not None and image_ref.is_digest(text or ""):
        if engine.inspect_image(text) is None:
            raise DeployError("Option '%s': no local image has ID %s." % (option, text), option=option)
        return text, text
    ref = image_ref.parse(text, option)
    if ref.digest:
        return ref._replace(tag=None).pinned, ref.digest
    image_ref.require_version_tag(ref, option, p.get("moving_tags") or image_ref.DEFAULT_MOVING_TAGS)
    local = engine.inspect_image(ref.tagged) if engine is not None else None
    if local:
        digests = [d.split("@", 1)[1] for d in local.get("RepoDigests") or [] if d.startswith(ref.name + "@")]
        if digests:
            return ref._replace(tag=None).with_digest(digests[0]).pinned, digests[0]
        return local["Id"], local["Id"]
    manifest = registry_for(ref, p).get_manifest(ref.repository, cast(str, ref.tag))  # required just above
    if manifest is None:
        where = "found neither in the local engine nor" if engine is not None else "not found"
        raise DeployError("Option '%s': %s was %s in registry %s." % (option, ref.tagged, where, ref.registry),
                          option=option)
    return ref._replace(tag=None).with_digest(manifest.digest).pinned, manifest.digest
