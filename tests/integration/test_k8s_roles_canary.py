"""The canary role on the kubernetes target (replica ratio), on the real cluster.

Its own file, so xdist runs it beside the blue-green and rollback roles' test.
Traffic decisions are checked through the API only (Service selector, Endpoints, pods).
"""
from __future__ import annotations

from conftest import K8S_CLUSTER
from test_k8s_roles import RELEASE, bg, releases, role, selector


def test_canary_by_replica_ratio_promotes_and_a_bad_ratio_changes_nothing(play, k8s_namespace, k8s_images, uid, tmp_path):
    ns, app = k8s_namespace, "kcn-%s" % uid
    stable = bg(play, ns, app, k8s_images["1.0.0"], tmp_path, blue_green_release="1.0.0", blue_green_replicas=2)
    assert stable.rc == 0, stable.stdout[-4000:]
    common = {"canary_app": app, "canary_image": k8s_images["2.0.0"], "canary_release": "2.0.0",
              "canary_lock_dir": str(tmp_path / "locks"), "canary_k8s_termination_grace_period": 1,
              "canary_k8s_scale_down_delay": 0}  # the old stable goes to 0 at the promote (cold)

    bad = role(play, "canary", "canary", ns, canary_steps=[{"weight": 25}, {"weight": 100}], **common)
    assert bad.rc != 0 and "Invalid value for option 'weight': 25" in bad.stdout, bad.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "1.0.0"
    assert set(releases(play, ns, app)) == {"1.0.0"}

    # a real measurement through the API: the canary's ready pods at each step
    jsonpath = "{range .items[*]}{.status.containerStatuses[0].ready}{\"\\n\"}{end}"
    count = "%s kubectl get pods -n %s -l %s=2.0.0 -o jsonpath='%s' | grep -c true" % (K8S_CLUSTER, ns, RELEASE, jsonpath)
    analysis = {"interval": 1, "count": 1, "metrics": [
        {"name": "ready-canary-pods", "provider": "command", "command": {"argv": ["/bin/sh", "-c", count]},
         "success": "result >= 1"}]}
    good = role(play, "canary", "canary", ns, canary_steps=[{"weight": 50}, {"weight": 100}],
                canary_analysis=analysis, **common)
    assert good.rc == 0, good.stdout[-4000:]
    assert good.result("result")["canary_result"]["outcome"] == "promoted"
    steps = [r["result"] for r in good.rows if r["action"] == "immutable.deploy.k8s_canary"
             and r["result"].get("action") == "step"]
    assert [s["weights"]["2.0.0"] for s in steps] == [50, 100], steps
    verdicts = [s["analysis"] for s in steps]  # measured by the module that scaled the step
    assert [v["verdict"] for v in verdicts] == ["pass", "pass"], verdicts
    assert verdicts[0]["measurements"][0]["metrics"]["ready-canary-pods"]["value"] == 1  # 1 of 2 pods at 50 %
    assert selector(ns, app)[RELEASE] == "2.0.0"
    state = releases(play, ns, app)
    assert state["2.0.0"]["live"] and state["2.0.0"]["ready_replicas"] == 2
    assert state["1.0.0"]["replicas"] == 0  # kept cold; a rollback scales it back

    back = role(play, "rollback", "rollback", ns, rollback_app=app, rollback_lock_dir=str(tmp_path / "locks"))
    assert back.rc == 0, back.stdout[-4000:]
    assert selector(ns, app)[RELEASE] == "1.0.0"
    assert releases(play, ns, app)["1.0.0"]["ready_replicas"] == 2
