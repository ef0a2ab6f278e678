"""Exposure to a bad canary: failed requests, time to abort, time until stable serves all; JSON on stdout.

Real stack only: Docker engine, registry 127.0.0.1:5000, HAProxy, all on 127.0.0.1. Same approach and
helpers from benchmarks/harness.py (Ansible runner with a task-timeline callback, runtime API poller,
cleanup), imported from it.

Images: v1 (1.0.0, good) and v2 (2.0.0, bad), each the sample app plus a busybox CGI /cgi-bin/flaky as in
tests/integration/test_canary.py: the good one answers 200 with its version; the bad one answers 500 with
body "boom" to about half the requests and 200 with its version to the rest. So every answer tells which
release served it: body 1.0.0 = stable, body 2.0.0 or a 500 "boom" = canary.

Scenario: the router role starts HAProxy for a fresh app on free ports (health checks every 500ms, rise 1)
and v1 is deployed with the blue_green role, with no load. Then, under load on the live frontend
(GET /cgi-bin/flaky, keep-alive, net.py Load subclassed to note every answer's send/receive time and
body), ONE ansible-playbook run starts a canary of v2 with canary_steps [{weight: 5}, {weight: 100}] and
canary_analysis {interval: S, count: 1, metrics: [haproxy error_ratio, min_requests 20, "result <= 0.01"]}.
The analysis must fail and the role must abort. The role is wrapped in block/rescue so the run ends rc 0
and the rescue writes the failure message and the verdict to a file; "aborted" in the JSON is read from
there (and from HAProxy), the wall time includes that one extra task (a few tens of ms).
With --abort-by both (the default) that canary run is done twice on the same router and stable: first
with canary_abort_from_analysis false (the role's abort task writes the weights, the earlier path), then
with the role's default (release_analysis writes them itself, in the process that decided). Each run's
figures are under canary_abort_by_role / canary_abort_by_analysis.

Decision to weight 0 (decision_to_weight0): the verdict's moment is decided_at from release_analysis'
result (CLOCK_MONOTONIC of the module's process); weight 0 is seen from outside by the runtime poller below
(external_upper_ms = first poll without canary weight - decided_at; external_lower_ms = last poll with it -
decided_at). module_latency_ms is the module's own figure (decision to HAProxy having answered the write).
Canary answers after the decision are counted from the load's events: requests sent after decided_at that
the canary still answered (the exposure the abort latency causes), answers received after it (adds the
requests in flight at the decision), and requests sent after the weight-0 write that the canary answered
(should be 0).

Timing: time.monotonic() is system-wide, so the load threads, the poller and Ansible share one clock.
- A thread polls 'show servers state' every ~2 ms and notes each change of the set of (server, weight)
  taking traffic (weight > 0, ready). The canary slot is the one stable is not in. "weight set" = the
  last poll before the canary first has weight (step 0's 5%), "abort" = the first poll that sees its
  weight back at 0 (the abort task's first runtime command); both bounds are within one poll (a few ms).
- Canary start is given two ways: the start of the canary's docker_release task (callback timeline),
  and the first answer the load got from the canary. The abort goal counts from "weight set", which is
  when the canary started receiving traffic.
- Stable serves 100% again = the receive time of the last canary answer the load saw.

Goals (booleans in the JSON):
- failed share of all requests during the canary run <= step weight (5%) x the canary's own measured
  failure rate + 0.5 percentage point; also reported for the exposure window alone (requests sent between
  weight set and abort), which is the stricter reading;
- abort within one analysis interval + 2 s of the weight set;
- decision to weight 0 under 100 ms, seen from outside (external_upper_ms), for the analysis' own abort.

Run: .venv/bin/python benchmarks/canary_exposure.py [--threads N] [--interval S] [--abort-by analysis|role|both]
(after `make stack link`)
Everything created (router, containers labelled io.immutable-deploy.app=<app>, images, registry manifests,
temp dirs) is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (benchmarks/harness.py)
from harness import (  # noqa: E402
    V1, V2, Ansible, FullLoad, cleanup, free_port, link_collection, ms, role, short, task_durations, wait_version)

BAD = V2
STEP_WEIGHT = 5
FLAKY = "/cgi-bin/flaky"
# The CGIs of tests/integration/test_canary.py (not imported: that module pulls in pytest fixtures).
# busybox httpd passes a CGI answer starting with "HTTP/" through as is.
GOOD_CGI = '#!/bin/sh\nprintf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\n%s\\n" "$(cat /www/version)"\n'
BAD_CGI = ('#!/bin/sh\nif [ $((RANDOM % 2)) -eq 0 ]; then printf "HTTP/1.0 500 Internal Server Error\\r\\n'
           'Content-Type: text/plain\\r\\n\\r\\nboom\\n"; else printf "HTTP/1.0 200 OK\\r\\nContent-Type: text/plain'
           '\\r\\n\\r\\n%s\\n" "$(cat /www/version)"; fi\n')
BOOM = "status 500: boom"


def log(msg: str) -> None:
    print("[canary_exposure] " + msg, file=sys.stderr, flush=True)


class EventLoad(FullLoad):
    """Load that keeps every answer as (sent, received, label).

    label: the body of a 200 (the version), "status <code>: <body>" for other answers, "error <Exception>"
    for socket errors. Windows are then cut exactly by time instead of by snapshots.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events: List[Tuple[float, float, str]] = []

    def _answer(self, sent: float, now: float, status: int, body: str) -> None:
        super()._answer(sent, now, status, body)
        self.events.append((sent, now, body if status == 200 else "status %d: %s" % (status, body[:40])))

    def _failure(self, sent: float, now: float, error: str) -> None:
        super()._failure(sent, now, error)
        self.events.append((sent, now, "error " + error))


class ServerWatch(harness.WeightWatch):
    """zero_downtime's poller, but a change is any change of (server, weight) among servers taking traffic."""

    def live_set(self) -> frozenset:
        from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import admin_to_state, parse_servers_state
        rows = parse_servers_state(self.runtime.raw("show servers state %s" % self.backend))
        return frozenset((r["srv_name"], int(r["srv_uweight"])) for r in rows
                         if r.get("srv_uweight", "0").isdigit() and int(r["srv_uweight"]) > 0
                         and admin_to_state(int(r.get("srv_admin_state", "1"))) == "ready")


def slot_of(server: str) -> str:
    return server.rstrip("0123456789")


def build_images(tmp: str, repo: str) -> Dict[str, str]:
    """Good v1 and bad v2, built and pushed like zero_downtime.build_images, plus the flaky CGI."""
    from ansible_collections.immutable.deploy.plugins.module_utils.images.reference import DEFAULT_MOVING_TAGS
    from ansible_collections.immutable.deploy.plugins.module_utils.images.build import build
    refs = {}
    for version, cgi in ((V1, GOOD_CGI), (BAD, BAD_CGI)):
        context = os.path.join(tmp, "ctx-" + version)
        harness.sh(os.path.join(harness.ROOT, "scripts", "sample_app.sh"), context, version)
        script = os.path.join(context, "www", "cgi-bin", "flaky")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(cgi)
        os.chmod(script, 0o755)
        params = dict(name=repo, version=version, path=context, dockerfile="Dockerfile", build_args={}, target=None,
                      labels={}, revision=None, source=None, pull=False, push=True, docker_host=None,
                      docker_timeout=120, registry_username=None, registry_password=None, registry_scheme="auto",
                      validate_certs=True, moving_tags=list(DEFAULT_MOVING_TAGS))
        refs[version] = "%s:%s@%s" % (repo, version, build(params, False)["image"]["digest"])
    return refs


def tally(events: List[Tuple[float, float, str]]) -> Dict[str, Any]:
    """Requests, failures and the canary's own failure rate among these answers."""
    failed = [e for e in events if e[2] != V1 and e[2] != BAD]
    canary_ok = sum(1 for e in events if e[2] == BAD)
    canary_failed = sum(1 for e in events if e[2] == BOOM)
    by_label: Dict[str, int] = {}
    for event in events:
        by_label[event[2]] = by_label.get(event[2], 0) + 1
    total = len(events)
    return {"requests": total, "failed": len(failed),
            "non_2xx": sum(1 for e in failed if e[2].startswith("status ")),
            "socket_errors": sum(1 for e in failed if e[2].startswith("error ")),
            "failed_share": round(len(failed) / total, 5) if total else None,
            "stable_answers": by_label.get(V1, 0), "canary_answers": canary_ok + canary_failed,
            "canary_failed": canary_failed,
            "failures_not_from_canary": len(failed) - canary_failed,
            "by_answer": by_label}


def canary_tasks(tl: List[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """Monotonic start times of the canary run's landmark tasks."""
    def start(prefix: str, action: str) -> Optional[float]:
        return next((r["t"] for r in tl if r["event"] == "start" and short(r["task"]).startswith(prefix)
                     and r["action"].endswith(action)), None)
    analysis_end = next((r["t"] for r in tl if r["event"] in ("ok", "failed")
                         and r["action"].endswith("release_analysis")), None)
    return {"docker_release": start("Start ", "docker_release"), "weight": start("Send ", "haproxy_backend"),
            "analysis": start("Analyse", "release_analysis"), "analysis_end": analysis_end,
            "abort": start("Give stable", "haproxy_backend")}


def setup(ansible: Ansible, tmp: str, app: str, images: Dict[str, str]) -> Dict[str, Any]:
    """Router for a fresh app and the good v1 deployed as stable (no load)."""
    state = os.path.join(tmp, "router")
    port, preview = free_port(), free_port()
    router_vars = {"router_app": app, "router_bind": "127.0.0.1:%d" % port,
                   "router_preview_bind": "127.0.0.1:%d" % preview, "router_state_dir": state,
                   "router_health_interval": "500ms", "router_health_rise": 1}
    bg_vars = {"blue_green_app": app, "blue_green_router_state_dir": state, "blue_green_image": images[V1],
               "blue_green_router_bind": "127.0.0.1:%d" % port, "blue_green_router_preview_bind": "127.0.0.1:%d" % preview,
               "blue_green_lock_dir": os.path.join(tmp, "locks"), "blue_green_watch_seconds": 2,
               "blue_green_healthcheck": {"type": "http", "path": "/health", "interval": 1}}
    ansible.router_vars = router_vars  # cleanup removes the router even when a later step fails
    log("router for %s on 127.0.0.1:%d" % (app, port))
    ansible.play("router", role("router", router_vars))
    log("deploy %s (good, stable; no load yet)" % V1)
    ansible.play("deploy-v1", role("blue_green", bg_vars))
    wait_version(port, V1)
    return {"app": app, "state": state, "port": port, "preview": preview}


def scenario(ansible: Ansible, tmp: str, ctx: Dict[str, Any], images: Dict[str, str], threads: int,
             interval: float, mode: str) -> Dict[str, Any]:
    """One canary run of the bad v2 under load; mode 'analysis' (the analysis writes the abort the moment
    it decides, canary_abort_from_analysis) or 'role' (the role's abort task does, the earlier path)."""
    app, state = ctx["app"], ctx["state"]
    canary_vars = {"canary_app": app, "canary_image": images[BAD], "canary_router_state_dir": state,
                   "canary_router_preview_bind": "127.0.0.1:%d" % ctx["preview"], "canary_lock_dir": os.path.join(tmp, "locks"),
                   "canary_healthcheck": {"type": "http", "path": "/health", "interval": 1},
                   "canary_steps": [{"weight": STEP_WEIGHT}, {"weight": 100}],
                   "canary_abort_from_analysis": mode == "analysis",
                   "canary_analysis": {"interval": interval, "count": 1, "metrics": [
                       {"name": "error-ratio", "provider": "haproxy", "query": "error_ratio", "min_requests": 20,
                        "success": "result <= 0.01"}]}}
    outcome_file = os.path.join(tmp, "canary-outcome-%s.json" % mode)
    canary_play = [{"name": "canary", "block": role("canary", canary_vars), "rescue": [
        {"name": "Record why the canary run failed", "ansible.builtin.copy": {"dest": outcome_file, "content": (
            "{{ {'failed_task': ansible_failed_task.name, 'msg': ansible_failed_result.msg | default(''),"
            " 'canary_result': canary_result | default(none), 'verdict': canary_verdict | default(none)} | to_json }}")}}]}]

    watch = ServerWatch(os.path.join(state, "haproxy.sock"), app)
    stable_slots = {slot_of(name) for name, dummy in watch.live_set()}
    watch.start()
    with EventLoad(ctx["port"], path=FLAKY, threads=threads) as load:
        time.sleep(1)
        t0 = time.monotonic()
        log("[%s] canary of %s (bad) under load (%d threads, %s), analysis interval %s s" % (mode, BAD, threads, FLAKY, interval))
        wall, tl = ansible.play("canary-" + mode, canary_play)
        t1 = time.monotonic()
        time.sleep(1)
    watch.stop()
    events = sorted(load.events, key=lambda e: e[1])

    def canary_weight(seen: frozenset) -> int:
        return sum(weight for name, weight in seen if slot_of(name) not in stable_slots)

    changes = watch.changes_between(t0, t1)
    on = next((c for c in changes if canary_weight(c[2]) > 0), None)
    off = next((c for c in changes if on and c[1] > on[1] and canary_weight(c[2]) == 0), None)
    weight_set = on[0] if on else None  # last poll without canary weight: the earliest it can have been set
    abort = off[1] if off else None  # first poll with the canary back at 0
    canary_events = [e for e in events if e[2] in (BAD, BOOM)]
    first_canary = canary_events[0][1] if canary_events else None
    last_canary = canary_events[-1][1] if canary_events else None
    tasks = canary_tasks(tl)

    outcome: Dict[str, Any] = {}
    if os.path.exists(outcome_file):
        with open(outcome_file, encoding="utf-8") as handle:
            outcome = json.load(handle)
    verdict = outcome.get("verdict") or {}
    written = verdict.get("abort") or {}
    # The verdict's moment from the module's own result (CLOCK_MONOTONIC is system-wide, so it
    # compares with this process' polls and load timestamps).
    decided = verdict.get("decided_at")
    whole = tally(events)
    run_window = tally([e for e in events if t0 <= e[1] <= t1])
    exposure = tally([e for e in events if weight_set and abort and weight_set <= e[0] <= abort])
    rate = whole["canary_failed"] / whole["canary_answers"] if whole["canary_answers"] else None
    bound = STEP_WEIGHT / 100.0 * rate + 0.005 if rate is not None else None

    def since(start: Optional[float], end: Optional[float]) -> Optional[float]:
        return round(end - start, 3) if start is not None and end is not None else None

    def after(moment: Optional[float], index: int) -> Optional[int]:
        """Canary answers whose request was sent (index 0) or answered (index 1) after moment."""
        return sum(1 for e in canary_events if e[index] > moment) if moment is not None else None

    deciding = ((verdict.get("measurements") or [{}])[-1].get("metrics") or {}).get("error-ratio") or {}
    return {
        "abort_by": mode,
        "aborted": bool(outcome) and (outcome.get("canary_result") or {}).get("outcome") == "aborted",
        "abort_message": outcome.get("msg"),
        "analysis": {"verdict": verdict.get("verdict"), "reason": verdict.get("reason"),
                     "elapsed_s": verdict.get("elapsed"),
                     "measured": [r.get("metrics") for r in verdict.get("measurements") or []]},
        "decision_to_weight0": {
            "how": ("decided_at from the module result; weight 0 seen from outside by polling the runtime API "
                    "(between the last poll with canary weight and the first without it)"),
            "external_upper_ms": ms(off[1] - decided) if off and decided is not None else None,
            "external_lower_ms": ms(off[0] - decided) if off and decided is not None else None,
            "module_latency_ms": written.get("latency_ms"),  # decision -> HAProxy answered the write, same process
            "written_by_analysis": bool(written.get("written")),
            "commands_written": len(written.get("commands") or []) if written.get("written") else 0,
            "poll_bound_ms": ms(off[1] - off[0]) if off else None,
            "canary_requests_that_decided": deciding.get("requests"),
            "canary_answers_to_requests_sent_after_decision": after(decided, 0),
            "canary_answers_received_after_decision": after(decided, 1),
            "canary_answers_to_requests_sent_after_weight0": after(written.get("written_at") or (off[1] if off else None), 0),
            "decision_to_last_canary_answer_ms": ms(last_canary - decided) if last_canary and decided is not None else None,
            "decision_to_abort_task_start_ms": ms(tasks["abort"] - decided) if tasks["abort"] and decided is not None else None,
        },
        "canary_run_wall_s": round(wall, 3),
        "requests_during_canary_run": run_window,
        "requests_during_exposure": dict(exposure, window="requests sent between weight set and abort"),
        "whole_load": {k: whole[k] for k in ("requests", "failed", "canary_answers", "canary_failed")},
        "canary_failure_rate": round(rate, 4) if rate is not None else None,
        "failed_share_bound": round(bound, 5) if bound is not None else None,
        "timing_s": {
            "reference": "canary_weight_set = last runtime poll before the canary took weight (step 0, %d%%)" % STEP_WEIGHT,
            "canary_docker_release_start_to_weight_set": since(tasks["docker_release"], weight_set),
            "first_canary_answer_after_weight_set": since(weight_set, first_canary),
            "abort_after_weight_set": since(weight_set, abort),
            "abort_after_docker_release_start": since(tasks["docker_release"], abort),
            "abort_after_first_canary_answer": since(first_canary, abort),
            "last_canary_answer_after_abort": since(abort, last_canary),
            "stable_100pct_after_weight_set": since(weight_set, last_canary),
            "stable_100pct_after_docker_release_start": since(tasks["docker_release"], last_canary),
            # where the abort time goes (task starts from the callback timeline)
            "weight_task_start_to_weight_set": since(tasks["weight"], weight_set),
            "weight_set_to_analysis_task_start": since(weight_set, tasks["analysis"]),
            "analysis_task": since(tasks["analysis"], tasks["analysis_end"]),
            "analysis_end_to_abort_task_start": since(tasks["analysis_end"], tasks["abort"]),
            "abort_task_start_to_abort": since(tasks["abort"], abort),
        },
        "runtime_changes": [{"t_s": round(c[1] - t0, 3), "canary_weight": canary_weight(c[2])} for c in changes],
        "runtime_polls": watch.polls,
        "poll_bound_ms": {"weight_set": ms(on[1] - on[0]) if on else None, "abort": ms(off[1] - off[0]) if off else None},
        "canary_tasks_s": task_durations(tl, top=10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8, help="load threads (keep-alive connections)")
    parser.add_argument("--interval", type=float, default=5, help="canary_analysis interval in seconds")
    parser.add_argument("--abort-by", choices=["analysis", "role", "both"], default="both",
                        help="who writes the abort: the analysis when it decides (the default of the role), the role's "
                             "abort task (canary_abort_from_analysis: false), or one run of each on the same router")
    opts = parser.parse_args()
    link_collection()
    uid = uuid.uuid4().hex[:8]
    app, repo = "ce-%s" % uid, "%s/bench-ce-%s/app" % (harness.REGISTRY, uid)
    tmp = tempfile.mkdtemp(prefix="ce-")
    ansible = Ansible(tmp)
    modes = ["role", "analysis"] if opts.abort_by == "both" else [opts.abort_by]
    result: Dict[str, Any] = {"loadavg_at_start": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}
    try:
        log("build and push %s (good) and %s (bad) to %s" % (V1, BAD, repo))
        images = build_images(tmp, repo)
        result.update({"load": "tests/integration/net.py Load, %d threads, GET %s keep-alive" % (opts.threads, FLAKY),
                       "images": images, "canary_steps": [STEP_WEIGHT, 100], "analysis_interval_s": opts.interval})
        ctx = setup(ansible, tmp, app, images)
        for mode in modes:
            result["canary_abort_by_" + mode] = figures = scenario(ansible, tmp, ctx, images, opts.threads, opts.interval, mode)
            share, bound = figures["requests_during_canary_run"]["failed_share"], figures["failed_share_bound"]
            exposed = figures["requests_during_exposure"]["failed_share"]
            abort_s = figures["timing_s"]["abort_after_weight_set"]
            latency = figures["decision_to_weight0"]["external_upper_ms"]
            figures["goals"] = {
                "aborted": figures["aborted"],
                "failed_share_within_bound": share is not None and bound is not None and share <= bound,
                "failed_share_within_bound_exposure_window": exposed is not None and bound is not None and exposed <= bound,
                "abort_within_interval_plus_2s": abort_s is not None and abort_s <= opts.interval + 2,
                "decision_to_weight0_under_100ms": latency is not None and latency < 100,
            }
        result["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
        if "analysis" in modes:
            result["goals"] = result["canary_abort_by_analysis"]["goals"]
    finally:
        log("cleanup")
        cleanup(ansible, app, repo)
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
