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

Then, with --rollback-runs (default 3), rollbacks with the rollback role (one k8s_switch module run
under the app's Lease), each after a canary promote (immutable.deploy.canary, replica ratio) that kept
the old stable warm (canary_k8s_scale_down_delay 600, not waited for):
- warm: back to the old stable inside its window: playbook wall time, Service writes (1: one selector
  patch) and patch to Endpoints listing only its pods; no pod is started;
- cold: back to the release just left, after it was scaled to 0 the way the end of its window does
  (spec.replicas 0, full size kept): playbook wall time, of which scaling back up until ready.
And with --abort-runs (default 3), a bad canary (the sample app whose /cgi-bin/info answers 500) at 50 %:
the analysis (interval 2 s) asks a canary pod through the API and fails; measured from the moment the
analysis command decided (its own time stamp) to the Service selecting stable alone, stable at its full
scale and the canary at 0 (all three), and to stable being fully ready.

Run: .venv/bin/python benchmarks/k8s_switch.py [--runs N] [--rollback-runs N] [--abort-runs N]
(after `make k8s link`; KUBECONFIG or the harness cluster). Everything is created in a fresh
namespace that is deleted at the end.
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
from harness import Ansible, ROOT, link_collection  # noqa: E402

from kubernetes import client as k8s_client  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes import watch as k8s_watch  # noqa: E402

CLUSTER = os.path.join(ROOT, "tests", "k8s", "cluster.sh")
RELEASE = "immutable-deploy.io/release"
REPLICAS = 2
INTERVAL = 2  # the bad canary's analysis interval
BROKEN_CGI = "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\n\\r\\n'\necho broken\n"


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
                now, wall = time.monotonic(), time.time()
                obj = event["object"]
                with self.lock:
                    self.events.append({"t": now, "wall": wall, "type": event["type"], "kind": obj.kind or func.__name__,
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


def spread(values: List[Any]) -> Dict[str, Any]:
    values = [v for v in values if v is not None]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else {}


class Roles:
    """The collection's roles on the benchmark's namespace, through ansible-playbook."""

    def __init__(self, ansible: Ansible, ns: str, tmp: str) -> None:
        self.ansible, self.ns, self.tmp = ansible, ns, tmp

    def run(self, name: str, role: str, values: Dict[str, Any], register: str = "") -> Dict[str, Any]:
        """One play with the role; returns {wall, ok, result (the registered var, when asked), error}."""
        out = os.path.join(self.tmp, "%s.json" % name)
        tasks: List[Dict[str, Any]] = [{"name": role, "ansible.builtin.include_role": {"name": "immutable.deploy." + role},
                                        "vars": dict({"%s_target" % role: "kubernetes", "%s_k8s_namespace" % role: self.ns},
                                                     **values)}]
        if register:
            tasks.append({"name": "report", "ansible.builtin.copy": {"content": "{{ %s | to_json }}" % register, "dest": out}})
        start = time.monotonic()
        try:
            wall, ok, error = self.ansible.play(name, tasks)[0], True, None
        except RuntimeError as exc:
            wall, ok, error = time.monotonic() - start, False, str(exc)[-600:]
        result = None
        if register and os.path.exists(out):
            with open(out, encoding="utf-8") as handle:
                result = json.load(handle)
            os.remove(out)
        return {"wall": round(wall, 2), "ok": ok, "result": result, "error": error, "start": start}


def bg_first(roles: Roles, app: str, release: str, image: str) -> None:
    done = roles.run("%s-%s" % (app, release), "blue_green", {
        "blue_green_app": app, "blue_green_image": image, "blue_green_release": release, "blue_green_replicas": REPLICAS,
        "blue_green_watch_seconds": 0, "blue_green_k8s_termination_grace_period": 1})
    if not done["ok"]:
        raise RuntimeError(done["error"])


def rollback_figures(recorder: Recorder, roles: Roles, app: str, target: str, name: str) -> Dict[str, Any]:
    done = roles.run(name, "rollback", {"rollback_app": app, "rollback_to": target}, register="rollback_switch")
    if not done["ok"]:
        raise RuntimeError(done["error"])
    events = recorder.since(done["start"])
    figures = measure(events, app, target, "%s-%s" % (app, target))
    result = done["result"] or {}
    restored = result.get("restored")
    return {"playbook_wall_s": done["wall"], "service_patches": figures["service_patches"],
            "patch_to_endpoints_ms": figures["patch_to_endpoints_ms"], "min_ready_addresses": figures["min_ready_addresses"],
            "restored": restored, "module_total_s": (result.get("timing") or {}).get("total_s"),
            "module_switch_seconds": result.get("switch_seconds")}


def rollbacks(recorder: Recorder, roles: Roles, api: k8s_client.ApiClient, ns: str, refs: List[str],
              count: int) -> Dict[str, Any]:
    """Warm (inside scale_down_delay) and cold (scaled to 0) rollbacks after canary promotes."""
    app, apps = "kroll", k8s_client.AppsV1Api(api)
    live = "c0"
    bg_first(roles, app, live, refs[0])
    warm, cold = [], []
    for run in range(1, count + 1):
        canary = "c%d" % run
        promoted = roles.run("canary-%s" % canary, "canary", {
            "canary_app": app, "canary_image": refs[run % 2], "canary_release": canary, "canary_steps": [{"weight": 50}],
            "canary_k8s_scale_down_delay": 600, "canary_k8s_scale_down_wait": False,
            "canary_k8s_termination_grace_period": 1})
        if not promoted["ok"]:
            raise RuntimeError(promoted["error"])
        warm.append(rollback_figures(recorder, roles, app, live, "warm-%d" % run))
        log("warm rollback %d: %s" % (run, warm[-1]))
        # The end of the window as warm.py writes it: spec.replicas 0, the full size annotation kept.
        apps.patch_namespaced_deployment("%s-%s" % (app, canary), ns, {"spec": {"replicas": 0}})
        deadline = time.monotonic() + 120
        while apps.read_namespaced_deployment("%s-%s" % (app, canary), ns).status.replicas and time.monotonic() < deadline:
            time.sleep(0.5)
        cold.append(rollback_figures(recorder, roles, app, canary, "cold-%d" % run))
        log("cold rollback %d: %s" % (run, cold[-1]))
        roles.ansible.play("retire-%s" % live, [{"name": "retire", "immutable.deploy.k8s_release": {
            "app": app, "namespace": ns, "release": live, "state": "absent", "wait": False}}])
        live = canary

    def summary(items: List[Dict[str, Any]]) -> Dict[str, Any]:
        return {"runs": len(items), "playbook_wall_s": spread([i["playbook_wall_s"] for i in items]),
                "module_total_s": spread([i["module_total_s"] for i in items]),
                "patch_to_endpoints_ms": spread([i["patch_to_endpoints_ms"] for i in items]),
                "max_service_patches": max((i["service_patches"] for i in items), default=None),
                "pods_started": sorted({(i["restored"] or {}).get("replicas", 0) - (i["restored"] or {}).get("replicas_before", 0)
                                        for i in items}),
                "per_run": items}
    return {"warm": summary(warm), "cold": summary(cold)}


def aborts(recorder: Recorder, roles: Roles, ns: str, refs: List[str], broken: str, count: int) -> Dict[str, Any]:
    """A bad canary at 50 %: verdict to stable alone, at full scale, canary at 0; and to stable fully ready."""
    app = "kabort"
    bg_first(roles, app, "s0", refs[0])
    stamps = os.path.join(roles.tmp, "decided")
    items = []
    for run in range(1, count + 1):
        canary = "bad%d" % run
        ask = ("%s kubectl exec -n %s deploy/%s-%s -- sh -c 'wget -q -O- http://127.0.0.1:8080/cgi-bin/info' >/dev/null 2>&1 "
               "&& r=0 || r=1; date +%%s.%%N >> %s; echo $r" % (CLUSTER, ns, app, canary, stamps))
        done = roles.run("abort-%d" % run, "canary", {
            "canary_app": app, "canary_image": broken, "canary_release": canary,
            "canary_steps": [{"weight": 50}, {"weight": 100}], "canary_k8s_termination_grace_period": 1,
            "canary_analysis": {"interval": INTERVAL, "count": 1, "metrics": [
                {"name": "canary-errors", "provider": "command", "command": {"argv": ["/bin/sh", "-c", ask]},
                 "success": "result < 1"}]}})
        if done["ok"]:
            raise RuntimeError("the bad canary was promoted")
        with open(stamps, encoding="utf-8") as handle:
            decided = float(handle.read().split()[-1])
        events = [e for e in recorder.since(done["start"]) if e["wall"] >= decided]
        stable, bad = "%s-s0" % app, "%s-%s" % (app, canary)

        def first(test) -> Any:
            return next((e["wall"] - decided for e in events if test(e)), None)
        selected = first(lambda e: e["name"] == app and "ervice" in e["kind"]
                         and (e["obj"].spec.selector or {}).get(RELEASE) == "s0")
        stable_full = first(lambda e: e["name"] == stable and "eployment" in e["kind"] and e["obj"].spec.replicas == REPLICAS)
        canary_zero = first(lambda e: e["name"] == bad and "eployment" in e["kind"]
                            and (e["type"] == "DELETED" or not e["obj"].spec.replicas))
        ready = first(lambda e: e["name"] == stable and "eployment" in e["kind"]
                      and (e["obj"].status.ready_replicas or 0) >= REPLICAS and e["obj"].spec.replicas == REPLICAS)
        parts = [selected, stable_full, canary_zero]
        item = {"verdict_to_abort_s": round(max(parts), 3) if None not in parts else None,
                "verdict_to_selector_s": round(selected, 3) if selected is not None else None,
                "verdict_to_stable_ready_s": round(ready, 3) if ready is not None else None,
                "playbook_wall_s": done["wall"]}
        item["analysis_start_to_abort_s"] = round(item["verdict_to_abort_s"] + INTERVAL, 3) if item["verdict_to_abort_s"] else None
        items.append(item)
        log("abort %d: %s" % (run, item))
    return {"runs": len(items), "interval_s": INTERVAL,
            "verdict_to_abort_s": spread([i["verdict_to_abort_s"] for i in items]),
            "verdict_to_selector_s": spread([i["verdict_to_selector_s"] for i in items]),
            "verdict_to_stable_ready_s": spread([i["verdict_to_stable_ready_s"] for i in items]),
            "goal_interval_plus_2s": all(i["verdict_to_abort_s"] is not None and i["verdict_to_abort_s"] <= 2 for i in items),
            "per_run": items}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rollback-runs", type=int, default=3)
    parser.add_argument("--abort-runs", type=int, default=3)
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
    rolled: Any = None
    aborted: Any = None
    try:
        for version in ("1.0.0", "2.0.0", "broken"):
            context = sample_context(os.path.join(tmp, version), version)
            if version == "broken":
                cgi = os.path.join(context, "www", "cgi-bin", "info")
                with open(cgi, "w", encoding="utf-8") as handle:
                    handle.write(BROKEN_CGI)
                os.chmod(cgi, 0o755)
            engine.images.build(path=context, tag="%s:%s" % (repo, version))
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
        roles = Roles(ansible, ns, tmp)
        rolled = rollbacks(recorder, roles, api, ns, refs, args.rollback_runs) if args.rollback_runs else None
        aborted = aborts(recorder, roles, ns, refs, refs[2], args.abort_runs) if args.abort_runs else None
    finally:
        recorder.stop()
        core.delete_namespace(ns)
        remove_repos([repo])
        subprocess.run(["rm", "-rf", tmp], check=False)

    def stats(key: str) -> Dict[str, Any]:
        return spread([r[key] for r in runs])

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
        "rollback": rolled,
        "bad_canary_abort": aborted,
    }, indent=2))


if __name__ == "__main__":
    main()
