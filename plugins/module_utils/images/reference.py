# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references and the immutability rules that apply to them."""
from __future__ import annotations

import fnmatch
import re
from typing import Iterable, NamedTuple, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

DEFAULT_REGISTRY = "docker.io"
# Tags that conventionally move. A version tag must never be one of these.
DEFAULT_MOVING_TAGS = (
    "latest", "stable", "edge", "nightly", "main", "master", "dev", "develop",
    "staging", "production", "prod", "canary", "current", "head",
)
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


class ImageRef(NamedTuple):
    registry: str          # host[:port]; docker.io when the reference names none
    repository: str        # path inside the registry, e.g. library/busybox
    tag: Optional[str]
    digest: Optional[str]
    explicit_registry: bool

    @property
    def name(self) -> str:
        """The repository as Docker spells it (registry prefix only when explicit)."""
        if self.explicit_registry:
            return "%s/%s" % (self.registry, self.repository)
        if self.repository.startswith("library/"):
            return self.repository[len("library/"):]
        return self.repository

    @property
    def tagged(self) -> str:
        return "%s:%s" % (self.name, self.tag)

    @property
    def pinned(self) -> str:
        return "%s@%s" % (self.name, self.digest)

    def with_digest(self, digest: str) -> "ImageRef":
        return self._replace(digest=digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def parse(ref: str, option: str = "name") -> ImageRef:
    """Parse name[:tag][@digest]; errors name the option that held the value."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise DeployError("Option '%s' must be an image reference such as "
                          "'registry:5000/team/app:1.2.3', got %r." % (option, ref), option=option)
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise DeployError("Option '%s': digest %r in %r is not 'sha256:' followed by 64 hex "
                              "digits." % (option, digest, ref), option=option)
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise DeployError("Option '%s': tag %r in %r is not a valid tag (letters, digits, "
                              "'_', '.', '-', at most 128, not starting with '.' or '-')."
                              % (option, tag, ref), option=option)
    parts = rest.split("/", 1)
    explicit = len(parts) == 2 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
    registry = parts[0] if explicit else DEFAULT_REGISTRY
    repository = parts[1] if explicit else rest
    if not explicit and "/" not in repository:
        repository = "library/" + repository
    if not _REPO_RE.match(repository):
        raise DeployError("Option '%s': repository %r in %r is not valid (lowercase letters, "
                          "digits and separators '.', '_', '-', '/')." % (option, repository, ref),
                          option=option)
    return ImageRef(registry, repository, tag, digest, explicit)


def is_digest(value: str) -> bool:
    """'sha256:' followed by 64 lowercase hex digits."""
    return bool(_DIGEST_RE.match(value))


def is_moving(tag: str, moving_tags: Iterable[str] = DEFAULT_MOVING_TAGS) -> bool:
    """A tag is moving when it matches one of the deny-list names or glob patterns."""
    return any(fnmatch.fnmatchcase(tag, pattern) for pattern in moving_tags)


def require_version_tag(ref: ImageRef, option: str,
                        moving_tags: Iterable[str] = DEFAULT_MOVING_TAGS) -> None:
    """Refuse a missing or moving tag: versions are immutable names for one content."""
    moving_tags = list(moving_tags)
    if not ref.tag:
        raise DeployError("Option '%s': %r has no version tag; an immutable version such as "
                          "'1.4.2' is required." % (option, str(ref)), option=option)
    if is_moving(ref.tag, moving_tags):
        raise DeployError("Option '%s': tag %r of %r is a moving tag (deny list: %s); it is "
                          "never built, promoted or deployed. Use an immutable version such as "
                          "'1.4.2' or a digest." % (option, ref.tag, ref.name, ", ".join(moving_tags)),
                          option=option, moving_tags=moving_tags)
