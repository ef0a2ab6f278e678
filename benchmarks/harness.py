"""What every benchmark shares: paths, the Ansible runner with a task timeline, images, the router
role, load generation (tests/integration/net.py, reached only from here) and cleanup."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".build", "collections")
sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
REGISTRY = os.environ.get("IMMUTABLE_DEPLOY_REGISTRY", "127.0.0.1:5000")
BIN = os.path.dirname(sys.executable)
V1, V2 = "1.0.0", "2.0.0"

from net import FullLoad, Load, free_port, get  # noqa: E402  (tests/integration/net.py)

# Load generation is re-exported: benchmarks reach tests/integration only through this module.
__all__ = ["FullLoad", "Load", "free_port", "get"]


def log(msg: str, name: str = "bench") -> None:
    print("[%s] %s" % (name, msg), file=sys.stderr, flush=True)


CALLBACK = '''
from __future__ import annotations
import json, os, time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Append {task, action, event, t} (monotonic clock) for every task start and result."""
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "zd_timeline"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, task, event):
        with open(os.environ["ZD_TIMELINE"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"task": task.get_name(), "action": task.action, "event": event,
                                     "t": time.monotonic()}) + "\\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write(task, "start")

    def v2_runner_on_ok(self, result):
        self._write(result._task, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result._task, "failed")
'''


def link_collection() -> None:
    link = os.path.join(COLLECTIONS, "ansible_collections", "immutable", "deploy")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class Ansible:
    """ansible-playbook runs on localhost with a task timeline callback."""

    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        os.makedirs(os.path.join(tmp, "callbacks"))
        with open(os.path.join(tmp, "callbacks", "zd_timeline.py"), "w", encoding="utf-8") as handle:
            handle.write(CALLBACK)
        self.count = 0
        self.router_vars: Optional[Dict[str, Any]] = None

    def play(self, name: str, tasks: List[Dict[str, Any]]) -> Tuple[float, List[Dict[str, Any]]]:
        """Run the tasks; return (wall seconds of the whole ansible-playbook run, timeline)."""
        import yaml
        self.count += 1
        base = os.path.join(self.tmp, "%02d-%s" % (self.count, name))
        with open(base + ".yml", "w", encoding="utf-8") as handle:
            yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}], handle)
        return self._run(name, base, base + ".yml", [])

    def playbook(self, name: str, path: str, extra_vars: Dict[str, Any]) -> Tuple[float, List[Dict[str, Any]]]:
        """Run an existing playbook (as a user does, with extra vars); same return as play()."""
        self.count += 1
        base = os.path.join(self.tmp, "%02d-%s" % (self.count, name))
        return self._run(name, base, path, ["-e", json.dumps(extra_vars)])

    def _run(self, name: str, base: str, playbook: str, args: List[str]) -> Tuple[float, List[Dict[str, Any]]]:
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(self.tmp, "callbacks"), ANSIBLE_CALLBACKS_ENABLED="zd_timeline",
                   ZD_TIMELINE=base + ".jsonl", ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_DEPRECATION_WARNINGS="0")
        cmd = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", playbook, *args]
        start = time.monotonic()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError("ansible-playbook %s failed (rc %d):\n%s" % (name, proc.returncode, proc.stdout[-4000:]))
        timeline = []
        if os.path.exists(base + ".jsonl"):
            with open(base + ".jsonl", encoding="utf-8") as handle:
                timeline = [json.loads(line) for line in handle if line.strip()]
        # Bracket the tasks with the process start and end, so per-task times add up to the wall time.
        return wall, [{"task": "(ansible-playbook start-up)", "action": "", "event": "start", "t": start}] + timeline + [
            {"task": "(end)", "action": "", "event": "start", "t": start + wall}]


def short(task: str) -> str:
    """Task name without the 'role : ' prefix Ansible adds."""
    return task.split(" : ", 1)[-1]


def switch_task_start(timeline: List[Dict[str, Any]]) -> Optional[float]:
    return next((row["t"] for row in timeline if row["event"] == "start" and (
        row["action"].endswith("docker_switch")
        or short(row["task"]).startswith("Switch") and row["action"].endswith("haproxy_backend"))), None)


class WeightWatch(threading.Thread):
    """Polls the HAProxy runtime API; records (last poll with the old set, first poll with the new set, new set)."""

    def __init__(self, socket_path: str, backend: str) -> None:
        super().__init__(daemon=True)
        from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import Runtime
        self.runtime, self.backend = Runtime(socket_path, timeout=2), backend
        self.changes: List[Tuple[float, float, frozenset]] = []
        self.polls = 0
        self._stop_event = threading.Event()

    def live_set(self) -> frozenset:
        from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import admin_to_state, parse_servers_state
        rows = parse_servers_state(self.runtime.raw("show servers state %s" % self.backend))
        # admin state: only the maint/drain bits matter (0x04 just remembers 'disabled' in the config).
        return frozenset(r["srv_name"] for r in rows if r.get("srv_uweight", "0").isdigit() and int(r["srv_uweight"]) > 0
                         and admin_to_state(int(r.get("srv_admin_state", "1"))) == "ready")

    def run(self) -> None:
        current, last_poll = self.live_set(), time.monotonic()
        while not self._stop_event.is_set():
            try:
                seen = self.live_set()
            except Exception:  # pylint: disable=broad-except  # a missed poll only widens the bound
                continue
            now = time.monotonic()
            self.polls += 1
            if seen != current:
                self.changes.append((last_poll, now, seen))
                current = seen
            last_poll = now
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def changes_between(self, start: float, end: float) -> List[Tuple[float, float, frozenset]]:
        return [c for c in self.changes if start <= c[1] <= end]


def delta(after: Dict[str, Any], before: Dict[str, Any]) -> Dict[str, Any]:
    versions = {k: v - before["versions"].get(k, 0) for k, v in after["versions"].items()}
    errors = {k: v - before["errors"].get(k, 0) for k, v in after["errors"].items()}
    return {"requests": after["requests"] - before["requests"], "versions": {k: v for k, v in versions.items() if v},
            "errors": {k: v for k, v in errors.items() if v}}


def split_errors(errors: Dict[str, int]) -> Dict[str, int]:
    non_2xx = sum(v for k, v in errors.items() if k.startswith("status "))
    return {"non_2xx": non_2xx, "socket_errors": sum(errors.values()) - non_2xx}


def ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value * 1000, 1)


def build_images(tmp: str, repo: str) -> Dict[str, Dict[str, Any]]:
    from ansible_collections.immutable.deploy.plugins.module_utils.images.reference import DEFAULT_MOVING_TAGS
    from ansible_collections.immutable.deploy.plugins.module_utils.images.build import build
    images = {}
    for version in (V1, V2):
        context = os.path.join(tmp, "ctx-" + version)
        sh(os.path.join(ROOT, "scripts", "sample_app.sh"), context, version)
        params = dict(name=repo, version=version, path=context, dockerfile="Dockerfile", build_args={}, target=None,
                      labels={}, revision=None, source=None, pull=False, push=True, docker_host=None,
                      docker_timeout=120, registry_username=None, registry_password=None, registry_scheme="auto",
                      validate_certs=True, moving_tags=list(DEFAULT_MOVING_TAGS))
        image = build(params, False)["image"]
        images[version] = {"ref": "%s:%s@%s" % (repo, version, image["digest"]), "id": image["id"]}
    return images


def wait_version(port: int, version: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(port, timeout=2) == (200, version):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("port %d never answered %s" % (port, version))


def role(name: str, values: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [{"name": name, "ansible.builtin.include_role": {"name": "immutable.deploy." + name}, "vars": values}]


def task_durations(timeline: List[Dict[str, Any]], top: int = 12) -> Dict[str, float]:
    """Seconds from each task start to the next one, slowest first: where a run spends its time."""
    starts = [r for r in timeline if r["event"] == "start"]
    out: Dict[str, float] = {}
    for row, nxt in zip(starts, starts[1:]):
        out[short(row["task"])] = round(out.get(short(row["task"]), 0) + nxt["t"] - row["t"], 3)
    return dict(sorted(out.items(), key=lambda item: -item[1])[:top])


def delete_repo(repo: str) -> None:
    """Local images and registry manifests of the benchmark repository."""
    subprocess.run("docker images -q %s | sort -u | xargs -r docker rmi -f" % repo, shell=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    registry, path = repo.split("/", 1)
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    for version in (V1, V2):
        try:
            head = urllib.request.Request("http://%s/v2/%s/manifests/%s" % (registry, path, version), method="HEAD",
                                          headers=accept)
            with urllib.request.urlopen(head, timeout=10) as resp:
                digest = resp.headers["Docker-Content-Digest"]
            urllib.request.urlopen(urllib.request.Request("http://%s/v2/%s/manifests/%s" % (registry, path, digest),
                                                          method="DELETE"), timeout=10).close()
        except (urllib.error.URLError, OSError):
            pass


def cleanup(ansible: Ansible, app: str, repo: str) -> None:
    if ansible.router_vars:
        try:
            ansible.play("router-absent", role("router", dict(ansible.router_vars, router_state="absent")))
        except RuntimeError as exc:
            log("router cleanup failed: %s" % exc)
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.immutable-deploy.app=%s" % app],
                         capture_output=True, text=True, check=False).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], stdout=subprocess.DEVNULL, check=False)
    delete_repo(repo)
