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
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REGISTRY, free_port  # noqa: E402  (benchmarks/harness.py; puts tests/integration on sys.path)
from conftest import run_playbook  # noqa: E402
from engine import PrivateEngine, restart_under_load  # noqa: E402
from images import remove_repos, sample_context  # noqa: E402
from test_engine_restart import deploy, info, rollback  # noqa: E402


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
        rounds = [restart_under_load(engine, env["port"], "1.0.0") for dummy in range(args.rounds)]
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
