"""Jobs run the way AWX runs them: ansible-runner, a fresh private data directory per job (project/ checked
out from examples/awx/project, the wrappers that import the collection's playbooks; inventory/hosts like
AWX's Demo Inventory; env/extravars holding the job template's variables, the survey answers and the
set_stats artifacts of the workflow's earlier nodes), nothing interactive. Assertions read the job events.

The workflow of examples/awx/README.md: build -> promote -> canary (manual gate) -> approval ->
canary_promote, the pinned digest travelling from node to node with set_stats only; blue_green first puts
a stable release in place (and a no-op re-deploy reports nothing changed), rollback goes back; failed jobs
say why in their events.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, Dict, List

import ansible_runner
import docker
import pytest
import yaml

from conftest import BIN, REGISTRY, ROOT
from images import registry_digest, remove_repos, sample_context
from net import free_port, get

PROJECT = os.path.join(ROOT, "examples", "awx", "project")
# AWX's Demo Inventory: modules run with the Python that runs ansible-playbook (the EE's), so nothing
# depends on ANSIBLE_PYTHON_INTERPRETER (the jobs below set it to discovery, which would find a python3
# without the docker SDK here).
INVENTORY = 'localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n'


@dataclass
class Job:
    status: str
    rc: int
    events: List[Dict[str, Any]] = field(default_factory=list)
    private_data_dir: str = ""

    @property
    def stats(self) -> Dict[str, Any]:
        (stats,) = [e["event_data"] for e in self.events if e["event"] == "playbook_on_stats"]
        return stats

    @property
    def artifacts(self) -> Dict[str, Any]:
        """What set_stats handed on: AWX passes it to the workflow's next nodes as extra variables."""
        return self.stats.get("artifact_data") or {}

    def failures(self) -> List[str]:
        return [e["event_data"]["res"].get("msg", "") for e in self.events
                if e["event"] == "runner_on_failed" and not e["event_data"].get("ignore_errors")]

    def stdout(self) -> str:
        return "".join(e.get("stdout", "") + "\n" for e in self.events)


class Awx:
    """Launches job templates (a project playbook plus the template's extra variables) like AWX does."""

    def __init__(self, tmp_path, template_vars: Dict[str, Any]) -> None:
        self.tmp_path, self.template_vars, self.count = tmp_path, template_vars, 0
        self.reports = str(tmp_path / "reports")

    def launch(self, playbook: str, survey: Dict[str, Any], artifacts: Dict[str, Any] = None) -> Job:
        self.count += 1
        pdd = self.tmp_path / ("job-%d-%s" % (self.count, playbook))
        shutil.copytree(PROJECT, pdd / "project")
        os.makedirs(pdd / "inventory")
        os.makedirs(pdd / "env")
        (pdd / "inventory" / "hosts").write_text(INVENTORY, encoding="utf-8")
        # template variables < workflow artifacts < survey answers, as AWX merges them for a node
        extravars = dict(self.template_vars, **(artifacts or {}), **survey)
        (pdd / "env" / "extravars").write_text(yaml.safe_dump(extravars), encoding="utf-8")
        # the EE's ansible-playbook: this venv's (its python3 is the one ansible_playbook_python names)
        envvars = {"PATH": BIN + os.pathsep + os.environ.get("PATH", ""),
                   "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".build", "collections"),
                   "ANSIBLE_PYTHON_INTERPRETER": "auto_silent", "ANSIBLE_DEPRECATION_WARNINGS": "0",
                   "ANSIBLE_CALLBACKS_ENABLED": "immutable.deploy.deploy_report",
                   "IMMUTABLE_DEPLOY_REPORT_DIR": self.reports,
                   "IMMUTABLE_DEPLOY_REPORT_NAME": "job-%d-%s" % (self.count, playbook)}
        (pdd / "env" / "envvars").write_text(yaml.safe_dump(envvars), encoding="utf-8")
        (pdd / "env" / "settings").write_text(yaml.safe_dump({"suppress_ansible_output": True}), encoding="utf-8")
        runner = ansible_runner.run(private_data_dir=str(pdd), playbook=playbook + ".yml", ident="job", quiet=True)
        return Job(runner.status, runner.rc, list(runner.events), str(pdd))

    def report(self, playbook: str) -> Dict[str, Any]:
        with open(os.path.join(self.reports, "job-%d-%s.json" % (self.count, playbook)), encoding="utf-8") as handle:
            return json.load(handle)


def served(port: int) -> set:
    return {get(port)[1] for dummy in range(8)}


@pytest.fixture
def awx(tmp_path, uid):
    app = "awx-%s" % uid
    port, preview = free_port(), free_port()
    state, locks = str(tmp_path / "router"), str(tmp_path / "locks")
    template_vars = {
        "router_bind": "127.0.0.1:%d" % port, "router_preview_bind": "127.0.0.1:%d" % preview,
        "router_state_dir": state, "router_health_interval": "500ms", "router_health_rise": 1,
        "blue_green_router_state_dir": state, "blue_green_lock_dir": locks, "blue_green_watch_seconds": 1,
        "blue_green_healthcheck": {"type": "http", "path": "/health", "interval": 1},
        "canary_router_state_dir": state, "canary_lock_dir": locks,
        "canary_healthcheck": {"type": "http", "path": "/health", "interval": 1},
        "rollback_router_state_dir": state, "rollback_lock_dir": locks,
    }
    repo = "%s/it-awx-%s/app" % (REGISTRY, uid)
    names = {"app": app, "port": port, "repo": repo, "prod": repo + "-prod", "router": template_vars}
    yield Awx(tmp_path, template_vars), names
    from conftest import run_playbook  # pylint: disable=import-outside-toplevel
    run_playbook([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
                   "vars": {"router_app": app, "router_bind": template_vars["router_bind"],
                            "router_preview_bind": template_vars["router_preview_bind"],
                            "router_state_dir": state, "router_state": "absent"}}], tmp_path)
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"label": "io.immutable-deploy.app=%s" % app}):
        container.remove(force=True)
    remove_repos([repo, repo + "-prod"])
    shutil.rmtree(locks, ignore_errors=True)


def build_and_promote(awx_, names, tmp_path, version, prior=None):
    """The workflow's first two nodes; returns the artifacts the next node receives. `prior`: artifacts of
    earlier nodes, which must never stand in for what this build and promotion publish."""
    built = awx_.launch("build", {"image_name": names["repo"], "image_version": version,
                                  "image_path": sample_context(tmp_path / ("ctx-" + version), version)},
                        artifacts=prior)
    assert built.status == "successful", built.stdout()[-3000:]
    digest = registry_digest(names["repo"], version)
    assert built.artifacts["built_image"]["ref"] == "%s@%s" % (names["repo"], digest)
    assert built.artifacts["deploy_image"] == "%s:%s@%s" % (names["repo"], version, digest)
    assert awx_.report("build")["handover"] == built.artifacts  # what a CI job reads instead
    # a survey's textarea: one target per line
    promoted = awx_.launch("promote", {"promote_targets": "%s:%s\n" % (names["prod"], version)},
                           artifacts=dict(prior or {}, **built.artifacts))
    assert promoted.status == "successful", promoted.stdout()[-3000:]
    assert registry_digest(names["prod"], version) == digest  # the same digest, never a rebuild
    assert promoted.artifacts["deploy_image"] == "%s:%s@%s" % (names["prod"], version, digest)
    assert promoted.artifacts["promoted"] == ["%s@%s" % (names["prod"], digest)]
    return {**(prior or {}), **built.artifacts, **promoted.artifacts}


def test_workflow_build_promote_canary_gate_promote_then_rollback(awx, tmp_path):
    awx_, names = awx
    app, port = names["app"], names["port"]

    # stable: build -> promote -> blue_green
    artifacts = build_and_promote(awx_, names, tmp_path, "1.0.0")
    first = awx_.launch("blue_green", {"blue_green_app": app}, artifacts=artifacts)
    assert first.status == "successful", first.stdout()[-4000:]
    assert first.artifacts["blue_green_outcome"]["live"] == "1.0.0" and served(port) == {"1.0.0"}
    again = awx_.launch("blue_green", {"blue_green_app": app}, artifacts=artifacts)
    assert again.status == "successful", again.stdout()[-4000:]
    assert again.stats["changed"] == {}, again.stats  # a no-op job is not "changed" in AWX
    assert again.artifacts["blue_green_outcome"]["changed"] is False

    # the workflow: build -> promote -> canary (stops at its manual gate) -> approval -> canary_promote
    artifacts = build_and_promote(awx_, names, tmp_path, "2.0.0", prior=dict(artifacts, **again.artifacts))
    steps = [{"weight": 50, "pause": "manual", "analysis": False}, {"weight": 100, "analysis": False}]
    awx_.template_vars["canary_steps"] = steps  # lists go into the job template's extra variables
    paused = awx_.launch("canary", {"canary_app": app}, artifacts=artifacts)
    assert paused.status == "successful", paused.stdout()[-4000:]
    outcome = paused.artifacts["canary_outcome"]
    assert (outcome["outcome"], outcome["canary"], outcome["stable"], outcome["weight"]) == ("paused", "2.0.0", "1.0.0", 50)
    assert served(port) <= {"1.0.0", "2.0.0"}
    report = awx_.report("canary")
    assert report["result"] == "paused" and report["deploys"][0]["to"]["digest"] == artifacts["built_image"]["digest"]
    # approval granted: the next node gets every artifact so far
    artifacts.update(paused.artifacts)
    promoted = awx_.launch("canary_promote", {"canary_app": app}, artifacts=artifacts)
    assert promoted.status == "successful", promoted.stdout()[-4000:]
    assert promoted.artifacts["canary_outcome"]["outcome"] == "promoted" and served(port) == {"2.0.0"}

    back = awx_.launch("rollback", {"rollback_app": app})
    assert back.status == "successful", back.stdout()[-4000:]
    assert back.artifacts["rollback_outcome"] == {"app": app, "live": "1.0.0", "previous": "2.0.0", "changed": True}
    assert served(port) == {"1.0.0"}

    # failed jobs carry the reason a human needs in their events
    missing = awx_.launch("blue_green", {})
    assert missing.status == "failed" and missing.rc != 0
    (reason,) = missing.failures()
    assert reason.startswith("Missing required variables: blue_green_app (the app to deploy); blue_green_image ("), reason
    bad_name = awx_.launch("blue_green", {"blue_green_app": "Shop_Web"}, artifacts=artifacts)
    assert bad_name.failures() == ["blue_green_app=Shop_Web: an app name is 2 to 40 lowercase letters, digits and "
                                   "'-', starting with a letter and not ending with '-'."]
    unknown = awx_.launch("blue_green", {"blue_green_app": app, "blue_green_image": names["prod"] + ":3.3.3"})
    assert unknown.status == "failed"
    final = unknown.failures()[-1]
    assert re.search(r"Blue-green of %s to 3\.3\.3 (refused before any change|aborted before the switch)" % app, final)
    assert "1.0.0 still serves all traffic" in final and "3.3.3" in final, final
    assert served(port) == {"1.0.0"}
