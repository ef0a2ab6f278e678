"""The README's commands work as written: the quick start needs no ANSIBLE_PYTHON_INTERPRETER, the
"In your own playbooks" example is examples/playbooks/deploy_web.yml and, with the commands after it,
deploys two versions and rolls back by version; the "In a CI pipeline" commands build, hand the pinned
image on through the deploy report and deploy it. Only names, ports and paths are replaced, so that
nothing collides with the user's own quick start or another test."""
from __future__ import annotations

import os
import re
import subprocess

import docker
import pytest

from conftest import REGISTRY, ROOT, run_playbook
from images import remove_repos
from net import free_port, get


def readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        return handle.read()


def section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end > 0 else len(text)]


def blocks(text: str, lang: str) -> list:
    return re.findall(r"```%s\n(.*?)```" % lang, text, re.S)


def test_quick_start_needs_no_interpreter_setting():
    text = readme()
    assert "ANSIBLE_PYTHON_INTERPRETER" not in text and "-i localhost" not in text
    quick = section(text, "## Quick start")
    assert "export ANSIBLE_COLLECTIONS_PATH=$PWD/.build/collections PATH=$PWD/.venv/bin:$PATH" in quick


def test_own_playbook_example_is_the_tested_file():
    (example,) = blocks(section(readme(), "### In your own playbooks"), "yaml")
    with open(os.path.join(ROOT, "examples", "playbooks", "deploy_web.yml"), encoding="utf-8") as handle:
        text = handle.read()
    assert text[text.index("- name:"):] == example


@pytest.fixture
def names(tmp_path, uid):
    values = {"app": "readme-%s" % uid, "bind": "127.0.0.1:%d" % free_port(),
              "preview": "127.0.0.1:%d" % free_port(), "repo": "%s/it-readme-%s/web" % (REGISTRY, uid),
              "tmp": str(tmp_path)}
    yield values
    run_playbook([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
                   "vars": {"router_app": values["app"], "router_bind": values["bind"],
                            "router_preview_bind": values["preview"], "router_state": "absent"}}], tmp_path)
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"label": "io.immutable-deploy.app=%s" % values["app"]}):
        container.remove(force=True)
    remove_repos([values["repo"]])


def localize(script: str, names: dict) -> str:
    """The README's names made unique; the example playbook's own names given with -e right after its path,
    so that -e options written in the README still win."""
    playbook = "examples/playbooks/deploy_web.yml"
    script = script.replace(playbook, "%s -e app=%s -e bind=%s -e preview_bind=%s -e repository=%s -e context=%s/app" % (
        playbook, names["app"], names["bind"], names["preview"], names["repo"], names["tmp"]))
    for old, new in (("127.0.0.1:5000/shop/web", names["repo"]), ("shop-web", names["app"]),
                     ("127.0.0.1:18092", names["bind"]), ("127.0.0.1:18093", names["preview"]),
                     ("/tmp/app", names["tmp"] + "/app")):
        script = script.replace(old, new)
    return re.sub(r"(?<![\w/.-])reports(?=/|\s|$)", names["tmp"] + "/reports", script)


def run_script(script: str) -> str:
    # what the quick start exports, in a shell without the Makefile's ANSIBLE_PYTHON_INTERPRETER
    exports = [line for line in blocks(section(readme(), "## Quick start"), "bash")[0].splitlines()
               if line.startswith("export ")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(exports) + "\n" + script], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return proc.stdout


def test_own_playbook_then_ci_commands_as_written(names):
    text = readme()
    subprocess.run([os.path.join(ROOT, "scripts", "sample_app.sh"), names["tmp"] + "/app", "1.2.0"], check=True,
                   stdout=subprocess.DEVNULL)  # the quick start's build context
    own = localize(blocks(section(text, "### In your own playbooks"), "bash")[0], names)
    out = run_script(own)
    assert out.rstrip().endswith("1.2.0"), out[-2000:]  # curl after the rollback by version
    assert get(int(names["bind"].rsplit(":", 1)[1]))[1] == "1.2.0"

    ci = localize(blocks(section(text, "## In a CI pipeline"), "bash")[0], names)
    out = run_script(ci)
    summary = out[out.index("### "):]
    assert "success" in summary.splitlines()[0] and "| 1.2.0 `sha256:" in summary and "| 1.4.0 `sha256:" in summary
    assert os.listdir(os.path.join(names["tmp"], "reports", "junit"))
    assert get(int(names["bind"].rsplit(":", 1)[1]))[1] == "1.4.0"
