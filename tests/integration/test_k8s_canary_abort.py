"""The automatic abort of a bad replica-ratio canary, and the old stable's scale_down_delay, on the
real cluster.

The analysis measures the canary for real: a command asks a canary pod (kubectl exec, through the
API) for /cgi-bin/info, which the broken image answers with 500. From the verdict the Service must
select stable alone, stable be back at its full scale and the canary at 0 within 2 s, so within the
analysis interval + 2 s of the analysis' start. Times come from API watches on this host's clock.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from conftest import K8S_CLUSTER
from test_k8s_roles import RELEASE, bg, releases, role, selector
from test_k8s_smoke_watch import broken_image  # noqa: F401  # pylint: disable=unused-import  # the fixture

INTERVAL = 2


class Recorder:
    """Deployment and Service events of one namespace: (time.time(), kind, type, object)."""

    def __init__(self, kubeconfig: str, ns: str) -> None:
        api = k8s_config.new_client_from_config(config_file=kubeconfig)
        self.ns, self.events = ns, []  # type: ignore[var-annotated]
        self.lists = (k8s_client.AppsV1Api(api).list_namespaced_deployment, k8s_client.CoreV1Api(api).list_namespaced_service)
        self.watches = [k8s_watch.Watch() for dummy in self.lists]
        self.threads = [threading.Thread(target=self._run, args=(w, f), daemon=True) for w, f in zip(self.watches, self.lists)]

    def _run(self, watch, func) -> None:
        try:
            for event in watch.stream(func, self.ns, timeout_seconds=900):
                self.events.append((time.time(), event["object"].kind or "", event["type"], event["object"]))
        except Exception:  # pylint: disable=broad-except  # the stream ends when the test stops it
            pass

    def __enter__(self) -> "Recorder":
        for thread in self.threads:
            thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)
        for watch in self.watches:
            watch.stop()

    def first(self, after: float, test) -> Optional[float]:
        return next((t for t, kind, kind_type, obj in self.events if t >= after and test(kind, kind_type, obj)), None)


def deployment_is(name: str, replicas: Optional[int] = None, ready: Optional[int] = None, gone: bool = False):
    def test(kind, event_type, obj) -> bool:
        if kind != "Deployment" or obj.metadata.name != name:
            return False
        if gone:
            return event_type == "DELETED" or (obj.spec.replicas or 0) == 0
        return (replicas is None or obj.spec.replicas == replicas) and (ready is None or (obj.status.ready_replicas or 0) >= ready)
    return test


def service_selects(name: str, release: str):
    return lambda kind, event_type, obj: kind == "Service" and obj.metadata.name == name and \
        (obj.spec.selector or {}).get(RELEASE) == release


def test_bad_canary_aborts_within_interval_and_the_old_stable_scales_down_after_the_delay(
        play, kubeconfig, k8s_namespace, k8s_images, broken_image, uid, tmp_path):  # pylint: disable=redefined-outer-name
    ns, app = k8s_namespace, "kab-%s" % uid
    first = bg(play, ns, app, k8s_images["1.0.0"], tmp_path, blue_green_release="1.0.0", blue_green_replicas=2,
               blue_green_watch_seconds=0)
    assert first.rc == 0, first.stdout[-4000:]
    stamps = tmp_path / "decided"
    ask = ("%s kubectl exec -n %s deploy/%s-2-0-0 -- sh -c 'wget -q -O- http://127.0.0.1:8080/cgi-bin/info' "
           ">/dev/null 2>&1 && r=0 || r=1; date +%%s.%%N >> %s; echo $r" % (K8S_CLUSTER, ns, app, stamps))
    analysis = {"interval": INTERVAL, "count": 1, "metrics": [
        {"name": "canary-errors", "provider": "command", "command": {"argv": ["/bin/sh", "-c", ask]}, "success": "result < 1"}]}
    common = {"canary_app": app, "canary_k8s_termination_grace_period": 1, "canary_wait_timeout": 60}

    with Recorder(kubeconfig, ns) as events:
        bad = role(play, "canary", "canary", ns, canary_image=broken_image, canary_release="2.0.0",
                   canary_steps=[{"weight": 50}, {"weight": 100}], canary_analysis=analysis, **common)
    assert bad.rc != 0
    assert "aborted, 1.0.0 serves all traffic: analysis fail at step 0 (50%)" in bad.stdout, bad.stdout[-4000:]
    decided = float(stamps.read_text().split()[-1])
    canary_in = events.first(0, deployment_is("%s-2-0-0" % app, ready=1))
    selected = events.first(decided, service_selects(app, "1.0.0"))
    stable_full = events.first(decided, deployment_is("%s-1-0-0" % app, replicas=2))
    canary_zero = events.first(decided, deployment_is("%s-2-0-0" % app, gone=True))
    stable_ready = events.first(decided, deployment_is("%s-1-0-0" % app, replicas=2, ready=2))
    assert canary_in is not None and None not in (selected, stable_full, canary_zero), events.events[-10:]
    done = max(selected, stable_full, canary_zero) - decided
    print("abort: verdict -> stable alone, full scale, canary 0: %.2f s; stable fully ready %.2f s; canary ready "
          "%.2f s before the verdict" % (done, (stable_ready or 0) - decided, decided - canary_in))
    assert done <= 2.0, done  # so within the analysis interval + 2 s of its start
    assert selector(ns, app)[RELEASE] == "1.0.0"
    state = releases(play, ns, app)
    assert set(state) == {"1.0.0"} and state["1.0.0"]["replicas"] == 2 and state["1.0.0"]["ready_replicas"] == 2

    # A good canary, promoted; the play keeps 1.0.0 warm for 3 s, then scales it to 0 (cold).
    good = role(play, "canary", "canary", ns, canary_image=k8s_images["2.0.0"], canary_release="3.0.0",
                canary_steps=[{"weight": 50}], canary_k8s_scale_down_delay=3, **common)
    assert good.rc == 0, good.stdout[-4000:]
    assert good.result("result")["canary_result"]["outcome"] == "promoted"
    scaled = [r["result"] for r in good.rows if r["action"] == "immutable.deploy.k8s_canary"
              and r["result"].get("action") == "scale_down"][-1]
    assert [s["release"] for s in scaled["scaled_down"]] == ["1.0.0"], scaled
    state = releases(play, ns, app)
    assert selector(ns, app)[RELEASE] == "3.0.0" and state["3.0.0"]["full_replicas"] == 2
    assert state["1.0.0"]["replicas"] == 0 and state["1.0.0"]["full_replicas"] == 2
    assert state["1.0.0"]["scale_down_at"] is None

    cold = role(play, "rollback", "rollback", ns, rollback_app=app)
    assert cold.rc == 0, cold.stdout[-4000:]
    switched = [r["result"] for r in cold.rows if r["action"] == "immutable.deploy.k8s_switch"][-1]
    assert switched["restored"] == {"release": "1.0.0", "replicas_before": 0, "replicas": 2}
    assert selector(ns, app)[RELEASE] == "1.0.0" and releases(play, ns, app)["1.0.0"]["ready_replicas"] == 2
