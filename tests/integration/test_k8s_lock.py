"""The deploy lock on Kubernetes is the app's Lease, shared by every controller, on the real cluster.

Two rollbacks started together (two ansible-playbook processes, two lock tokens: two controllers)
give exactly one Service write and one clear "locked by" failure. A run killed with SIGKILL keeps
the lock only until its lease expires; the next run takes it over without break_lock.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from typing import Any, Dict, List, Optional

import yaml

from conftest import BIN, HERE, ROOT, kubectl
from test_k8s_canary_gates import ServiceWatch
from test_k8s_roles import RELEASE, bg, releases, role, selector


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def lease(ns: str, app: str) -> Optional[Dict[str, Any]]:
    out = kubectl("get", "lease", "%s-deploy-lock" % app, "-n", ns, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def start_role(tmp_path, name: str, values: Dict[str, Any]) -> subprocess.Popen:
    """ansible-playbook running one role in its own session (so the test can SIGKILL all of it)."""
    playbook = str(tmp_path / ("killed-%s.yml" % uuid.uuid4().hex[:8]))
    with open(playbook, "w", encoding="utf-8") as handle:
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                         "tasks": [{"name": "role", "ansible.builtin.include_role": {"name": "immutable.deploy." + name},
                                    "vars": values}]}], handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".build", "collections"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    return subprocess.Popen([os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(HERE, "inventory.ini"), playbook],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def switch_result(run) -> Dict[str, Any]:
    rows = [r for r in run.rows if r["action"] == "immutable.deploy.k8s_switch"]
    assert rows, run.stdout[-3000:]
    return rows[-1]["result"]


def test_two_concurrent_rollbacks_one_write_and_a_killed_runs_lock_expires(
        play, kubeconfig, k8s_namespace, k8s_images, uid, tmp_path):
    ns, app = k8s_namespace, "klk-%s" % uid
    for version in ("1.0.0", "2.0.0"):
        run = bg(play, ns, app, k8s_images[version], tmp_path, blue_green_release=version, blue_green_replicas=2,
                 blue_green_watch_seconds=0)
        assert run.rc == 0, run.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "2.0.0"
    # 1.0.0 cold (0 replicas, its full size kept): the winner holds the lock while 1.0.0 starts again.
    kubectl("scale", "deployment", "%s-1-0-0" % app, "-n", ns, "--replicas=0")

    runs: List[Any] = [None, None]

    def rollback(index: int) -> None:
        runs[index] = role(play, "rollback", "rollback", ns, rollback_app=app)

    with ServiceWatch(kubeconfig, ns, app) as service:
        threads = [threading.Thread(target=rollback, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
    assert sorted(r.rc == 0 for r in runs) == [False, True], [r.stdout[-2000:] for r in runs]
    winner, loser = (runs[0], runs[1]) if runs[0].rc == 0 else (runs[1], runs[0])
    assert switch_result(winner)["restored"] == {"release": "1.0.0", "replicas_before": 0, "replicas": 2}
    failed = switch_result(loser)
    assert "is locked by" in failed["msg"] and "(rollback to the previous release)" in failed["msg"], failed["msg"]
    assert failed["lock"]["owner"] == switch_result(winner)["lock"]["lock"]["owner"]
    assert [c["selector"].get(RELEASE) for c in service.changes] == ["1.0.0"]  # exactly one Service write
    assert selector(ns, app)[RELEASE] == "1.0.0"
    assert lease(ns, app)["spec"].get("holderIdentity") is None  # released by the winner

    # A deploy that never gets ready holds the lock, renewed while k8s_release waits, then is killed.
    killed = start_role(tmp_path, "blue_green", {
        "blue_green_target": "kubernetes", "blue_green_k8s_namespace": ns, "blue_green_app": app,
        "blue_green_image": k8s_images["unready"], "blue_green_release": "3.0.0", "blue_green_wait_timeout": 120,
        "blue_green_k8s_lock_seconds": 20, "blue_green_k8s_termination_grace_period": 1})
    try:
        deadline = time.monotonic() + 240
        held: Dict[str, Any] = {}
        while time.monotonic() < deadline:
            held = (lease(ns, app) or {}).get("spec") or {}
            acquired = held.get("acquireTime")
            if held.get("holderIdentity") and acquired and releases(play, ns, app).get("3.0.0"):
                if time.time() - stamp(acquired) > 26:  # longer than lease_seconds: only renewals kept it
                    break
            time.sleep(2)
        else:
            raise AssertionError("the deploy never held the lock long enough: %s" % held)
        owner, renewed = held["holderIdentity"], held["renewTime"]
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(30)
    assert stamp(renewed) > stamp(held["acquireTime"]) + 5  # renewed while it lived

    # (The deploy made room for 3.0.0 by retiring 2.0.0; 1.0.0 is live: these rollbacks name it.)
    blocked = role(play, "rollback", "rollback", ns, rollback_app=app, rollback_to="1.0.0")
    assert blocked.rc != 0
    message = switch_result(blocked)["msg"]
    assert "is locked by %s" % owner in message and "(blue-green to 3.0.0)" in message and "expires in" in message
    assert selector(ns, app)[RELEASE] == "1.0.0"

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # nobody renews it any more
        spec = lease(ns, app)["spec"]
        if time.time() > stamp(spec["renewTime"]) + spec["leaseDurationSeconds"] + 0.5:
            break
        time.sleep(1)
    taken = role(play, "rollback", "rollback", ns, rollback_app=app, rollback_to="1.0.0")  # no break_lock
    assert taken.rc == 0, taken.stdout[-4000:]
    result = switch_result(taken)
    assert result["lock"]["expired_holder"]["owner"] == owner and result["lock"]["broken"] is None
    assert result["noop"] and selector(ns, app)[RELEASE] == "1.0.0"
    assert lease(ns, app)["spec"].get("holderIdentity") is None
