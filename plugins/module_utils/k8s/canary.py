# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A replica-ratio canary whose progress lives in the cluster.

The canary's Deployment carries the annotation immutable-deploy.io/canary, a small JSON
record (stable release, steps, the step reached, running or paused and why), written
with every step. Any controller can therefore carry on after a manual gate (promote) or
abort, and both are no-ops once the record is gone. The record goes with the canary:
an abort clears it, a promote clears it, a retired canary takes it along.

Abort puts correctness first: the Service selects stable alone at once (one selector
patch: the canary's pods leave the Endpoints together), then stable is scaled back to
its full size and the canary to 0. Only when stable has no ready pod left (a canary at
100 %) is stable scaled up and waited for before the switch, so the Service never
selects nothing.

Promote grows the canary to the full size first, switches the Service to it alone,
records the canary's full size, and then either scales the old stable to 0 or, with
scale_down_delay, scales it back to its full size and keeps it there until the deadline
(warm.py): a rollback inside the window is one selector patch.
"""
from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.analysis.verdict import (
    METRIC_OPTIONS, analyse, build_metrics)
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import lease
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import traffic as kt
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import warm
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.release import Releases, validate_names
from ansible_collections.immutable.deploy.plugins.module_utils.waiting import utc_now, wait_until

ANN_CANARY = kn.ANN_CANARY
ACTIONS = ("step", "pause", "promote", "abort", "scale_down", "status")

# The analysis option: release_analysis's metrics (same shape and checks), measured by the process that
# scaled the step, so a fail verdict is acted on at once (abort below), not after a module start-up.
ANALYSIS_OPTION: Dict[str, Any] = dict(type="dict", options=dict(
    interval=dict(type="float", default=10),
    count=dict(type="int", default=1),
    failure_limit=dict(type="int", default=0),
    inconclusive=dict(type="str", default="pause", choices=["pause", "fail", "pass"]),
    fail_fast=dict(type="bool", default=True),
    metrics=dict(type="list", elements="dict", required=True, options=METRIC_OPTIONS),
))
_ANN_PATH = "/metadata/annotations/" + ANN_CANARY.replace("/", "~1")
_REPLICAS_PATH = "/metadata/annotations/" + kn.ANN_REPLICAS.replace("/", "~1")

Dep = Dict[str, Any]


# -- the record (pure) ---------------------------------------------------------------------------
def record_of(dep: Optional[Dep]) -> Optional[Dict[str, Any]]:
    return kn.canary_record((((dep or {}).get("metadata") or {}).get("annotations") or {}).get(ANN_CANARY))


def release_of(dep: Dep) -> str:
    return str(((dep.get("metadata") or {}).get("labels") or {}).get(kn.LABEL_RELEASE, ""))


def in_progress(deployments: List[Dep]) -> Optional[Tuple[Dep, Dict[str, Any]]]:
    """The canary in progress: the newest Deployment of the app with a record."""
    found = [(d, record_of(d)) for d in deployments]
    found = [(d, r) for d, r in found if r is not None]
    if not found:
        return None
    found.sort(key=lambda dr: (((dr[0].get("metadata") or {}).get("annotations") or {}).get(kn.ANN_CREATED) or ""))
    return found[-1][0], found[-1][1]  # type: ignore[return-value]


def public(dep: Dep, rec: Dict[str, Any]) -> Dict[str, Any]:
    return dict(rec, canary=release_of(dep))


# -- writes ----------------------------------------------------------------------------------------
def write_record(client: Client, dep: Dep, rec: Dict[str, Any], check_mode: bool) -> None:
    name = dep["metadata"]["name"]
    client.patch("Deployment", name, {"metadata": {"annotations": {ANN_CANARY: json.dumps(rec, sort_keys=True)}}},
                 merge=True, dry_run=check_mode, what="Recording the canary's progress on Deployment %s" % name)


def clear_record(client: Client, dep: Dep, check_mode: bool) -> bool:
    if record_of(dep) is None:
        return False
    name = dep["metadata"]["name"]
    client.patch("Deployment", name, {"metadata": {"annotations": {ANN_CANARY: None}}}, merge=True,
                 dry_run=check_mode, what="Clearing the canary record of Deployment %s" % name)
    return True


def set_full_size(client: Client, dep: Dep, replicas: int, check_mode: bool) -> None:
    """The promoted canary's full size is what it runs now, for later canaries and rollbacks."""
    name = dep["metadata"]["name"]
    client.patch("Deployment", name, [{"op": "add", "path": _REPLICAS_PATH, "value": str(replicas)}],
                 dry_run=check_mode, what="Recording the full size of Deployment %s" % name)


# -- the actions -------------------------------------------------------------------------------------
class Canary:
    """One app's canary in one namespace."""

    def __init__(self, cluster: Releases, p: Dict[str, Any], check_mode: bool) -> None:
        self.cluster, self.client, self.p, self.check_mode = cluster, cluster.client, p, check_mode
        self.app = p["app"]
        self.service = p.get("service") or self.app

    def deployments(self) -> List[Dep]:
        return [d for d in self.cluster.deployments(self.app)
                if kn.LABEL_RELEASE in ((d.get("metadata") or {}).get("labels") or {})]

    def current(self) -> Optional[Tuple[Dep, Dict[str, Any]]]:
        """The canary named by the options, else the one the cluster records as in progress."""
        if self.p.get("release"):
            dep = self.cluster.deployment(self.app, self.p["release"])
            if dep is None:
                return None
            return dep, record_of(dep) or {}
        return in_progress(self.deployments())

    def _ids(self, found: Tuple[Dep, Dict[str, Any]]) -> Tuple[str, str]:
        dep, rec = found
        stable = self.p.get("stable_release") or rec.get("stable")
        if not stable:
            raise DeployError("Option 'stable_release': not given and the canary %s records no stable release."
                              % release_of(dep), option="stable_release")
        return release_of(dep), stable

    def _traffic(self, **extra: Any) -> Dict[str, Any]:
        """Parameters for traffic.py's functions, from this module's own."""
        base = {k: self.p.get(k) for k in ("app", "service", "service_ports", "wait_timeout")}
        base.update(wait=self.p.get("wait", True), require_ready=True, restore_replicas=False)
        base.update(extra)
        return base

    # step / pause -----------------------------------------------------------------------------
    def step(self) -> Dict[str, Any]:
        p = self.p
        for option in ("release", "stable_release", "weight"):
            if p.get(option) is None:
                raise DeployError("Option '%s' is required with action=step." % option, option=option)
        analysis = p.get("analysis")
        metrics = build_metrics(analysis["metrics"]) if analysis else None  # checked before the first write
        result = kt.replica_ratio(self.cluster, self._traffic(release=p["release"], stable_release=p["stable_release"],
                                                              weight=p["weight"], total_replicas=p.get("total_replicas")),
                                  self.check_mode)
        dep = self.cluster.existing(self.app, p["release"])
        rec = {"stable": p["stable_release"], "weight": p["weight"], "step": p.get("step"),
               "next_step": (p["step"] + 1) if p.get("step") is not None else None, "steps": p.get("steps"),
               "total_replicas": result["total_replicas"], "state": "running", "reason": None, "updated": utc_now()}
        write_record(self.client, dep, rec, self.check_mode)
        result = dict(result, changed=True, action="step", canary=public(dep, rec))
        if self.check_mode:
            return result
        if p.get("pause"):
            time.sleep(p["pause"])  # the lock is renewed meanwhile
        if analysis and metrics:
            result["analysis"] = self._analyse(analysis, metrics)
        return result

    def _analyse(self, analysis: Dict[str, Any], metrics: List[Any]) -> Dict[str, Any]:
        """Measure; on a fail verdict abort in this process right away (analyse's on_fail), then wait for stable."""
        def on_fail(decided: float) -> Dict[str, Any]:
            try:
                done = self.abort(wait=False)
            except DeployError as exc:  # the verdict stands; the role's own abort tries again
                return {"written": False, "changed": True, "error": exc.msg, "decided_at": decided}
            written = time.monotonic()
            return {"written": True, "changed": True, "decided_at": decided, "written_at": written,
                    "latency_ms": round((written - decided) * 1000, 1), "release": done.get("release"),
                    "stable_release": done.get("stable_release"), "timing": done.get("timing")}
        verdict = analyse(metrics, analysis["interval"], analysis["count"], analysis["failure_limit"],
                          analysis["inconclusive"], fail_fast=analysis["fail_fast"], on_fail=on_fail)
        aborted = verdict.get("abort") or {}
        if aborted.get("written") and self.p.get("wait", True):
            aborted["stable_ready"] = self._wait_stable(aborted["stable_release"], time.monotonic())
        return verdict

    def pause(self) -> Dict[str, Any]:
        found = self.current()
        if found is None or not found[1]:
            raise DeployError("No canary of app %r is in progress in namespace %s: nothing to pause."
                              % (self.app, self.client.ns), option="release")
        dep, rec = found
        rec = dict(rec, state="paused", reason=self.p.get("reason") or "manual gate", updated=utc_now())
        if self.p.get("step") is not None:
            rec.update(step=self.p["step"], next_step=self.p["step"] + 1)
        write_record(self.client, dep, rec, self.check_mode)
        return {"changed": True, "action": "pause", "canary": public(dep, rec)}

    # promote -----------------------------------------------------------------------------------
    def promote(self) -> Dict[str, Any]:
        found = self.current()
        if found is None:
            return {"changed": False, "action": "promote", "canary": None,
                    "msg": "No canary of %s is in progress; nothing to promote." % self.app}
        canary, stable = self._ids(found)
        dep, rec = found
        stable_dep = self.cluster.existing(self.app, stable, "stable_release")
        total = self.p.get("total_replicas") or rec.get("total_replicas") or kt.full_replicas(stable_dep)
        delay = self.p.get("scale_down_delay") or 0
        result: Dict[str, Any] = {"changed": True, "action": "promote", "canary": public(dep, rec), "release": canary,
                                  "stable_release": stable, "total_replicas": total, "scale_down_delay": delay}
        if kt.replicas_of(dep) < total:
            kt._scale(self.cluster, dep, total, self.check_mode)  # pylint: disable=protected-access
            if not self.check_mode:
                kt._wait_ready(self.cluster, self.app, canary, total, self.p["wait_timeout"],  # pylint: disable=protected-access
                               "the Service was not changed")
        result["switch"] = kt.switch_service(self.cluster, self._traffic(release=canary), self.check_mode)
        dep = self.cluster.existing(self.app, canary)
        set_full_size(self.client, dep, total, self.check_mode)
        clear_record(self.client, dep, self.check_mode)
        result["previous"] = self._retire_stable(stable, delay)
        return result

    def _retire_stable(self, stable: str, delay: float) -> Dict[str, Any]:
        dep = self.cluster.existing(self.app, stable, "stable_release")
        full, now = kt.full_replicas(dep), kt.replicas_of(dep)
        out: Dict[str, Any] = {"release": stable, "replicas_before": now}
        if delay <= 0:
            if now:
                kt._scale(self.cluster, dep, 0, self.check_mode)  # pylint: disable=protected-access
            return dict(out, replicas=0, scale_down_at=None, warm=False)
        if now < full:
            kt._scale(self.cluster, dep, full, self.check_mode)  # pylint: disable=protected-access
        ready = True
        if not self.check_mode and self.p.get("wait", True):
            try:
                kt._wait_ready(self.cluster, self.app, stable, full, self.p["wait_timeout"],  # pylint: disable=protected-access
                               "it is not warm yet")
            except DeployError:
                ready = False  # the promote stands; a rollback would wait for the pods
        # The window starts once the release is warm again.
        at = warm.keep_warm(self.client, self.cluster.existing(self.app, stable, "stable_release"), delay, time.time(),
                            self.check_mode)
        return dict(out, replicas=full, scale_down_at=at, warm=ready)

    # abort -------------------------------------------------------------------------------------
    def abort(self, wait: Optional[bool] = None) -> Dict[str, Any]:
        started = time.monotonic()
        found = self.current()
        # Named explicitly (a run that failed before its first step was recorded), or recorded.
        named = bool(self.p.get("release") and self.p.get("stable_release"))
        if found is None or not (found[1] or named):
            return {"changed": False, "action": "abort", "canary": None,
                    "msg": "No canary of %s is in progress; nothing to abort." % self.app}
        canary, stable = self._ids(found)
        dep, rec = found
        stable_dep = self.cluster.existing(self.app, stable, "stable_release")
        full = kt.full_replicas(stable_dep)
        timing: Dict[str, Any] = {}
        first_restore = kt.ready_of(stable_dep) == 0
        if first_restore:  # nothing of stable would answer: capacity first, or the Service selects no pod
            kt._scale(self.cluster, stable_dep, full, self.check_mode)  # pylint: disable=protected-access
            if not self.check_mode:
                kt._wait_ready(self.cluster, self.app, stable, 1, self.p["wait_timeout"],  # pylint: disable=protected-access
                               "the Service still selects the canary")
        current = self.cluster.service(self.service)
        action = kt.ensure_selector(self.cluster, self._traffic(), current, kn.selector_for(self.app, stable),
                                    self.check_mode)
        timing["selector_ms"] = round((time.monotonic() - started) * 1000, 1)
        changed = first_restore or action != "none"
        if not first_restore and kt.replicas_of(stable_dep) < full:
            kt._scale(self.cluster, stable_dep, full, self.check_mode)  # pylint: disable=protected-access
            changed = True
        if kt.replicas_of(dep) > 0:
            kt._scale(self.cluster, dep, 0, self.check_mode)  # pylint: disable=protected-access
            changed = True
        timing["scaled_ms"] = round((time.monotonic() - started) * 1000, 1)
        changed = clear_record(self.client, self.cluster.existing(self.app, canary), self.check_mode) or changed
        result: Dict[str, Any] = {
            "changed": changed, "action": "abort", "canary": public(dep, rec) if rec else None, "release": canary,
            "stable_release": stable, "service_action": action, "replicas": {stable: full, canary: 0}, "timing": timing}
        if (self.p.get("wait", True) if wait is None else wait) and not self.check_mode:
            result["wait"] = self._wait_stable(stable, started)
            timing["stable_ready_s"] = result["wait"]["seconds"]
        return result

    def _wait_stable(self, stable: str, started: float) -> Dict[str, Any]:
        """Until stable runs its full size, all ready, and the Endpoints list no other release."""
        full = kt.full_replicas(self.cluster.existing(self.app, stable, "stable_release"))

        def done() -> Tuple[bool, str]:
            counts = kt._endpoint_counts(self.cluster, self.app, self.service)["by_release"]  # pylint: disable=protected-access
            ready = kt.ready_of(self.cluster.existing(self.app, stable, "stable_release"))
            other = sum(n for rid, n in counts.items() if rid != stable)
            return ready >= full and other == 0 and counts.get(stable, 0) >= full, (
                "stable %s has %d of %d replicas ready; Endpoints list %s" % (stable, ready, full, counts))
        ok, state = wait_until(done, self.p["wait_timeout"], kt.POLL)
        return {"ready": ok, "state": state, "seconds": round(time.monotonic() - started, 3) if ok else None}

    # scale_down / status -------------------------------------------------------------------------
    def scale_down(self) -> Dict[str, Any]:
        now = time.time()
        in_use = kt.in_use(self.cluster, self.app, self.service)
        deps = self.deployments()
        if in_use is None:
            return {"changed": False, "action": "scale_down", "scaled_down": [],
                    "msg": "The Service of %s selects every release (a canary in progress): nothing scaled down." % self.app}
        done = warm.expire(self.client, deps, in_use, now, self.check_mode)
        return {"changed": bool(done), "action": "scale_down", "scaled_down": done,
                "warm": {release_of(d): warm.view(d, now) for d in deps if warm.deadline(d)}}

    def status(self) -> Dict[str, Any]:
        found = in_progress(self.deployments())
        return {"changed": False, "action": "status", "canary": public(*found) if found else None}


def next_deadline(deps: List[Dep], now: float) -> Optional[float]:
    """The latest scale-down deadline still ahead (what a waiting play sleeps until)."""
    times = [lease.parse_time(warm.deadline(d)) for d in deps]
    ahead = [t for t in times if t is not None and t > now]
    return max(ahead) if ahead else None


def validate(p: Dict[str, Any]) -> None:
    if p["action"] not in ACTIONS:
        raise invalid_option("action", p["action"], ", ".join(ACTIONS))
    validate_names(p, "release", "stable_release")
    kt.check_weight(p.get("weight"))
    if p["action"] == "step" and p.get("total_replicas") is not None and p.get("weight") is not None:
        kt.ratio_replicas(p["total_replicas"], p["weight"])
    delay = p.get("scale_down_delay") or 0
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise invalid_option("scale_down_delay", delay, "seconds >= 0")
    if p.get("step") is not None and (isinstance(p["step"], bool) or p["step"] < 0):
        raise invalid_option("step", p["step"], "the index of the step, 0 or more")
    pause = p.get("pause") or 0
    if isinstance(pause, bool) or not isinstance(pause, (int, float)) or pause < 0:
        raise invalid_option("pause", pause, "seconds >= 0")
    analysis = p.get("analysis")
    if analysis:
        for option, value, ok, accepted in (
                ("analysis.interval", analysis["interval"], analysis["interval"] > 0, "more than 0 seconds"),
                ("analysis.count", analysis["count"], analysis["count"] >= 1, "1 or more"),
                ("analysis.failure_limit", analysis["failure_limit"], analysis["failure_limit"] >= 0, "0 or more")):
            if not ok:
                raise invalid_option(option, value, accepted)
        build_metrics(analysis["metrics"])


def run(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    validate(p)
    client = Client(p)
    client.require_namespace()
    cluster = Releases(client)
    if p["action"] == "status":
        return Canary(cluster, p, check_mode).status()
    if p["action"] == "scale_down" and p.get("wait") and not check_mode:
        # Wait without the lock, so a rollback inside the window is not refused; then act under it.
        ahead = next_deadline(Canary(cluster, p, check_mode).deployments(), time.time())
        if ahead is not None:
            time.sleep(max(0.0, min(ahead - time.time(), p["wait_timeout"])))
    try:
        with lease.holding(p, p.get("lock"), check_mode, client):
            done: Dict[str, Any] = getattr(Canary(cluster, p, check_mode), p["action"])()
            return done
    except DeployError as exc:
        if p["action"] == "scale_down" and exc.details.get("lock") and not exc.details.get("lost"):
            # Someone else deploys or rolls back right now: their switch honours the deadline.
            return {"changed": False, "action": "scale_down", "scaled_down": [], "skipped": exc.msg}
        raise
