"""What an engine restart costs a blue-green app behind HAProxy; JSON on stdout.

A private dockerd (tests/integration/engine.py, so the shared engine is untouched) runs an app
with 1.0.0 live and 2.0.0 warm, 2 replicas each, behind the router role's HAProxy. Under load
on the live frontend (tests/integration/net.py's Load, paced), the engine is stopped (SIGTERM:
dockerd stops the containers, as a package upgrade or a shutdown does) and started again,
`--rounds` times. Per round: how long the engine was down, how long nothing answered
(last answer before to first answer after), how long after the engine answered again the live
release answered, failed requests, and answers by version (any answer of the warm release
would be traffic on the wrong release). No Ansible run happens between the restarts.

Run: .venv/bin/python benchmarks/engine_restart.py [--rounds N]  (after `make stack link`)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REGISTRY, free_port  # noqa: E402  (benchmarks/harness.py; puts tests/integration on sys.path)
from conftest import run_playbook  # noqa: E402
from engine import PrivateEngine  # noqa: E402
from images import remove_repos, sample_context  # noqa: E402
from test_engine_restart import Timeline, deploy, info, rollback  # noqa: E402


def restart_once(engine: PrivateEngine, port: int) -> Dict[str, Any]:
    with Timeline(port) as load:
        time.sleep(1)
        stopped_at = time.monotonic()
        engine.stop()
        engine.start()
        started_at = time.monotonic()
        deadline = started_at + 60
        while load.last_seen.get("1.0.0", 0) < started_at and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
    last_before = max(t for t, v in load.events if v and t < stopped_at)
    first_after = min((t for t, v in load.events if v and t > started_at), default=None)
    return {"engine_down_s": round(started_at - stopped_at, 2),
            "no_answer_s": round(first_after - last_before, 2) if first_after else None,
            "live_again_after_engine_start_s": round(first_after - started_at, 2) if first_after else None,
            "failed_requests": sum(load.errors.values()), "answers": dict(load.versions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live-restore", action="store_true",
                        help="start the engine with --live-restore (containers keep running while it is down)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="engine-restart-"))

    def play(tasks, **kw):
        return run_playbook(tasks, tmp, **kw)
    app, repo = "er-%s" % os.urandom(4).hex(), "%s/bench-restart-%s/app" % (REGISTRY, os.urandom(4).hex())
    env = {"app": app, "port": free_port(), "preview": free_port(), "state_dir": str(tmp / "router"),
           "lock_dir": str(tmp / "locks")}
    router = {"router_app": app, "router_bind": "127.0.0.1:%d" % env["port"],
              "router_preview_bind": "127.0.0.1:%d" % env["preview"], "router_state_dir": env["state_dir"],
              "router_health_interval": "500ms", "router_health_rise": 1, "router_health_path": "/health"}
    engine = PrivateEngine(live_restore=args.live_restore)
    try:
        run = play([{"name": v, "immutable.deploy.image_build": {
            "name": repo, "version": v, "path": sample_context(tmp / v, v), "push": True}} for v in ("1.0.0", "2.0.0")]
            + [{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"}, "vars": router}])
        assert run.rc == 0, run.stdout[-3000:]
        images = {v: "%s:%s@%s" % (repo, v, run.result(v)["image"]["digest"]) for v in ("1.0.0", "2.0.0")}
        engine.start()
        for image in (images["1.0.0"], images["2.0.0"]):
            assert deploy(play, env, image, engine).rc == 0
        assert rollback(play, env, engine).rc == 0  # 1.0.0 live, 2.0.0 warm: the state `make demo` leaves
        rounds = [restart_once(engine, env["port"]) for dummy in range(args.rounds)]
        after = info(play, env, engine)
        print(json.dumps({
            "live_restore": args.live_restore, "rounds": rounds,
            "median_no_answer_s": statistics.median(r["no_answer_s"] or 0 for r in rounds),
            "median_live_again_after_engine_start_s": statistics.median(
                r["live_again_after_engine_start_s"] or 0 for r in rounds),
            "wrong_release_answers": sum(n for r in rounds for v, n in r["answers"].items() if v != "1.0.0"),
            "live_after": [r["id"] for r in after["releases"] if r.get("live")],
            "router_mismatches_after": len(after["router_mismatches"]),
        }, indent=2))
    finally:
        engine.destroy()
        play([{"name": "router", "ansible.builtin.include_role": {"name": "immutable.deploy.router"},
               "vars": dict(router, router_state="absent")}])
        remove_repos([repo])


if __name__ == "__main__":
    main()
