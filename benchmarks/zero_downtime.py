"""Zero-downtime figures of blue-green + rollback beside a plain container recreate; JSON on stdout.

Real stack only: Docker engine, registry 127.0.0.1:5000, HAProxy, all on 127.0.0.1.

Load: tests/integration/net.py's Load class (Python threads, keep-alive GETs of /version
through an HAProxy frontend; each 200 body names the version that answered), subclassed
here only to also note when each version's last answered request was sent. Not wrk: Load
timestamps the first/last answer of every version, which the latencies below need.

Ours: the router role starts HAProxy for a fresh app on free ports; v1 is deployed with the
blue_green role (no load yet). Then, under load on the live frontend, one ansible-playbook
run deploys v2 (blue_green) and a second one rolls back to v1 (rollback role, v1 is warm).
The measured window is exactly those two runs (load counters are snapshotted at its
edges; the load also runs 1 s before and after, plus a one-task ansible-playbook run after
the window that gives Ansible's fixed cost under the same load: all reported as "whole_load").
Per-task seconds of the deploy and rollback runs (slowest first) show where the time goes.
Settings are the role defaults except the ones the integration tests use to keep runs
short: router health checks every 500ms with rise 1, container health check every 1 s,
watch after the switch 2 s (blue_green_watch_seconds).

Switch latency = time from the switch to the last answer of the old version. The switch
is timed two ways:
- runtime: a thread polls 'show servers state' on the HAProxy admin socket every ~2 ms
  and notes when the set of servers taking traffic (weight > 0, admin state ready)
  changes; the switch moment is the last poll before the new release first takes weight,
  so the figure is an upper bound (poll period + GIL scheduling, a few ms). The goal uses
  this. The module applies the switch as several runtime commands (new in, health re-read,
  old drained), so the JSON also gives how long old and new were both live and the time
  from the old release going out to its last answer (in-flight requests only).
- task: a tiny callback plugin (written to a temp dir) records the monotonic start time of
  the haproxy_backend task whose name starts with "Switch"; that adds Ansible's module
  start-up (AnsiballZ, interpreter) to the figure, so it is reported for information.
time.monotonic() is system-wide on Linux, so both processes share one clock.

Baseline (what users do today): one container of v1 published on a fixed 127.0.0.1 port,
then `docker stop` + `docker rm` + `docker run` of v2 on the same port. Fairest setup:
the same kind of HAProxy frontend (same defaults as the router's config: retries 3,
option redispatch, same timeouts, health checks every 500ms rise 1 fall 3) with one static
server at the fixed port, under the same load. HAProxy's retries hide part of the gap by
holding requests, so the baseline is also run with the load hitting the port directly
("baseline_direct", no proxy), which is what an app without a proxy sees.
Downtime window = first v2 answer - last v1 answer.

Goals (booleans in the JSON): ours 0 failed requests out of >= 20,000 in the window;
rollback of a warm release < 3 s for the whole ansible-playbook run; switch latency < 100 ms.
The rollback goal is judged twice: under the load (the load generator, HAProxy, the app and
Ansible share the two cores) and with no client load (3 more warm rollbacks after the load
stops, median), which is the situation of a controller and clients on other machines.

Run: .venv/bin/python benchmarks/zero_downtime.py [--threads N]  (after `make stack link`)
Everything created (router, containers labelled io.immutable-deploy.app=<app>, images,
registry manifests, temp dirs, the baseline HAProxy) is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402  (benchmarks/harness.py)
    REGISTRY, V1, V2, Ansible, FullLoad, WeightWatch, build_images, cleanup, delta, free_port, link_collection, ms,
    role, sh, split_errors, switch_task_start, task_durations, wait_version)


class TimedLoad(FullLoad):
    """Load that also notes when the request behind each version's last answer was sent.

    last_seen (answer received) includes the service time of requests already in flight,
    which a loaded 2-core machine stretches to hundreds of ms; last_sent tells whether
    HAProxy still routed a request to the old version after the switch.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.last_sent: Dict[str, float] = {}

    def _answer(self, sent: float, now: float, status: int, body: str) -> None:
        super()._answer(sent, now, status, body)
        if status == 200:
            self.last_sent[body] = max(sent, self.last_sent.get(body, 0))


def log(msg: str) -> None:
    print("[zero_downtime] " + msg, file=sys.stderr, flush=True)


def ours(ansible: Ansible, tmp: str, app: str, images: Dict[str, Dict[str, Any]], threads: int) -> Dict[str, Any]:
    state = os.path.join(tmp, "router")
    port, preview = free_port(), free_port()
    router_vars = {"router_app": app, "router_bind": "127.0.0.1:%d" % port,
                   "router_preview_bind": "127.0.0.1:%d" % preview, "router_state_dir": state,
                   "router_health_interval": "500ms", "router_health_rise": 1}
    bg_vars = {"blue_green_app": app, "blue_green_router_state_dir": state,
               "blue_green_router_bind": "127.0.0.1:%d" % port, "blue_green_router_preview_bind": "127.0.0.1:%d" % preview,
               "blue_green_lock_dir": os.path.join(tmp, "locks"), "blue_green_watch_seconds": 2,
               "blue_green_healthcheck": {"type": "http", "path": "/health", "interval": 1}}
    rb_vars = {"rollback_app": app, "rollback_router_state_dir": state, "rollback_router_bind": "127.0.0.1:%d" % port,
               "rollback_lock_dir": os.path.join(tmp, "locks")}

    ansible.router_vars = router_vars  # cleanup removes the router even when a later step fails
    log("router for %s on 127.0.0.1:%d" % (app, port))
    ansible.play("router", role("router", router_vars))
    log("deploy %s (no load yet)" % V1)
    first_wall, dummy = ansible.play("deploy-v1", role("blue_green", dict(bg_vars, blue_green_image=images[V1]["ref"])))
    wait_version(port, V1)

    watch = WeightWatch(os.path.join(state, "haproxy.sock"), app)
    watch.start()
    with TimedLoad(port, threads=threads) as load:
        time.sleep(1)
        before, t0 = load.snapshot(), time.monotonic()
        log("deploy %s under load (%d threads)" % (V2, threads))
        deploy_wall, deploy_tl = ansible.play("deploy-v2", role("blue_green", dict(bg_vars, blue_green_image=images[V2]["ref"])))
        t_mid = time.monotonic()
        with load._lock:  # pylint: disable=protected-access  # v1 answers again after the rollback
            last_v1_after_deploy = (load.last_seen.get(V1), load.last_sent.get(V1))
        log("rollback to %s under load" % V1)
        rollback_wall, rollback_tl = ansible.play("rollback", role("rollback", rb_vars))
        t1, after = time.monotonic(), load.snapshot()
        log("a one-task ansible-playbook run under the same load (Ansible's fixed cost)")
        noop_wall, dummy = ansible.play("noop", [{"name": "noop", "ansible.builtin.debug": {"msg": "noop"}}])
        time.sleep(1)
    watch.stop()
    whole = load.snapshot()
    # The same warm rollback with no client load: the router and the app idle, as when the
    # deploy controller and the clients are other machines. Each run goes back to the release
    # the previous one left (v2, v1, v2...), warm every time.
    log("3 warm rollbacks without client load")
    idle_walls = [ansible.play("rollback-idle-%d" % n, role("rollback", rb_vars))[0] for n in range(3)]
    with load._lock:  # pylint: disable=protected-access
        last_v2 = (load.last_seen.get(V2), load.last_sent.get(V2))
    window = delta(after, before)

    def switch(timeline, start, end, last) -> Dict[str, Any]:
        changes, task_t = watch.changes_between(start, end), switch_task_start(timeline)
        last_old, last_old_sent = last
        if not changes or last_old is None:
            return {"runtime_ms": None, "changes": len(changes)}
        # First change: the new release takes weight. Last change: the old one is out (drain).
        first, out = changes[0], changes[-1]
        return {"runtime_ms": ms(last_old - first[0]),
                "old_and_new_both_live_ms": ms(out[1] - first[0]),
                "last_old_answer_after_old_out_ms": ms(last_old - out[0]),
                "last_old_request_sent_after_old_out_ms": ms(last_old_sent - out[1]),
                "task_start_ms": ms(last_old - task_t) if task_t else None,
                "runtime_switch_after_task_start_ms": ms(first[0] - task_t) if task_t else None,
                "changes": len(changes)}

    figures = {
        "window_s": round(t1 - t0, 3),
        "requests": window["requests"],
        **split_errors(window["errors"]),
        "errors": window["errors"],
        "by_version": window["versions"],
        "whole_load": whole,
        "first_deploy_v1_wall_s": round(first_wall, 3),
        "deploy_wall_s": round(deploy_wall, 3),
        "rollback_wall_s": round(rollback_wall, 3),
        "rollback_without_client_load_wall_s": [round(w, 3) for w in idle_walls],
        "rollback_without_client_load_median_s": round(statistics.median(idle_walls), 3),
        "noop_playbook_wall_s": round(noop_wall, 3),
        "switch_latency": {"deploy": switch(deploy_tl, t0, t_mid, last_v1_after_deploy),
                           "rollback": switch(rollback_tl, t_mid, t1, last_v2)},
        "runtime_polls": watch.polls,
        "rollback_tasks_s": task_durations(rollback_tl),
        "deploy_tasks_s": task_durations(deploy_tl, top=8),
    }
    return figures


HAPROXY_CFG = """global
    maxconn 4096
    stats socket {dir}/haproxy.sock mode 600 level admin
defaults
    mode http
    option redispatch
    retries 3
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 30s
    timeout check 3s
    default-server inter 500ms rise 1 fall 3
frontend fe
    bind 127.0.0.1:{front}
    default_backend app
backend app
    balance roundrobin
    option httpchk GET /health
    server app 127.0.0.1:{fixed} check
"""


def baseline(tmp: str, app: str, images: Dict[str, Dict[str, Any]], threads: int, proxied: bool) -> Dict[str, Any]:
    fixed = free_port()
    name = "%s-baseline" % app
    run = ["docker", "run", "-d", "--name", name, "--label", "io.immutable-deploy.app=%s" % app,
           "-p", "127.0.0.1:%d:8080" % fixed]
    sh(*run, images[V1]["ref"])
    pidfile, target = None, fixed
    if proxied:
        hdir = os.path.join(tmp, "baseline-haproxy")
        os.makedirs(hdir, exist_ok=True)
        target = free_port()
        with open(os.path.join(hdir, "haproxy.cfg"), "w", encoding="utf-8") as handle:
            handle.write(HAPROXY_CFG.format(dir=hdir, front=target, fixed=fixed))
        pidfile = os.path.join(hdir, "haproxy.pid")
        sh("/usr/sbin/haproxy", "-f", os.path.join(hdir, "haproxy.cfg"), "-D", "-p", pidfile)
    try:
        wait_version(target, V1)
        time.sleep(1 if proxied else 0.2)  # let the health check see the server up
        with FullLoad(target, threads=threads) as load:
            time.sleep(1)
            before, t0 = load.snapshot(), time.monotonic()
            log("baseline (%s): docker stop + rm + run %s under load" % ("haproxy" if proxied else "direct", V2))
            sh("docker", "stop", name)
            sh("docker", "rm", name)
            sh(*run, images[V2]["ref"])
            t_swap = time.monotonic()
            deadline = t_swap + 30
            while V2 not in load.first_seen and time.monotonic() < deadline:
                time.sleep(0.01)
            t1, after = time.monotonic(), load.snapshot()
            time.sleep(1)
        window = delta(after, before)
        first_v2, last_v1 = load.first_seen.get(V2), load.last_seen.get(V1)
        return {
            "load_target": "haproxy frontend -> one static server" if proxied else "container port directly",
            "window_s": round(t1 - t0, 3),
            "requests": window["requests"],
            **split_errors(window["errors"]),
            "errors": window["errors"],
            "by_version": window["versions"],
            "whole_load": load.snapshot(),
            "swap_wall_s": round(t_swap - t0, 3),
            "downtime_ms": ms(first_v2 - last_v1) if first_v2 and last_v1 else None,
        }
    finally:
        if pidfile and os.path.exists(pidfile):
            with open(pidfile, encoding="utf-8") as handle:
                os.kill(int(handle.read().split()[0]), signal.SIGTERM)
        subprocess.run(["docker", "rm", "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8, help="load threads (keep-alive connections)")
    opts = parser.parse_args()
    link_collection()
    uid = uuid.uuid4().hex[:8]
    app, repo = "zd-%s" % uid, "%s/bench-zd-%s/app" % (REGISTRY, uid)
    tmp = tempfile.mkdtemp(prefix="zd-")
    ansible = Ansible(tmp)
    try:
        log("build and push %s and %s to %s" % (V1, V2, repo))
        images = build_images(tmp, repo)
        result: Dict[str, Any] = {"loadavg_1m_at_start": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
                                  "load": "tests/integration/net.py Load, %d threads, GET /version keep-alive" % opts.threads,
                                  "images": {v: i["ref"] for v, i in images.items()}}
        result["ours"] = ours(ansible, tmp, app, images, opts.threads)
        result["baseline_haproxy"] = baseline(tmp, app, images, opts.threads, proxied=True)
        result["baseline_direct"] = baseline(tmp, app, images, opts.threads, proxied=False)
        o, sw = result["ours"], result["ours"]["switch_latency"]
        worst = [v for v in (sw["deploy"]["runtime_ms"], sw["rollback"]["runtime_ms"]) if v is not None]
        result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
        result["goals"] = {
            "ours_zero_failed_of_20000": o["requests"] >= 20000 and o["non_2xx"] + o["socket_errors"] == 0,
            "rollback_warm_under_3s": o["rollback_wall_s"] < 3,
            "rollback_warm_under_3s_without_client_load": o["rollback_without_client_load_median_s"] < 3,
            "switch_latency_under_100ms": len(worst) == 2 and max(worst) < 100,
        }
    finally:
        log("cleanup")
        cleanup(ansible, app, repo)
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
