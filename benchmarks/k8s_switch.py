"""Kubernetes release and switch times on the real cluster; JSON on stdout.

Per run (--runs, default 5), one ansible-playbook applies a new release of the sample app with
immutable.deploy.k8s_release (2 replicas, readiness GET /health every second) and switches the
app's Service to it with immutable.deploy.k8s_traffic; releases alternate between the images of
1.0.0 and 2.0.0 under new release ids, and the one before the previous is retired afterwards.

Measured from the benchmark's own API watches (receipt times on one monotonic clock), not
from the modules' reports:
- apply_to_available: the Deployment's first ADDED event to the first event where
  availableReplicas == replicas;
- patch_to_endpoints: the Service MODIFIED event that carries the new selector to the first
  Endpoints event listing only the new release's pods, all of them ready;
- min_ready_addresses: the fewest ready addresses any Endpoints event showed during the run
  (the zero-downtime invariant: never 0), and service_patches: how many times the Service
  changed during the switch (1: the selector moved in a single patch).
Also the module's own switch_seconds and the whole ansible-playbook wall time.

Run: .venv/bin/python benchmarks/k8s_switch.py [--runs N]  (after `make k8s link`; KUBECONFIG or
the harness cluster). Everything is created in a fresh namespace that is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zero_downtime import Ansible, ROOT, link_collection  # noqa: E402

from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes import watch as k8s_watch  # noqa: E402

CLUSTER = os.path.join(ROOT, "tests", "k8s", "cluster.sh")
RELEASE = "immutable-deploy.io/release"
REPLICAS = 2


def log(msg: str) -> None:
    print("[k8s_switch] " + msg, file=sys.stderr, flush=True)


class Recorder:
    """Watches Deployments, Services and Endpoints of one namespace; keeps (time, kind, object)."""

    def __init__(self, api: k8s_client.ApiClient, namespace: str) -> None:
        self.core, self.apps, self.ns = k8s_client.CoreV1Api(api), k8s_client.AppsV1Api(api), namespace
        self.events: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        self.watches = [k8s_watch.Watch(), k8s_watch.Watch(), k8s_watch.Watch()]
        lists = (self.apps.list_namespaced_deployment, self.core.list_namespaced_service,
                 self.core.list_namespaced_endpoints)
        self.threads = [threading.Thread(target=self._run, args=(w, f), daemon=True) for w, f in zip(self.watches, lists)]

    def _run(self, watch: k8s_watch.Watch, func) -> None:
        try:
            for event in watch.stream(func, self.ns, timeout_seconds=3600):
                now = time.monotonic()
                obj = event["object"]
                with self.lock:
                    self.events.append({"t": now, "type": event["type"], "kind": obj.kind or func.__name__,
                                        "name": obj.metadata.name, "obj": obj})
        except Exception:  # pylint: disable=broad-except  # the stream breaks off when stop() ends it
            pass

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        time.sleep(0.5)

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()

    def since(self, start: float) -> List[Dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["t"] >= start]


def ready_pods(endpoints) -> List[str]:
    return [a.target_ref.name for s in (endpoints.subsets or []) for a in (s.addresses or []) if a.target_ref]


def measure(events: List[Dict[str, Any]], app: str, release: str, deployment: str) -> Dict[str, Any]:
    deps = [e for e in events if e["name"] == deployment and "eployment" in e["kind"]]
    added = next((e["t"] for e in deps if e["type"] == "ADDED"), None)
    available = next((e["t"] for e in deps if (e["obj"].status.available_replicas or 0) == REPLICAS), None)
    services = [e for e in events if e["name"] == app and "ervice" in e["kind"] and e["type"] == "MODIFIED"]
    patch = next((e["t"] for e in services if (e["obj"].spec.selector or {}).get(RELEASE) == release), None)
    endpoints = [e for e in events if e["name"] == app and "ndpoints" in e["kind"]]
    only_new = next((e["t"] for e in endpoints if patch and e["t"] >= patch
                     and len(ready_pods(e["obj"])) == REPLICAS
                     and all(p.startswith(deployment + "-") for p in ready_pods(e["obj"]))), None)
    return {
        "apply_to_available_s": round(available - added, 3) if added and available else None,
        "patch_to_endpoints_ms": round((only_new - patch) * 1000, 1) if patch and only_new else None,
        "min_ready_addresses": min((len(ready_pods(e["obj"])) for e in endpoints), default=None),
        "service_patches": len(services),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    link_collection()
    subprocess.run([CLUSTER, "start"], check=True, stdout=subprocess.DEVNULL)
    kubeconfig = subprocess.run([CLUSTER, "env"], check=True, stdout=subprocess.PIPE, text=True).stdout.strip().split("=", 1)[1]
    os.environ["KUBECONFIG"] = kubeconfig
    api = k8s_config.new_client_from_config(config_file=kubeconfig)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import docker  # pylint: disable=import-outside-toplevel
    from images import remove_repos, sample_context  # pylint: disable=import-outside-toplevel

    uid = uuid.uuid4().hex[:8]
    ns, app = "bench-%s" % uid, "kbench"
    repo = "127.0.0.1:5000/bench-k8s-%s/app" % uid
    tmp = tempfile.mkdtemp(prefix="k8s-switch-")
    engine = docker.from_env()
    refs = []
    core = k8s_client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": ns, "labels": {"immutable-deploy.io/test": "1"}}})
    recorder = Recorder(api, ns)
    runs: List[Dict[str, Any]] = []
    try:
        for version in ("1.0.0", "2.0.0"):
            engine.images.build(path=sample_context(os.path.join(tmp, version), version), tag="%s:%s" % (repo, version))
            engine.images.push(repo, tag=version)
            refs.append([d for d in engine.images.get("%s:%s" % (repo, version)).attrs["RepoDigests"] if d.startswith(repo)][0])
        for dummy in range(100):  # a new namespace's default ServiceAccount comes a moment later
            if core.list_namespaced_service_account(ns).items:
                break
            time.sleep(0.1)
        recorder.start()
        ansible = Ansible(tmp)
        common = {"app": app, "namespace": ns}
        for run in range(args.runs + 1):  # run 0 makes the first live release (not measured)
            release = "r%d" % run
            tasks = [
                {"name": "apply", "immutable.deploy.k8s_release": dict(
                    common, release=release, slot=("blue", "green")[run % 2], image=refs[run % 2], replicas=REPLICAS,
                    readiness={"type": "http", "path": "/health", "period_seconds": 1}, termination_grace_period_seconds=1)},
                {"name": "switch", "immutable.deploy.k8s_traffic": dict(common, release=release), "register": "switch"},
                {"name": "report", "ansible.builtin.copy": {"content": "{{ switch | to_json }}", "dest": os.path.join(tmp, "switch.json")}},
            ]
            if run >= 2:
                tasks.append({"name": "retire", "immutable.deploy.k8s_release": dict(common, release="r%d" % (run - 2), state="absent")})
            start = time.monotonic()
            wall = ansible.play(release, tasks)[0]
            if run == 0:
                continue
            with open(os.path.join(tmp, "switch.json"), encoding="utf-8") as handle:
                reported = json.load(handle)
            figures = measure(recorder.since(start), app, release, "%s-%s" % (app, release))
            figures.update({"module_switch_seconds": reported.get("switch_seconds"), "playbook_wall_s": round(wall, 2)})
            runs.append(figures)
            log("run %d: %s" % (run, figures))
    finally:
        recorder.stop()
        core.delete_namespace(ns)
        remove_repos([repo])
        subprocess.run(["rm", "-rf", tmp], check=False)

    def stats(key: str) -> Dict[str, Any]:
        values = [r[key] for r in runs if r[key] is not None]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}

    print(json.dumps({
        "benchmark": "k8s_switch", "runs": len(runs), "replicas": REPLICAS,
        "apply_to_available_s": stats("apply_to_available_s"),
        "patch_to_endpoints_ms": stats("patch_to_endpoints_ms"),
        "module_switch_seconds": stats("module_switch_seconds"),
        "playbook_wall_s": stats("playbook_wall_s"),
        "min_ready_addresses": min((r["min_ready_addresses"] for r in runs if r["min_ready_addresses"] is not None), default=None),
        "max_service_patches_per_switch": max((r["service_patches"] for r in runs), default=None),
        "goals": {"never_zero_ready": all((r["min_ready_addresses"] or 0) > 0 for r in runs),
                  "single_patch": all(r["service_patches"] == 1 for r in runs)},
        "per_run": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
