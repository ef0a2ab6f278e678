"""Manual canary gates on Kubernetes, promote and abort from another run, and the old stable
kept warm after a promote (scale_down_delay), on the real cluster.

The gate lives in the cluster (an annotation on the canary's Deployment): each promote or abort
below is a separate run of playbooks/canary_promote.yml or canary_abort.yml with its own lock token
and only the app's name and namespace, as another controller (an AWX node) would run it.
Traffic decisions are checked through the API only (Service selector, Endpoints, Deployments).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, List, Optional

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from conftest import ROOT
from test_k8s_roles import RELEASE, bg, releases, role, selector


class ServiceWatch:
    """Every MODIFIED event of one Service (time, selector): how many writes a rollback made."""

    def __init__(self, kubeconfig: str, ns: str, name: str) -> None:
        self.api = k8s_client.CoreV1Api(k8s_config.new_client_from_config(config_file=kubeconfig))
        self.ns, self.name = ns, name
        self.changes: List[Dict[str, Any]] = []
        self._watch = k8s_watch.Watch()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for event in self._watch.stream(self.api.list_namespaced_service, self.ns,
                                            field_selector="metadata.name=%s" % self.name, timeout_seconds=600):
                if event["type"] == "MODIFIED":
                    self.changes.append({"t": time.time(), "selector": dict(event["object"].spec.selector or {})})
        except Exception:  # pylint: disable=broad-except  # the stream ends when the test stops it
            pass

    def __enter__(self) -> "ServiceWatch":
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        self._watch.stop()
        self._thread.join(10)


def canary(play, ns, app, tmp_path, action="start", **values):
    params = {"canary_app": app, "canary_action": action, "canary_lock_dir": str(tmp_path / "locks"),
              "canary_k8s_termination_grace_period": 1, "canary_wait_timeout": 60}
    params.update(values)
    return role(play, "canary", "canary", ns, **params)


def from_playbook(play, name, ns, app, **values):
    """playbooks/canary_<name>.yml as an operator or an AWX node runs it: only the app and where it lives."""
    params = {"canary_app": app, "canary_target": "kubernetes", "canary_k8s_namespace": ns,
              "canary_k8s_termination_grace_period": 1}
    params.update(values)
    run = play(None, playbook=os.path.join(ROOT, "playbooks", "canary_%s.yml" % name), extra_vars=params)
    outcome = run.result("Hand the outcome to later workflow nodes")["ansible_stats"]["data"]["canary_outcome"] \
        if run.rc == 0 else None
    return run, outcome


def k8s_actions(run, prefix: str = "immutable.deploy.k8s_") -> List[Dict[str, Any]]:
    return [r for r in run.rows if r["action"].startswith(prefix)]


def record(play, ns, app, release) -> Optional[Dict[str, Any]]:
    return releases(play, ns, app)[release]["canary"]


def test_gate_promote_and_abort_from_other_runs_and_warm_rollback(
        play, kubeconfig, k8s_namespace, k8s_images, uid, tmp_path):
    ns, app = k8s_namespace, "kgt-%s" % uid
    first = bg(play, ns, app, k8s_images["1.0.0"], tmp_path, blue_green_release="1.0.0", blue_green_replicas=2,
               blue_green_watch_seconds=0)
    assert first.rc == 0, first.stdout[-4000:]
    start = {"canary_image": k8s_images["2.0.0"], "canary_release": "2.0.0",
             "canary_steps": [{"weight": 50, "pause": "manual"}, {"weight": 100}]}

    gated = canary(play, ns, app, tmp_path, **start)
    assert gated.rc == 0, gated.stdout[-4000:]
    assert gated.result("result")["canary_result"]["outcome"] == "paused"
    rec = record(play, ns, app, "2.0.0")
    assert rec["state"] == "paused" and rec["weight"] == 50 and rec["next_step"] == 1 and rec["stable"] == "1.0.0"
    assert RELEASE not in selector(ns, app)  # the Service selects the whole app: 1 of 2 pods is the canary
    state = releases(play, ns, app)
    assert state["2.0.0"]["weight"] == 50 and state["1.0.0"]["replicas"] == 1

    again = canary(play, ns, app, tmp_path, **start)  # a second start is refused, the gate stays
    assert again.rc != 0 and "is in progress (paused at 50%)" in again.stdout, again.stdout[-3000:]
    assert record(play, ns, app, "2.0.0")["state"] == "paused"

    # Another controller carries on: no variable of the first run is needed, the cluster has the plan.
    delay = {"canary_k8s_scale_down_delay": 120, "canary_k8s_scale_down_wait": False}
    promoted, outcome = from_playbook(play, "promote", ns, app, **delay)
    assert promoted.rc == 0, promoted.stdout[-4000:]
    assert outcome["outcome"] == "promoted" and outcome["previous"] == "1.0.0" and outcome["previous_scale_down_at"]
    assert selector(ns, app)[RELEASE] == "2.0.0"
    state = releases(play, ns, app)
    assert state["2.0.0"]["canary"] is None and state["2.0.0"]["full_replicas"] == 2
    assert state["2.0.0"]["ready_replicas"] == 2
    warm = state["1.0.0"]  # kept at full scale and ready: the way back is one selector patch
    assert warm["replicas"] == 2 and warm["ready_replicas"] == 2 and warm["scale_down_at"] and not warm["live"]

    twice, outcome = from_playbook(play, "promote", ns, app, **delay)
    assert twice.rc == 0 and outcome["outcome"] == "noop", twice.stdout[-3000:]
    assert not [r for r in k8s_actions(twice) if r["result"].get("changed")]

    with ServiceWatch(kubeconfig, ns, app) as service:
        back = role(play, "rollback", "rollback", ns, rollback_app=app)
    assert back.rc == 0, back.stdout[-4000:]
    switched = [r["result"] for r in back.rows if r["action"] == "immutable.deploy.k8s_switch"][-1]
    assert switched["target"]["id"] == "1.0.0" and switched["restored"] is None  # warm: no pod started
    assert [c["selector"].get(RELEASE) for c in service.changes] == ["1.0.0"]  # exactly one Service write
    assert releases(play, ns, app)["1.0.0"]["scale_down_at"] is None  # live again: no deadline

    # A gate on a new canary, aborted by another run; aborting twice changes nothing.
    gated = canary(play, ns, app, tmp_path, canary_image=k8s_images["2.0.0"], canary_release="3.0.0",
                   canary_steps=[{"weight": 50, "pause": "manual"}, {"weight": 100}])
    assert gated.rc == 0 and gated.result("result")["canary_result"]["outcome"] == "paused", gated.stdout[-4000:]
    assert record(play, ns, app, "3.0.0")["state"] == "paused"
    aborted, outcome = from_playbook(play, "abort", ns, app)
    assert aborted.rc == 0 and outcome["outcome"] == "aborted", aborted.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "1.0.0"
    state = releases(play, ns, app)
    assert "3.0.0" not in state and state["1.0.0"]["replicas"] == 2 and state["1.0.0"]["ready_replicas"] == 2
    twice, outcome = from_playbook(play, "abort", ns, app)
    assert twice.rc == 0 and outcome["outcome"] == "noop", twice.stdout[-3000:]
    assert not [r for r in k8s_actions(twice) if r["result"].get("changed")]
