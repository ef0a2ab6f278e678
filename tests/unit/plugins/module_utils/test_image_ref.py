from __future__ import annotations

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.images import reference as image_ref
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,registry,repo,tag,digest,name", [
    ("busybox", "docker.io", "library/busybox", None, None, "busybox"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox"),
    ("team/app:1", "docker.io", "team/app", "1", None, "team/app"),
    ("127.0.0.1:5000/shop/web:1.4.2", "127.0.0.1:5000", "shop/web", "1.4.2", None, "127.0.0.1:5000/shop/web"),
    ("localhost/app@" + DIGEST, "localhost", "app", None, DIGEST, "localhost/app"),
    ("reg.example.com/a/b:2@" + DIGEST, "reg.example.com", "a/b", "2", DIGEST, "reg.example.com/a/b"),
])
def test_parse(text, registry, repo, tag, digest, name):
    ref = image_ref.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest, ref.name) == (registry, repo, tag, digest, name)
    assert str(ref) == text if ref.explicit_registry or "/" in text else True


@pytest.mark.parametrize("text,fragment", [
    ("", "must be an image reference"),
    ("app@sha256:abc", "is not 'sha256:' followed by 64 hex"),
    ("app:-bad", "is not a valid tag"),
    ("Upper/App:1", "repository 'Upper/App'"),
])
def test_parse_errors_name_option_and_value(text, fragment):
    with pytest.raises(DeployError) as err:
        image_ref.parse(text, option="source")
    assert fragment in err.value.msg
    assert "'source'" in err.value.msg
    assert err.value.details["option"] == "source"


def test_pinned_drops_tag():
    ref = image_ref.parse("127.0.0.1:5000/shop/web:1").with_digest(DIGEST)
    assert ref.pinned == "127.0.0.1:5000/shop/web@" + DIGEST


@pytest.mark.parametrize("tag,moving", [("latest", True), ("stable", True), ("1.2.3", False),
                                        ("feature-x", True), ("v2", False)])
def test_moving_tags_with_patterns(tag, moving):
    assert image_ref.is_moving(tag, list(image_ref.DEFAULT_MOVING_TAGS) + ["feature-*"]) is moving


def test_require_version_tag():
    with pytest.raises(DeployError, match="moving tag"):
        image_ref.require_version_tag(image_ref.parse("app:latest"), "version")
    with pytest.raises(DeployError, match="has no version tag"):
        image_ref.require_version_tag(image_ref.parse("app"), "version")
    image_ref.require_version_tag(image_ref.parse("app:1.0.0"), "version")
