"""Smoke test and post-switch watch of blue-green on Kubernetes, on the real cluster.

A release whose pods are Ready (/health answers) but whose app answers 500: the smoke test,
run inside each pod through the API (exec; nothing connects to a pod address), stops the deploy
before the switch; with a smoke path that passes, the watch after the switch sends the Service
back to the old release in the same module run. Both failures name the answers they got.
"""
from __future__ import annotations

import os
import uuid

import pytest

from conftest import REGISTRY
from test_k8s_roles import RELEASE, bg, releases, selector

BROKEN_CGI = "#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\n'\necho broken on purpose\n"


@pytest.fixture(scope="module")
def broken_image(tmp_path_factory) -> str:
    """The sample app (ready: /health answers) whose /cgi-bin/info answers 500; a digest-pinned ref."""
    import docker  # pylint: disable=import-outside-toplevel
    from images import remove_repos, sample_context  # pylint: disable=import-outside-toplevel
    repo = "%s/it-k8s-broken-%s/app" % (REGISTRY, uuid.uuid4().hex[:8])
    context = sample_context(tmp_path_factory.mktemp("broken"), "2.0.0")
    cgi = os.path.join(context, "www", "cgi-bin", "info")
    with open(cgi, "w", encoding="utf-8") as handle:
        handle.write(BROKEN_CGI)
    os.chmod(cgi, 0o755)
    client = docker.from_env()
    client.images.build(path=context, tag="%s:2.0.0" % repo, rm=True)
    client.images.push(repo, tag="2.0.0")
    ref = [d for d in client.images.get("%s:2.0.0" % repo).attrs["RepoDigests"] if d.startswith(repo + "@")][0]
    yield ref
    remove_repos([repo])


def test_ready_but_500_fails_the_smoke_test_or_the_watch_and_the_old_release_keeps_the_traffic(
        play, k8s_namespace, k8s_images, broken_image, uid, tmp_path):
    ns, app = k8s_namespace, "ksw-%s" % uid
    probe = {"blue_green_smoke_path": "/cgi-bin/info", "blue_green_watch_path": "/cgi-bin/info"}
    first = bg(play, ns, app, k8s_images["1.0.0"], tmp_path, blue_green_release="1.0.0", blue_green_replicas=2,
               blue_green_watch_seconds=1, **probe)
    assert first.rc == 0, first.stdout[-4000:]
    smoke = [r for r in first.rows if r["action"] == "immutable.deploy.k8s_probe"][-1]["result"]
    assert smoke["passed"] and set(smoke["outcomes"]) == {"status 200"} and len(smoke["answers"]) == 2, smoke

    # Ready, but the app answers 500: stopped by the smoke test, before any switch.
    smoked = bg(play, ns, app, broken_image, tmp_path, blue_green_release="2.0.0", blue_green_replicas=2,
                blue_green_smoke_timeout=3, **probe)
    assert smoked.rc != 0
    failed = [r for r in smoked.rows if r["action"] == "immutable.deploy.k8s_probe"][-1]["result"]
    assert not failed["passed"] and failed["failures"] >= 2 and set(failed["outcomes"]) == {"status 500"}, failed
    assert "Smoke test of release '2.0.0'" in failed["msg"] and "status 500" in failed["msg"]
    assert len(failed["answers"]) == 2 and set(failed["answers"].values()) == {"status 500"}  # each pod's answer
    assert "aborted before the switch" in smoked.stdout
    assert selector(ns, app)[RELEASE] == "1.0.0"
    assert set(releases(play, ns, app)) == {"1.0.0"}  # the new release was removed again

    # The smoke path passes, the watched one does not: the switch happens and is undone at once.
    watched = bg(play, ns, app, broken_image, tmp_path, blue_green_release="2.0.0", blue_green_replicas=2,
                 blue_green_smoke_path="/health", blue_green_watch_path="/cgi-bin/info", blue_green_watch_seconds=5)
    assert watched.rc != 0
    switch = [r for r in watched.rows if r["action"] == "immutable.deploy.k8s_traffic"
              and r["result"].get("reverted") is not None][-1]["result"]
    assert switch["reverted"] and switch["previous_release"] == "1.0.0", switch
    assert switch["failures"] >= 1 and "status 500" in switch["outcomes"]
    assert "Service %s selects release 1.0.0 again" % app in switch["msg"] and switch["revert_ms"] < 1000
    assert "rolled back after the switch" in watched.stdout
    assert selector(ns, app)[RELEASE] == "1.0.0"
    state = releases(play, ns, app)
    assert state["1.0.0"]["live"] and state["1.0.0"]["ready_replicas"] == 2 and not state["2.0.0"]["live"]
