"""Integration fixtures: run real ansible-playbook against the real local stack."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


# -- Kubernetes -------------------------------------------------------------------
K8S_CLUSTER = os.path.join(ROOT, "tests", "k8s", "cluster.sh")
TEST_LABEL = "immutable-deploy.io/test"


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """The user's KUBECONFIG when that cluster answers, else the harness cluster (started if needed)."""
    subprocess.run([K8S_CLUSTER, "start"], check=True, stdout=subprocess.DEVNULL, timeout=3600)
    out = subprocess.run([K8S_CLUSTER, "env"], check=True, stdout=subprocess.PIPE, text=True).stdout
    path = out.strip().split("=", 1)[1]
    os.environ["KUBECONFIG"] = path  # for modules run by ansible-playbook and for kubectl()
    return path


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """kubectl of the cluster's own version (the one on PATH may be far newer)."""
    return subprocess.run([K8S_CLUSTER, "kubectl", *args], check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


@pytest.fixture
def k8s_namespace(kubeconfig, uid):  # pylint: disable=redefined-outer-name,unused-argument
    """A fresh namespace, labelled as a test's; deleted with everything in it afterwards."""
    name = "it-%s" % uid
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "%s=1" % TEST_LABEL)
    # a new namespace gets its default ServiceAccount a moment later; pods need it
    for dummy in range(100):
        if kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0:
            break
        time.sleep(0.1)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def k8s_images(tmp_path_factory) -> Dict[str, str]:
    """Sample app 1.0.0, 2.0.0 and 'unready' (no /health: readiness never passes), pushed;
    version -> digest-pinned ref. Pods run them from the local engine (imagePullPolicy
    IfNotPresent finds a pushed image by its repo digest). Removed at session end."""
    import docker  # pylint: disable=import-outside-toplevel
    from images import remove_repos, sample_context  # pylint: disable=import-outside-toplevel
    client = docker.from_env()
    repo = "%s/it-k8s-%s/app" % (REGISTRY, uuid.uuid4().hex[:8])
    tmp = tmp_path_factory.mktemp("k8s-images")
    refs = {}
    for version in ("1.0.0", "2.0.0", "unready"):
        context = sample_context(tmp / version, version)
        if version == "unready":
            os.remove(os.path.join(context, "www", "health"))
        client.images.build(path=context, tag="%s:%s" % (repo, version), rm=True)
        client.images.push(repo, tag=version)
        digests = client.images.get("%s:%s" % (repo, version)).attrs["RepoDigests"]
        refs[version] = [d for d in digests if d.startswith(repo + "@")][0]
    refs["repo"] = repo
    yield refs
    remove_repos([repo])
