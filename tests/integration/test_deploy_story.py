"""One real deploy story through the shipped playbooks, as a user or an AWX job runs them:
playbooks/build.yml builds and pins two versions, playbooks/blue_green.yml deploys them one
after the other behind HAProxy, playbooks/rollback.yml goes back.

It runs in `make integration` (newest supported ansible-core) and in scripts/test_oldest.sh
(oldest supported ansible-core, runtime dependencies at their lower bounds): conftest takes
ansible-playbook and the module interpreter from the venv whose pytest runs it.
"""
from __future__ import annotations

import os
import shutil
from typing import Any, Dict

import docker

from conftest import REGISTRY, ROOT, Run
from images import remove_repos, sample_context
from net import free_port, get


def playbook(name: str) -> str:
    return os.path.join(ROOT, "playbooks", name)


def stats(run: Run, task: str) -> Dict[str, Any]:
    """The data a playbook hands to later workflow nodes with set_stats."""
    return run.result(task)["ansible_stats"]["data"]


def served(port: int) -> set:
    return {get(port)[1] for dummy in range(6)}


def test_build_blue_green_and_roll_back_with_the_playbooks(play, uid, tmp_path):
    app = "story-%s" % uid
    repo = "%s/it-story-%s/app" % (REGISTRY, uid)
    port, preview = free_port(), free_port()
    state, locks = str(tmp_path / "router"), str(tmp_path / "locks")
    router = {"router_bind": "127.0.0.1:%d" % port, "router_preview_bind": "127.0.0.1:%d" % preview,
              "router_state_dir": state, "router_health_interval": "500ms", "router_health_rise": 1,
              "router_health_path": "/health"}
    deploy_vars = dict(router, blue_green_app=app, blue_green_router_state_dir=state, blue_green_lock_dir=locks,
                       blue_green_watch_seconds=2,
                       blue_green_healthcheck={"type": "http", "path": "/health", "interval": 1})
    try:
        pinned = {}
        for version in ("1.0.0", "2.0.0"):
            built = play(None, playbook=playbook("build.yml"), extra_vars={
                "image_name": repo, "image_version": version,
                "image_path": sample_context(tmp_path / version, version)})
            assert built.rc == 0, built.stdout[-3000:]
            pinned[version] = stats(built, "Hand the pinned reference to later workflow nodes")["built_image"]
            assert pinned[version]["ref"].startswith(repo + "@sha256:"), pinned[version]

        for version in ("1.0.0", "2.0.0"):
            # name:version@digest: pinned by digest, and the release id is the version
            image = "%s:%s@%s" % (repo, version, pinned[version]["digest"])
            deployed = play(None, playbook=playbook("blue_green.yml"),
                            extra_vars=dict(deploy_vars, blue_green_image=image))
            assert deployed.rc == 0, deployed.stdout[-4000:]
            outcome = stats(deployed, "Hand the outcome to later workflow nodes")["blue_green_outcome"]
            assert outcome["changed"] is True, outcome
            assert served(port) == {version}

        back = play(None, playbook=playbook("rollback.yml"), extra_vars={
            "rollback_app": app, "router_bind": router["router_bind"], "rollback_router_state_dir": state,
            "rollback_lock_dir": locks})
        assert back.rc == 0, back.stdout[-4000:]
        outcome = stats(back, "Hand the outcome to later workflow nodes")["rollback_outcome"]
        assert outcome["live"] == "1.0.0" and outcome["previous"] == "2.0.0", outcome
        assert served(port) == {"1.0.0"}
    finally:
        play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
               "vars": dict(router, router_app=app, router_state="absent")}])
        client = docker.from_env()
        for container in client.containers.list(all=True, filters={"label": "io.immutable-deploy.app=%s" % app}):
            container.remove(force=True)
        remove_repos([repo])
        shutil.rmtree(locks, ignore_errors=True)
