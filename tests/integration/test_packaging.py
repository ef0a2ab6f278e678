"""Packaging: action groups, filter docs, galaxy metadata, runtime requirements and the example EE."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Dict, List

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REGISTRY, ROOT
from images import remove_repos, sample_context

BIN = os.path.dirname(sys.executable)
COLLECTION_ENV = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
                      ANSIBLE_NOCOLOR="1")
# What each action group shares: every module of the group must accept all of these options.
SHARED = {
    "docker": {"docker_host", "docker_timeout"},
    "registry": {"registry_scheme", "validate_certs", "moving_tags"},
    "k8s": {"kubeconfig", "context", "namespace", "request_timeout"},
    "lock": {"lock"},
}
RUNTIME = {"docker", "kubernetes", "jmespath"}


def run(*cmd: str, env: Dict[str, str] | None = None, cwd: str = ROOT) -> str:
    proc = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env or COLLECTION_ENV,
                          cwd=cwd, check=False, timeout=300)
    assert proc.returncode == 0, "%s failed:\n%s" % (" ".join(cmd), proc.stdout[-3000:])
    return proc.stdout


def load_yaml(*parts: str):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def action_groups() -> Dict[str, List[str]]:
    return load_yaml("meta", "runtime.yml")["action_groups"]


def runtime_requirements() -> List[Requirement]:
    meta = load_yaml("meta", "execution-environment.yml")
    with open(os.path.join(ROOT, meta["dependencies"]["python"]), encoding="utf-8") as handle:
        return [Requirement(line.split("#")[0].strip()) for line in handle if line.split("#")[0].strip()]


# -- action groups ------------------------------------------------------------------

def test_every_module_of_a_group_accepts_the_shared_options_and_says_so():
    modules = sorted(os.path.splitext(name)[0] for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
                     if name.endswith(".py"))
    docs = json.loads(run(os.path.join(BIN, "ansible-doc"), "--json", *["immutable.deploy." + m for m in modules]))
    groups = action_groups()
    assert set(groups) == set(SHARED)
    for module in modules:
        doc = docs["immutable.deploy." + module]["doc"]
        member_of = sorted(g for g, members in groups.items() if module in members)
        for group in member_of:
            missing = SHARED[group] - set(doc["options"])
            assert not missing, "%s is in group %s but has no option %s" % (module, group, missing)
        attribute = doc["attributes"]["action_group"]
        assert attribute["membership"] == ["immutable.deploy." + g for g in member_of], module
        assert attribute["support"] == ("full" if member_of else "none"), module


def test_group_module_defaults_reach_the_modules(play, uid, tmp_path):
    """docker, registry and lock group defaults: image_build, image_info, docker_release_info,
    image_promote and nginx_upstream take them (no "Unsupported parameters"), and use them."""
    repo = "%s/it-pkg-%s/app" % (REGISTRY, uid)
    context = sample_context(tmp_path / "ctx", "1.0.0")
    (tmp_path / "nginx.conf").write_text("events {}\n", encoding="utf-8")
    docker_host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    lock_dir = tmp_path / "locks"

    def defaults(docker: str) -> Dict[str, Dict[str, object]]:
        return {
            "group/immutable.deploy.docker": {"docker_host": docker, "docker_timeout": 90},
            "group/immutable.deploy.registry": {"registry_scheme": "http", "validate_certs": False,
                                                "moving_tags": ["latest", "qa-*"]},
            "group/immutable.deploy.lock": {"lock": {"name": "pkg-" + uid, "owner": "packaging-test",
                                                     "directory": str(lock_dir)}},
        }

    upstream = {"name": "upstream", "immutable.deploy.nginx_upstream": {
        "name": "app", "path": str(tmp_path / "upstream.conf"), "nginx_conf": str(tmp_path / "nginx.conf"),
        "servers": [{"address": "127.0.0.1", "port": 8080}], "validate": False, "reload": False}}
    tasks = [
        {"name": "build", "immutable.deploy.image_build": {"name": repo, "version": "1.0.0", "path": context,
                                                           "push": True}},
        {"name": "info", "immutable.deploy.image_info": {"ref": repo + ":1.0.0", "require_exists": True}},
        {"name": "releases", "immutable.deploy.docker_release_info": {"app": "pkg-" + uid}},
        {"name": "promote", "immutable.deploy.image_promote": {"source": repo + ":1.0.0",
                                                               "target": repo + "-prod:1.0.0"}},
        {"name": "promote to a moving tag", "ignore_errors": True,
         "immutable.deploy.image_promote": {"source": repo + ":1.0.0", "target": repo + "-prod:qa-1"}},
        upstream,
    ]
    try:
        ok = play([{"name": "grouped", "module_defaults": defaults(docker_host), "block": tasks}])
        assert ok.rc == 0, ok.stdout[-3000:]
        digest = ok.result("build")["image"]["digest"]
        assert ok.result("info")["image"]["digest"] == digest and ok.result("info")["registry"]
        assert ok.result("releases")["releases"] == []
        assert ok.result("promote")["changed"] and ok.result("promote")["digest"] == digest
        # the group's moving_tags (qa-*) reached image_promote: the tag is refused
        refused = ok.task("promote to a moving tag")
        assert refused["status"] == "failed" and "qa-1" in refused["result"]["msg"], refused
        assert ok.result("upstream")["changed"] and not os.listdir(lock_dir)  # lock taken and released

        # the same defaults with a dead engine and a lock held by someone else: both fail on them
        (lock_dir / ("pkg-%s.lock" % uid)).write_text(
            json.dumps({"owner": "other-operator", "purpose": "a deploy", "since": 0}), encoding="utf-8")
        dead = "unix://%s" % (tmp_path / "no-engine.sock")
        bad = play([{"name": "grouped", "module_defaults": defaults(dead), "block": [
            {"name": "info", "ignore_errors": True,
             "immutable.deploy.image_info": {"ref": repo + ":1.0.0", "source": "local"}},
            dict(upstream, ignore_errors=True)]}])
        assert "no-engine.sock" in bad.task("info")["result"]["msg"], bad.stdout[-3000:]
        assert "locked by other-operator" in bad.task("upstream")["result"]["msg"], bad.stdout[-3000:]
        assert "Unsupported parameters" not in ok.stdout + bad.stdout
    finally:
        remove_repos([repo, repo + "-prod"])


def test_k8s_group_module_defaults_reach_the_modules(play, kubeconfig, k8s_namespace):
    defaults = {"group/immutable.deploy.k8s": {"kubeconfig": kubeconfig, "namespace": k8s_namespace,
                                               "request_timeout": 20}}
    run_ok = play([{"name": "grouped", "module_defaults": defaults, "block": [
        {"name": "releases", "immutable.deploy.k8s_release_info": {"app": "web"}},
        {"name": "elsewhere", "ignore_errors": True,
         "immutable.deploy.k8s_release_info": {"app": "web", "kubeconfig": "/nonexistent/kubeconfig"}}]}])
    assert run_ok.rc == 0, run_ok.stdout[-3000:]
    assert run_ok.result("releases")["releases"] == []
    # a task's own option wins over the group default
    assert "/nonexistent/kubeconfig" in run_ok.task("elsewhere")["result"]["msg"]


# -- filters ----------------------------------------------------------------------------

def test_every_filter_is_documented():
    from ansible_collections.immutable.deploy.plugins.filter.releases import FilterModule  # pylint: disable=import-outside-toplevel
    names = sorted(FilterModule().filters())
    # one doc file per filter, and no doc file left for a filter that is gone
    doc_files = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "plugins", "filter")) if f.endswith(".yml"))
    assert names and names == doc_files
    docs = json.loads(run(os.path.join(BIN, "ansible-doc"), "-t", "filter", "--json",
                          *["immutable.deploy." + n for n in names]))
    for name in names:
        entry = docs.get("immutable.deploy." + name)
        assert entry and entry["doc"], "no documentation for filter %s" % name
        assert entry["doc"]["name"] == name and entry["doc"]["short_description"] and entry["doc"]["description"]
        assert "_input" in entry["doc"]["options"] and entry["return"]["_value"]["description"], name
        assert entry["examples"] and "immutable.deploy." + name in entry["examples"], name
    listed = run(os.path.join(BIN, "ansible-doc"), "-t", "filter", "-l", "immutable.deploy")
    rendered = run(os.path.join(BIN, "ansible-doc"), "-t", "filter", *["immutable.deploy." + n for n in names])
    assert "UNDOCUMENTED" not in listed.upper() and rendered.count("RETURN VALUES") == len(names), listed


# -- metadata and requirements -----------------------------------------------------

def test_galaxy_metadata():
    galaxy = load_yaml("galaxy.yml")
    assert "host replacement" not in galaxy["description"].lower()
    base = "https://github.com/immutable-deploy/immutable.deploy"
    assert galaxy["repository"] == base and galaxy["issues"] == base + "/issues"
    assert galaxy["documentation"].startswith(base + "/")
    assert os.path.isfile(os.path.join(ROOT, galaxy["documentation"].split("/blob/main/", 1)[1]))
    # ansible-lint's galaxy rule (tags, tags-format, tags-length, tags-count)
    tags = galaxy["tags"]
    assert all(re.match(r"^(?!.*__)[a-z][0-9a-z_]*$", t) and len(t) <= 64 for t in tags) and len(tags) <= 20
    assert {"application", "cloud", "database", "eda", "infrastructure", "linux", "monitoring", "networking",
            "security", "storage", "tools", "windows"} & set(tags)
    assert galaxy["license"] == ["GPL-3.0-or-later"]
    with open(os.path.join(ROOT, "COPYING"), encoding="utf-8") as handle:
        assert "GNU GENERAL PUBLIC LICENSE" in handle.read(200)
    assert load_yaml("meta", "runtime.yml")["requires_ansible"] == ">=2.16.0"


def test_runtime_requirements_are_lower_bounds_and_the_test_pins_satisfy_them():
    reqs = runtime_requirements()
    assert {r.name for r in reqs} == RUNTIME
    for req in reqs:
        specs = list(req.specifier)
        assert [s.operator for s in specs] == [">="], "%s: lower bound only" % req
    assert not os.path.exists(os.path.join(ROOT, "bindep.txt"))  # no system package needed
    with open(os.path.join(ROOT, "tests", "requirements.txt"), encoding="utf-8") as handle:
        pins = {Requirement(line).name: Requirement(line) for line in
                (raw.split("#")[0].strip() for raw in handle) if line}
    for req in reqs:
        pinned = next(iter(pins[req.name].specifier)).version
        assert req.specifier.contains(pinned), "tests/requirements.txt pins %s %s outside %s" % (req.name, pinned, req)


# -- the example execution environment -----------------------------------------------

def test_example_ee_builds_a_valid_context_with_exactly_the_runtime_dependencies(tmp_path):
    builder = os.path.join(BIN, "ansible-builder")
    assert os.path.exists(builder), "ansible-builder missing: scripts/venv.sh installs tests/requirements.txt"
    run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "dist"), ROOT)
    definition = tmp_path / "ee"
    shutil.copytree(os.path.join(ROOT, "examples", "ee"), definition,
                    ignore=shutil.ignore_patterns("context", "*.tar.gz"))
    shutil.copy(glob.glob(str(tmp_path / "dist" / "immutable-deploy-*.tar.gz"))[0],
                definition / "immutable-deploy.tar.gz")
    run(builder, "create", "-f", "execution-environment.yml", "--output-filename", "Containerfile", cwd=str(definition))
    context = definition / "context"
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    # every COPY from the context names something the context holds
    sources = re.findall(r"^COPY (?!--from)(\S+) ", containerfile, flags=re.M)
    assert sources and all((context / s).exists() for s in sources), sources
    assert "ansible-galaxy collection install" in containerfile and "WORKDIR /build" in containerfile
    assert (context / "_build" / "collections" / "immutable-deploy.tar.gz").is_file()
    # the galaxy stage, replayed: in /build (the context's _build), offline, from requirements.yml
    collections = tmp_path / "collections"
    run(os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-r", "requirements.yml",
        "-p", str(collections), cwd=str(context / "_build"), env=dict(COLLECTION_ENV, ANSIBLE_COLLECTIONS_PATH=str(collections)))
    assert (collections / "ansible_collections" / "immutable" / "deploy" / "meta" / "execution-environment.yml").is_file()
    # the builder stage's introspection: exactly the runtime requirements, no system package
    found = yaml.safe_load(run(builder, "introspect", "--sanitize", str(collections)))
    python = [Requirement(line.split("#")[0].strip()) for line in found["python"]]
    assert sorted(map(str, python)) == sorted(map(str, runtime_requirements()))
    assert all(line.endswith("# from collection immutable.deploy") for line in found["python"])
    assert found["system"] == []


@pytest.mark.parametrize("path", ["examples/ee/execution-environment.yml", "meta/execution-environment.yml"])
def test_ee_files_are_ansible_builder_schema(path):
    from ansible_builder.ee_schema import validate_schema  # pylint: disable=import-outside-toplevel
    validate_schema(load_yaml(*path.split("/")))
