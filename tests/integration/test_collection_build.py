"""The collection builds into an artifact that installs offline and whose docs render."""
from __future__ import annotations

import fnmatch
import glob
import os
import shutil
import subprocess
import sys
import tarfile

from conftest import ROOT

BIN = os.path.dirname(sys.executable)
# Never in the artifact: caches (ansible-lint's .ansible/ held a second copy of the collection),
# venvs, build and test output, benchmarks, the development scripts (local stack, sanity, venv)
# and the Kubernetes build patches, artifacts. "*" spans "/".
KEPT_OUT = [".ansible", ".ansible/*", "*/.ansible/*", ".pytest_cache*", "*/.pytest_cache*", "*__pycache__*", "*.pyc",
            ".venv*", ".build*", ".ci*", ".git*", "*/.git*", "benchmarks*", "tests/output*", "scripts/*",
            "tests/k8s/*", "*.patch", "*.tar.gz", "examples/ee/context*", "Makefile"]
MODULES = sorted(os.path.splitext(name)[0] for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))


def run(*cmd, env=None):
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, cwd=ROOT)


# What a working checkout accumulates (all git-ignored, so absent from a fresh clone).
LEFTOVERS = [".ansible/collections/ansible_collections/immutable/deploy/galaxy.yml", ".pytest_cache/v/cache/nodeids",
             "tests/.pytest_cache/README.md", "plugins/modules/__pycache__/image_build.cpython-311.pyc",
             "plugins/module_utils/stale.pyc", ".venv/pyvenv.cfg", ".venv-core216/pyvenv.cfg",
             ".build/collections/x", "benchmarks/results.json", "tests/output/junit.xml",
             "immutable-deploy-0.0.1.tar.gz", "examples/ee/immutable-deploy.tar.gz", "examples/ee/context/Containerfile"]


def checkout_with_leftovers(dest) -> str:
    """A copy of the work tree as git sees it (tracked and untracked, not ignored) plus LEFTOVERS."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
    for rel in [f for f in files if f and os.path.isfile(os.path.join(ROOT, f))] + [".git/HEAD"]:
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        if rel in LEFTOVERS or rel == ".git/HEAD":
            continue
        shutil.copy2(os.path.join(ROOT, rel), os.path.join(dest, rel))
    for rel in LEFTOVERS + [".git/HEAD"]:
        os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
        with open(os.path.join(dest, rel), "w", encoding="utf-8") as handle:
            handle.write("leftover\n")
    for required in ("scripts/stack.sh", "tests/k8s/cluster.sh", ".ci/run", ".gitignore"):
        assert os.path.isfile(os.path.join(dest, required)), required  # tracked: must be kept out by build_ignore
    assert glob.glob(os.path.join(dest, "tests", "k8s", "*.patch"))
    return str(dest)


def test_build_install_and_render_docs(tmp_path):
    # Only the fresh install may be visible, not the checkout the test suite runs from.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"))
    run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "dist"),
        checkout_with_leftovers(tmp_path / "src"))
    artifact = glob.glob(str(tmp_path / "dist" / "immutable-deploy-*.tar.gz"))
    assert len(artifact) == 1
    with tarfile.open(artifact[0]) as tar:
        members = tar.getnames()
    assert {"COPYING", "meta/execution-environment.yml", "requirements.txt", "meta/runtime.yml"} <= set(members)
    leaked = [m for m in members if any(fnmatch.fnmatch(m, pattern) for pattern in KEPT_OUT)]
    assert not leaked, leaked
    run(os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "-p", str(tmp_path / "installed"),
        artifact[0], env=env)
    installed = tmp_path / "installed" / "ansible_collections" / "immutable" / "deploy"
    assert (installed / "plugins" / "modules" / "image_build.py").is_file()
    assert not (installed / ".venv").exists() and not (installed / "benchmarks").exists()
    listed = run(os.path.join(BIN, "ansible-doc"), "-l", "immutable.deploy", env=env).stdout
    names = ["immutable.deploy." + module for module in MODULES]
    assert all(name in listed for name in names), listed
    docs = run(os.path.join(BIN, "ansible-doc"), *names, env=env).stdout  # one run renders them all
    assert docs.count("EXAMPLES:") == docs.count("RETURN VALUES:") == len(names)
    role_doc = run(os.path.join(BIN, "ansible-doc"), "-t", "role", "immutable.deploy.blue_green", env=env).stdout
    assert "blue_green_image" in role_doc
