"""The collection builds into an artifact that installs offline and whose docs render."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

from conftest import ROOT

BIN = os.path.dirname(sys.executable)
MODULES = sorted(os.path.splitext(name)[0] for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
                 if name.endswith(".py") and not name.startswith("_"))


def run(*cmd, env=None):
    return subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env=env, cwd=ROOT)


def test_build_install_and_render_docs(tmp_path):
    # Only the fresh install may be visible, not the checkout the test suite runs from.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"))
    run(os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "dist"), ROOT)
    artifact = glob.glob(str(tmp_path / "dist" / "immutable-deploy-*.tar.gz"))
    assert len(artifact) == 1
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
