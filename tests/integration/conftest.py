"""Integration fixtures: run real ansible-playbook against the real local stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
REGISTRY = os.environ.get("IMMUTABLE_DEPLOY_REGISTRY", "127.0.0.1:5000")
AUTH_REGISTRY = os.environ.get("IMMUTABLE_DEPLOY_AUTH_REGISTRY", "127.0.0.1:5001")
AUTH = {"username": "deploy", "password": "deploy-secret"}


@dataclass
class Run:
    rc: int
    stdout: str
    rows: List[Dict[str, Any]] = field(default_factory=list)

    def task(self, name: str) -> Dict[str, Any]:
        """The last recorded result of the task with this name."""
        matches = [r for r in self.rows if r["task"] == name]
        assert matches, "task %r not run; output:\n%s" % (name, self.stdout[-3000:])
        return matches[-1]

    def result(self, name: str) -> Dict[str, Any]:
        return self.task(name)["result"]


def run_playbook(tasks: Any, tmp_path, extra_vars: Optional[Dict[str, Any]] = None,
                 check: bool = False, diff: bool = False, playbook: Optional[str] = None,
                 args: Optional[List[str]] = None, env: Optional[Dict[str, str]] = None,
                 timeout: int = 600) -> Run:
    """Run a list of tasks (or an existing playbook file) on localhost; record every result."""
    if playbook is None:
        playbook = str(tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:8]))
        with open(playbook, "w", encoding="utf-8") as handle:
            yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], handle)
    record = str(tmp_path / ("results-%s.jsonl" % uuid.uuid4().hex[:8]))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(HERE, "inventory.ini"), playbook]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd += args or []
    full_env = dict(os.environ, RECORD_RESULTS=record, ANSIBLE_CALLBACKS_ENABLED="record_results",
                    ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "callback_plugins"),
                    ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
                    ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
                    ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    full_env.update(env or {})
    proc = subprocess.run(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, check=False)
    rows = []
    if os.path.exists(record):
        with open(record, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    return Run(proc.returncode, proc.stdout, rows)


@pytest.fixture
def play(tmp_path):
    """play(tasks, **kw) -> Run; see run_playbook."""
    return lambda tasks, **kw: run_playbook(tasks, tmp_path, **kw)


@pytest.fixture
def uid() -> str:
    """A short unique id so parallel or repeated runs never share names."""
    return uuid.uuid4().hex[:8]
