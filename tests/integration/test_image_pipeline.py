"""Build, push, info and promote against the real Docker engine and registries."""
from __future__ import annotations

import docker
import pytest

from conftest import AUTH, AUTH_REGISTRY, REGISTRY
from images import registry_digest, remove_repos, sample_context


@pytest.fixture
def repos(uid):
    names = {"build": "%s/it-%s/app" % (REGISTRY, uid), "prod": "%s/it-%s/prod" % (REGISTRY, uid),
             "remote": "%s/it-%s/app" % (AUTH_REGISTRY, uid)}
    yield names
    remove_repos(names.values())


def build_task(name, context, version="1.0.0", **extra):
    args = {"name": name, "version": version, "path": context, "push": True}
    args.update(extra)
    return {"name": "build", "immutable.deploy.image_build": args, "register": "out"}


def rhythm(play, tasks):
    """check, apply, idempotent check, idempotent apply: the four results in order."""
    return [play(tasks, check=check, diff=True) for check in (True, False, True, False)]


def test_build_push_info_promote(play, repos, tmp_path):
    context = sample_context(tmp_path / "ctx", "1.0.0")
    runs = rhythm(play, [build_task(repos["build"], context, revision="abc123")])
    first, applied, again_check, again = [r.result("build") for r in runs]
    assert all(r.rc == 0 for r in runs)
    assert first["changed"] and first["built"] and first["pushed"] and first["image"]["digest"] is None
    assert applied["changed"] and applied["image"]["digest"].startswith("sha256:")
    assert not again_check["changed"] and not again["changed"] and not again["built"]
    digest = applied["image"]["digest"]
    assert again["image"]["digest"] == digest == registry_digest(repos["build"], "1.0.0")
    assert applied["image"]["ref"] == "%s@%s" % (repos["build"], digest)
    labels = docker.from_env().images.get(repos["build"] + ":1.0.0").labels
    assert labels["io.immutable-deploy.fingerprint"] == applied["fingerprint"]
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    assert labels["org.opencontainers.image.revision"] == "abc123"
    assert "org.opencontainers.image.created" in labels

    lookup = {"ref": repos["build"] + ":1.0.0", "source": "registry"}
    info = play([{"name": "info", "immutable.deploy.image_info": lookup}]).result("info")
    assert info["exists"] and info["image"]["digest"] == digest and not info["moving"]
    assert info["image"]["fingerprint"] == applied["fingerprint"]
    assert info["image"]["ref"] == applied["image"]["ref"]

    promote = {"name": "promote", "immutable.deploy.image_promote": {
        "source": applied["image"]["ref"], "target": repos["prod"] + ":1.0.0"}}
    runs = rhythm(play, [promote])
    results = [r.result("promote") for r in runs]
    assert [r["changed"] for r in results] == [True, True, False, False]
    assert results[0]["diff"]["before"] == {repos["prod"] + ":1.0.0": None}
    assert registry_digest(repos["prod"], "1.0.0") == digest

    cross = {"name": "cross", "immutable.deploy.image_promote": {
        "source": repos["prod"] + ":1.0.0", "target": repos["remote"] + ":1.0.0",
        "target_username": AUTH["username"], "target_password": AUTH["password"]}}
    runs = rhythm(play, [cross])
    assert [r.result("cross")["changed"] for r in runs] == [True, True, False, False]
    assert registry_digest(repos["remote"], "1.0.0") == digest
    assert AUTH["password"] not in "".join(r.stdout for r in runs)


def test_rebuild_after_local_prune_is_recognised(play, repos, tmp_path):
    context = sample_context(tmp_path / "ctx", "2.0.0")
    first = play([build_task(repos["build"], context, "2.0.0")]).result("build")
    docker.from_env().images.remove(repos["build"] + ":2.0.0", force=True)
    again = play([build_task(repos["build"], context, "2.0.0")]).result("build")
    assert not again["changed"] and not again["built"]
    assert again["image"]["digest"] == first["image"]["digest"]


def test_same_version_other_content_is_refused(play, repos, tmp_path):
    context = sample_context(tmp_path / "ctx", "3.0.0")
    assert play([build_task(repos["build"], context, "3.0.0")]).rc == 0
    digest = registry_digest(repos["build"], "3.0.0")
    image_id = docker.from_env().images.get(repos["build"] + ":3.0.0").id
    (tmp_path / "ctx" / "www" / "index.html").write_text("other content")
    run = play([build_task(repos["build"], context, "3.0.0")])
    assert run.rc != 0
    msg = run.result("build")["msg"]
    assert "Version '3.0.0'" in msg and "already exists" in msg and "bump 'version'" in msg
    assert docker.from_env().images.get(repos["build"] + ":3.0.0").id == image_id
    assert registry_digest(repos["build"], "3.0.0") == digest
    # The registry's copy is checked too, after the local image is gone.
    docker.from_env().images.remove(repos["build"] + ":3.0.0", force=True)
    run = play([build_task(repos["build"], context, "3.0.0")])
    assert run.rc != 0 and "already exists in the registry" in run.result("build")["msg"]
    assert not docker.from_env().images.list(name=repos["build"])


@pytest.mark.parametrize("case,args,fragment", [
    ("moving tag", {"version": "latest"}, "'version': tag 'latest'"),
    ("moving glob", {"version": "feature-x", "moving_tags": ["feature-*"]}, "is a moving tag"),
    ("missing context", {"path": "/nonexistent/ctx"}, "Option 'path': build context '/nonexistent/ctx' does not exist"),
    ("missing dockerfile", {"dockerfile": "Nope.Dockerfile"}, "Option 'dockerfile': 'Nope.Dockerfile' not found"),
    ("registry unreachable", {"name": "127.0.0.1:5999/x/app"}, "Registry 127.0.0.1:5999 is unreachable"),
    ("wrong credentials", {"registry": "auth", "registry_username": "deploy",
                           "registry_password": "not-the-password"}, "HTTP 401"),
    ("no credentials", {"registry": "auth"}, "authentication required"),
])
def test_bad_build_input_fails_clearly_and_changes_nothing(play, repos, tmp_path, case, args, fragment):
    context = sample_context(tmp_path / "ctx", "1.0.0")
    args = dict(args)
    name = repos["remote"] if args.pop("registry", None) == "auth" else args.pop("name", repos["build"])
    run = play([build_task(name, args.pop("path", context), args.pop("version", "1.0.0"), **args)])
    assert run.rc != 0, case
    result = run.result("build")
    assert fragment in result["msg"], (case, result["msg"])
    assert not result["changed"]
    assert not docker.from_env().images.list(name=name)
    if "not-the-password" in str(args):
        assert "not-the-password" not in run.stdout


def test_failing_build_step_reports_log_tail(play, repos, tmp_path):
    context = sample_context(tmp_path / "ctx", "1.0.0")
    with open(tmp_path / "ctx" / "Dockerfile", "a", encoding="utf-8") as handle:
        handle.write('RUN ["/bin/busybox", "sh", "-c", "echo step-about-to-fail; exit 3"]\n')
    run = play([build_task(repos["build"], context)])
    result = run.result("build")
    assert run.rc != 0 and "Build of %s:1.0.0 failed" % repos["build"] in result["msg"]
    assert "returned a non-zero code: 3" in result["msg"]
    assert any("step-about-to-fail" in line for line in result["log_tail"])
    assert not docker.from_env().images.list(name=repos["build"])


@pytest.mark.parametrize("case,source,target,fragment", [
    ("missing digest", "{build}@sha256:" + "0" * 64, "{prod}:1.0.0", "does not exist in registry"),
    ("moving target", "{build}:1.0.0", "{prod}:latest", "'target': tag 'latest'"),
    ("no version", "{build}", "{prod}:1.0.0", "names no version or digest"),
    ("re-point", "{build}:1.0.0", "{prod}:9.9.9", "already points at"),
])
def test_bad_promotion_fails_clearly_and_changes_nothing(play, repos, tmp_path, case, source, target, fragment):
    built = play([build_task(repos["build"], sample_context(tmp_path / "ctx", "1.0.0"))]).result("build")
    other = play([build_task(repos["prod"], sample_context(tmp_path / "ctx2", "9.9.9"), "9.9.9")]).result("build")
    run = play([{"name": "promote", "immutable.deploy.image_promote": {
        "source": source.format(**repos), "target": target.format(**repos)}}])
    assert run.rc != 0, case
    assert fragment in run.result("promote")["msg"], run.result("promote")["msg"]
    assert registry_digest(repos["prod"], "1.0.0") is None
    assert registry_digest(repos["prod"], "9.9.9") == other["image"]["digest"] != built["image"]["digest"]
