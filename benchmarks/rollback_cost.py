"""What a warm rollback costs above Ansible's own floor; JSON on stdout.

Side by side, alternating in one run on an idle machine (no client load): the whole
`ansible-playbook playbooks/rollback.yml` run of a warm rollback (one docker_switch module
run: lock, read the releases and the router, switch, unlock) and a one-task playbook running
`ansible.builtin.ping`, which is the floor every playbook pays (start-up, inventory, one
AnsiballZ module). Also the module's own time split, from the timeline callback: how long the
docker_switch task took against the ping task. Goal: the rollback within 0.5 s of the floor.

Run: .venv/bin/python benchmarks/rollback_cost.py [--rounds N]  (after `make stack link`)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402  (benchmarks/harness.py)
    REGISTRY, ROOT, V1, V2, Ansible, build_images, cleanup, free_port, link_collection, log, role, wait_version)


def task_seconds(timeline: List[Dict[str, Any]], action: str) -> float:
    start = next(e["t"] for e in timeline if e["action"] == action and e["event"] == "start")
    end = next(e["t"] for e in timeline if e["action"] == action and e["event"] in ("ok", "failed"))
    return end - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    link_collection()
    uid = uuid.uuid4().hex[:8]
    app, repo = "rc-%s" % uid, "%s/bench-rc-%s/app" % (REGISTRY, uid)
    tmp = tempfile.mkdtemp(prefix="rc-")
    ansible = Ansible(tmp)
    try:
        images = build_images(tmp, repo)
        state, port, preview = os.path.join(tmp, "router"), free_port(), free_port()
        ansible.router_vars = {"router_app": app, "router_bind": "127.0.0.1:%d" % port,
                               "router_preview_bind": "127.0.0.1:%d" % preview, "router_state_dir": state,
                               "router_health_interval": "500ms", "router_health_rise": 1}
        ansible.play("router", role("router", ansible.router_vars))
        bg = {"blue_green_app": app, "blue_green_router_state_dir": state, "blue_green_router_bind": "127.0.0.1:%d" % port,
              "blue_green_router_preview_bind": "127.0.0.1:%d" % preview, "blue_green_watch_seconds": 1,
              "blue_green_lock_dir": os.path.join(tmp, "locks"),
              "blue_green_healthcheck": {"type": "http", "path": "/health", "interval": 1}}
        for version in (V1, V2):
            ansible.play("deploy-" + version, role("blue_green", dict(bg, blue_green_image=images[version]["ref"])))
        wait_version(port, V2)
        rollback_vars = {"rollback_app": app, "rollback_router_state_dir": state, "rollback_watch_seconds": 0,
                         "rollback_router_bind": "127.0.0.1:%d" % port, "rollback_lock_dir": os.path.join(tmp, "locks")}
        ping, rollback, module = [], [], []
        for dummy in range(opts.rounds):
            wall, dummy_timeline = ansible.play("ping", [{"name": "ping", "ansible.builtin.ping": {}}])
            ping.append(wall)
            wall, timeline = ansible.playbook("rollback", os.path.join(ROOT, "playbooks", "rollback.yml"), rollback_vars)
            rollback.append(wall)
            module.append(task_seconds(timeline, "immutable.deploy.docker_switch"))
        floor, cost = statistics.median(ping), statistics.median(rollback)
        print(json.dumps({
            "rounds": opts.rounds, "loadavg_1m": round(os.getloadavg()[0], 2),
            "ping_playbook_s": [round(x, 2) for x in ping], "rollback_playbook_s": [round(x, 2) for x in rollback],
            "docker_switch_task_s": [round(x, 2) for x in module],
            "median_ping_s": round(floor, 2), "median_rollback_s": round(cost, 2),
            "rollback_above_floor_s": round(cost - floor, 2),
            "goal_within_0_5s_of_floor": cost - floor <= 0.5,
        }, indent=2))
    finally:
        log("cleanup", "rollback_cost")
        cleanup(ansible, app, repo)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
