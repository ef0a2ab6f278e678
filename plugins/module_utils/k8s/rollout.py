# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Deployment's rollout: its pods' health, waiting for it, and explaining why it failed.

Everything here works on the plain dicts the API returns (camelCase keys), so the
rules are unit-testable with literal pod dicts; the waiting loops take the reads
as callables.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.waiting import wait_until

# Waiting reasons that do not heal by waiting longer: fail at once, not at the timeout.
FAST_FAIL_REASONS = frozenset((
    "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CrashLoopBackOff",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
))
POLL_SECONDS = 0.5
EVENTS_PER_POD = 3
MAX_PODS_REPORTED = 5
_MAX_TEXT = 300

Dict_ = Dict[str, Any]


def pod_ready(pod: Dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_broken(pod: Dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Failed":
        return True
    for cs in status.get("containerStatuses") or []:
        if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in FAST_FAIL_REASONS:
            return True
    return False


def health(deployment: Dict[str, Any], pods: List[Dict[str, Any]]) -> str:
    """unhealthy: the rollout missed its progress deadline, a replica failed, or a pod cannot start;
    healthy: every wanted replica is ready; progressing otherwise."""
    status = deployment.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("status") == "False":
            return "unhealthy"
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return "unhealthy"
    if any(pod_broken(p) for p in pods):
        return "unhealthy"
    replicas = kn.as_int((deployment.get("spec") or {}).get("replicas"), 1)
    return "healthy" if kn.as_int(status.get("readyReplicas")) >= replicas else "progressing"


def _short(text: Any) -> Optional[str]:
    if text is None:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 3] + "..."


def _condition(obj: Dict_, kind: str) -> Dict_:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


# -- the Deployment -------------------------------------------------------------------
def rollout(dep: Dict_) -> Tuple[bool, str]:
    """(done, 'ready 1/2, updated 2, available 1'): done when the controller saw the latest
    generation and every wanted replica is updated, available and ready."""
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    wanted = spec.get("replicas", 1)
    counts = {k: status.get(k + "Replicas") or 0 for k in ("updated", "available", "ready")}
    observed = (status.get("observedGeneration") or 0) >= ((dep.get("metadata") or {}).get("generation") or 0)
    done = wanted == 0 or (observed and counts["updated"] == counts["available"] == counts["ready"] == wanted)
    text = "ready %d/%d, updated %d, available %d" % (counts["ready"], wanted, counts["updated"], counts["available"])
    if not observed:
        text += ", generation not yet observed"
    return done, text


def deployment_failure(dep: Dict_) -> Optional[str]:
    """The Deployment's own verdict when it gave up: progress deadline or pods it cannot create."""
    progressing = _condition(dep, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return "ProgressDeadlineExceeded: %s" % _short(progressing.get("message"))
    failure = _condition(dep, "ReplicaFailure")
    if failure.get("status") == "True":
        return "ReplicaFailure (%s): %s" % (failure.get("reason"), _short(failure.get("message")))
    return None


# -- pods -------------------------------------------------------------------------------
def _statuses(pod: Dict_) -> List[Dict_]:
    status = pod.get("status") or {}
    return (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])


def _terminating(pod: Dict_) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def fast_failures(pods: List[Dict_]) -> List[str]:
    """Names of live pods with a container stuck in a reason that waiting will not cure."""
    return [pod["metadata"]["name"] for pod in pods if not _terminating(pod) and any(
        ((s.get("state") or {}).get("waiting") or {}).get("reason") in FAST_FAIL_REASONS for s in _statuses(pod))]


def _container(s: Dict_) -> Dict_:
    state = s.get("state") or {}
    kind = next((k for k in ("waiting", "terminated", "running") if state.get(k) is not None), "unknown")
    detail = state.get(kind) or {}
    out = {"name": s.get("name"), "state": kind, "reason": detail.get("reason"),
           "message": _short(detail.get("message")), "exit_code": detail.get("exitCode"),
           "restart_count": s.get("restartCount") or 0, "ready": bool(s.get("ready")), "last_terminated": None}
    last = (s.get("lastState") or {}).get("terminated")
    if last:
        out["last_terminated"] = {"reason": last.get("reason"), "exit_code": last.get("exitCode"),
                                  "message": _short(last.get("message"))}
    return out


def _event_time(event: Dict_) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or
               (event.get("metadata") or {}).get("creationTimestamp") or "")


def warning_events(events: List[Dict_], limit: int = EVENTS_PER_POD) -> List[Dict_]:
    """The last few Warning events, oldest first (what `kubectl describe pod` ends with)."""
    warnings = sorted((e for e in events if e.get("type") == "Warning"), key=_event_time)[-limit:]
    return [{"reason": e.get("reason"), "message": _short(e.get("message")),
             "count": e.get("count") or 1, "time": _event_time(e) or None} for e in warnings]


def pod_detail(pod: Dict_, events: List[Dict_]) -> Dict_:
    """One pod as the failure report shows it."""
    status = pod.get("status") or {}
    ready = _condition(pod, "Ready")
    containers = [_container(s) for s in _statuses(pod)]
    # An unscheduled pod has no Ready condition and no container yet: the scheduler says why.
    scheduled = _condition(pod, "PodScheduled")
    unscheduled = scheduled if scheduled.get("status") == "False" else {}
    return {
        "name": (pod.get("metadata") or {}).get("name"), "phase": status.get("phase"),
        "ready": ready.get("status") == "True",
        "ready_reason": _short(" ".join(x for x in (ready.get("reason"), ready.get("message")) if x)) or None,
        "reason": status.get("reason") or unscheduled.get("reason"),
        "message": _short(status.get("message") or unscheduled.get("message")),
        "restarts": sum(c["restart_count"] for c in containers), "terminating": _terminating(pod),
        "containers": containers, "events": warning_events(events),
    }


def describe_pod(d: Dict_) -> str:
    """'web-1-0-0-x: Running, not ready (ContainersNotReady ...), container web running, restarts 0;
    events: Unhealthy: Readiness probe failed: ... (x7)'."""
    parts = ["%s: %s%s" % (d["name"], d["phase"], " (terminating)" if d["terminating"] else "")]
    parts.append("ready" if d["ready"] else "not ready" + (" (%s)" % d["ready_reason"] if d["ready_reason"] else ""))
    if d["reason"] or d["message"]:
        parts.append("pod %s" % ": ".join(x for x in (d["reason"], d["message"]) if x))
    for c in d["containers"]:
        text = "container %s %s" % (c["name"], c["state"])
        if c["reason"] or c["message"]:
            text += " %s" % ": ".join(x for x in (c["reason"], c["message"]) if x)
        if c["exit_code"] is not None:
            text += " (exit %s)" % c["exit_code"]
        if c["last_terminated"]:
            last = c["last_terminated"]
            text += ", last exit %s %s" % (last["exit_code"], last["reason"] or "")
        parts.append(text.rstrip())
    parts.append("restarts %d" % d["restarts"])
    text = ", ".join(parts)
    if d["events"]:
        times = [" (x%d)" % e["count"] if e["count"] > 1 else "" for e in d["events"]]
        text += "; events: " + " | ".join("%s: %s%s" % (e["reason"], e["message"], n)
                                          for e, n in zip(d["events"], times))
    return text


# -- the loops -------------------------------------------------------------------------
def wait_rollout(read_deployment: Callable[[], Dict_], list_pods: Callable[[], List[Dict_]],
                 list_events: Callable[[str], List[Dict_]], timeout: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
                 ) -> Optional[Dict_]:
    """None once the rollout is done; else a report {why, summary, deployment_reason, pods}.

    why is 'failed' (a reason that waiting does not cure, reported at once) or 'timeout'.
    """
    def check() -> Tuple[bool, Optional[Tuple[Dict_, str, List[Dict_], Optional[str], List[str]]]]:
        dep = read_deployment()
        done, summary = rollout(dep)
        if done:
            return True, None
        pods = list_pods()
        dep_reason, stuck = deployment_failure(dep), fast_failures(pods)
        return bool(dep_reason or stuck), (dep, summary, pods, dep_reason, stuck)

    dummy, state = wait_until(check, timeout, POLL_SECONDS, clock, sleep)
    if state is None:
        return None
    dep, summary, pods, dep_reason, stuck = state
    # Pods with trouble first; a report of many identical pods stays short.
    pods.sort(key=lambda p: (p["metadata"]["name"] not in stuck, _terminating(p), p["metadata"]["name"]))
    details = [pod_detail(p, list_events(p["metadata"]["name"])) for p in pods[:MAX_PODS_REPORTED]]
    return {"why": "failed" if (dep_reason or stuck) else "timeout", "summary": summary,
            "deployment_reason": dep_reason, "pods": details, "pod_count": len(pods)}


def wait_gone(list_pods: Callable[[], List[Dict_]], timeout: float,
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> List[str]:
    """Names of the pods still there after timeout (empty once all are gone)."""
    def check() -> Tuple[bool, List[str]]:
        names = sorted(p["metadata"]["name"] for p in list_pods())
        return not names, names
    return wait_until(check, timeout, POLL_SECONDS, clock, sleep)[1]


def failure_text(report: Dict_) -> str:
    """The reasons of a failed wait as one line for the error message."""
    parts = []
    if report.get("deployment_reason"):
        parts.append("Deployment: %s" % report["deployment_reason"])
    pods = report.get("pods") or []
    if pods:
        more = report.get("pod_count", len(pods)) - len(pods)
        parts.append("pods: " + " ;; ".join(describe_pod(d) for d in pods) +
                     (" ;; and %d more pod(s)" % more if more > 0 else ""))
    else:
        parts.append("no pod exists yet")
    return "; ".join(parts)
