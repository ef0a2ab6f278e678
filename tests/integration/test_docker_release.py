"""docker_release and docker_release_info against the real Docker engine (images built FROM scratch)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid

import docker
import pytest

from conftest import REGISTRY
from images import remove_repos, sample_context
from net import free_port

SECRET = "s3cr3t-%s" % uuid.uuid4().hex[:10]
LABEL_APP = "io.immutable-deploy.app"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Versions 1.0.0 and 2.0.0 of the sample app, pushed so they have registry digests."""
    client = docker.from_env()
    name = "%s/it-dr-%s/app" % (REGISTRY, uuid.uuid4().hex[:8])
    out = {"name": name}
    try:
        for version in ("1.0.0", "2.0.0"):
            context = sample_context(tmp_path_factory.mktemp("ctx"), version)
            client.images.build(path=context, tag="%s:%s" % (name, version), rm=True)
            client.images.push(name, tag=version)
            repo_digests = client.images.get("%s:%s" % (name, version)).attrs["RepoDigests"]
            digest = [d.split("@")[1] for d in repo_digests if d.startswith(name + "@")][0]
            out[version] = {"tagged": "%s:%s" % (name, version), "digest": digest,
                            "pinned": "%s@%s" % (name, digest)}
        yield out
    finally:
        # By reference, never by ID: other tests' images may be built on top of the same layers.
        for version in ("2.0.0", "1.0.0"):
            refs = ["%s:%s" % (name, version)] + ([out[version]["pinned"]] if version in out else [])
            for ref in refs:
                try:
                    client.images.remove(ref)
                except docker.errors.APIError:
                    pass
        remove_repos([name])


@pytest.fixture
def app(uid):
    name = "it-dr-%s" % uid
    yield name
    client = docker.from_env()
    for c in client.containers.list(all=True, filters={"label": "%s=%s" % (LABEL_APP, name)}):
        c.remove(force=True, v=True)


def containers(app):
    client = docker.from_env()
    return sorted(client.containers.list(all=True, filters={"label": "%s=%s" % (LABEL_APP, app)}),
                  key=lambda c: c.name)


def get(address, port, path="/version") -> str:
    with urllib.request.urlopen("http://%s:%d%s" % (address, port, path), timeout=5) as resp:
        return resp.read().decode().strip()


def failure(run, name="rel"):
    """The result of a task that must have failed (ignore_errors keeps the play going)."""
    row = run.task(name)
    assert row["status"] == "failed", row["result"]
    return row["result"]


def release_task(app, release, image, name="rel", **extra):
    args = {"app": app, "release": release, "slot": "blue", "image": image, "container_port": 8080,
            "healthcheck": {"type": "http", "path": "/health", "interval": 1, "timeout": 2, "retries": 2},
            "wait_timeout": 30}
    args.update(extra)
    return {"name": name, "immutable.deploy.docker_release": args, "register": "out", "ignore_errors": True}


def test_create_idempotent_reachable_immutable(play, app, images):
    task = release_task(app, "1.0.0", images["1.0.0"]["tagged"], replicas=2,
                        env={"GREETING": "hello", "DEBUG": False}, secret_env={"TOKEN": SECRET})
    runs = [play([task], check=check, diff=True) for check in (True, False, True, False)]
    assert all(r.rc == 0 for r in runs), runs[0].stdout[-3000:]
    first, applied, again_check, again = [r.result("rel") for r in runs]
    for run in runs:
        assert SECRET not in run.stdout and SECRET not in json.dumps(run.rows)

    # Check mode predicted the release and created nothing.
    assert first["changed"] and first["diff"] == {"before": {"state": "absent"}, "after": {
        "state": "running", "slot": "blue", "digest": images["1.0.0"]["digest"], "replicas": 2}}
    assert [c["name"] for c in first["release"]["containers"]] == ["%s-1.0.0-1" % app, "%s-1.0.0-2" % app]
    assert all(c["id"] is None for c in first["release"]["containers"])

    # Applied: the tag was pinned to the registry digest, every replica healthy and reachable.
    rel = applied["release"]
    assert applied["changed"] and rel["state"] == "running" and rel["health"] == "healthy"
    assert rel["digest"] == images["1.0.0"]["digest"] and rel["image"] == images["1.0.0"]["pinned"]
    assert rel["slot"] == "blue" and rel["replicas"] == 2 and rel["created"]
    assert [c["health"] for c in rel["containers"]] == ["healthy", "healthy"]
    assert len(rel["endpoints"]) == 2 and len({e["port"] for e in rel["endpoints"]}) == 2
    for endpoint in rel["endpoints"]:
        assert endpoint["address"] == "127.0.0.1"
        assert get(endpoint["address"], endpoint["port"]) == "1.0.0"
    assert applied["diff"]["after"]["state"] == "running"

    found = containers(app)
    assert [c.name for c in found] == ["%s-1.0.0-1" % app, "%s-1.0.0-2" % app]
    labels = found[0].labels
    assert labels["io.immutable-deploy.release"] == "1.0.0" and labels["io.immutable-deploy.slot"] == "blue"
    assert labels["io.immutable-deploy.digest"] == images["1.0.0"]["digest"]
    assert labels["io.immutable-deploy.spec"].startswith("sha256:") and labels["io.immutable-deploy.replica"] == "1"
    assert SECRET not in json.dumps(labels)
    env = found[0].attrs["Config"]["Env"]
    assert "GREETING=hello" in env and "DEBUG=false" in env and "TOKEN=%s" % SECRET in env
    assert found[0].attrs["Config"]["Image"] == images["1.0.0"]["pinned"]

    assert not again_check["changed"] and not again["changed"]
    assert again["release"]["containers"] == rel["containers"]
    ids = [c.id for c in found]

    # Same id, other spec: refused, naming what differs; nothing changes. The digest form of the
    # same image is the same spec.
    same_by_digest = dict(task, **{"immutable.deploy.docker_release": dict(
        task["immutable.deploy.docker_release"], image=images["1.0.0"]["pinned"])})
    assert not play([same_by_digest]).result("rel")["changed"]
    cases = {
        "env": dict(env={"GREETING": "bye", "DEBUG": False}),
        "digest": dict(image=images["2.0.0"]["tagged"]),
        "slot": dict(slot="green"),
        "secret_env": dict(secret_env={"TOKEN": SECRET + "x"}),
    }
    for field, change in cases.items():
        args = dict(task["immutable.deploy.docker_release"], **change)
        run = play([dict(task, **{"immutable.deploy.docker_release": args})])
        result = failure(run)
        assert not result.get("changed"), result
        assert "differs in: %s;" % field in result["msg"] and "immutable" in result["msg"], result["msg"]
        assert SECRET not in run.stdout
    assert [c.id for c in containers(app)] == ids
    assert all(c.status == "running" for c in containers(app))


def test_stopped_started_absent(play, app, images):
    create = release_task(app, "1.0.0", images["1.0.0"]["pinned"], replicas=1)
    assert play([create]).result("rel")["changed"]
    (container,) = containers(app)

    # Acting on an existing release needs no spec.
    stop = {"name": "stop", "immutable.deploy.docker_release": {"app": app, "release": "1.0.0", "state": "stopped"},
            "register": "out"}
    checked = play([stop], check=True).result("stop")
    assert checked["changed"] and checked["release"]["state"] == "stopped"
    assert containers(app)[0].status == "running"
    stopped = play([stop], diff=True).result("stop")
    assert stopped["changed"] and stopped["release"]["state"] == "stopped" and stopped["release"]["endpoints"] == []
    assert stopped["diff"]["before"]["state"] == "running" and stopped["diff"]["after"]["state"] == "stopped"
    assert containers(app)[0].status == "exited" and containers(app)[0].id == container.id
    assert not play([stop]).result("stop")["changed"]

    start = {"name": "start", "immutable.deploy.docker_release": {"app": app, "release": "1.0.0", "state": "started"},
             "register": "out"}
    started = play([start]).result("start")
    assert started["changed"] and started["release"]["health"] == "healthy"
    (endpoint,) = started["release"]["endpoints"]
    assert get(endpoint["address"], endpoint["port"]) == "1.0.0"
    assert containers(app)[0].id == container.id  # restarted, not recreated
    assert not play([start]).result("start")["changed"]

    absent = {"name": "absent", "immutable.deploy.docker_release": {"app": app, "release": "1.0.0", "state": "absent"},
              "register": "out"}
    assert play([absent], check=True).result("absent")["changed"] and len(containers(app)) == 1
    removed = play([absent], diff=True).result("absent")
    assert removed["changed"] and removed["diff"]["after"] == {"state": "absent"}
    assert containers(app) == []
    assert not play([absent]).result("absent")["changed"]

    missing = failure(play([start]), "start")
    assert "does not exist" in missing["msg"] and "'image'" in missing["msg"]


def test_refusals_create_nothing(play, app, images):
    moving = failure(play([release_task(app, "1.0.0", images["name"] + ":latest")]), "rel")
    assert "moving tag" in moving["msg"] and "'image'" in moving["msg"]

    slot = failure(play([release_task(app, "1.0.0", images["1.0.0"]["pinned"], slot="purple")]), "rel")
    assert "slot" in slot["msg"] and "purple" in slot["msg"] and "blue" in slot["msg"]

    bad_app = failure(play([release_task("Bad_App", "1.0.0", images["1.0.0"]["pinned"])]), "rel")
    assert "'app'" in bad_app["msg"] and "Bad_App" in bad_app["msg"]

    # A host port in use: refused before anything is created, even the replica whose port is free.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        task = release_task(app, "1.0.0", images["1.0.0"]["pinned"], replicas=2, published_ports=[free_port(), port])
        clash = failure(play([task]))
    assert str(port) in clash["msg"] and "already in use" in clash["msg"], clash
    assert containers(app) == []


def test_published_ports(play, app, images):
    ports = [free_port(), free_port()]
    while ports[0] == ports[1]:
        ports[1] = free_port()
    result = play([release_task(app, "2.0.0", images["2.0.0"]["pinned"], replicas=2,
                                published_ports=ports)]).result("rel")
    assert result["changed"] and [e["port"] for e in result["release"]["endpoints"]] == ports
    assert [get("127.0.0.1", p) for p in ports] == ["2.0.0", "2.0.0"]


def test_unhealthy_release_is_removed(play, app, images):
    task = release_task(app, "1.0.0", images["1.0.0"]["pinned"], replicas=2,
                        healthcheck={"type": "http", "path": "/nope", "interval": 1, "timeout": 2, "retries": 2})
    started = time.monotonic()
    result = failure(play([task]))
    assert "did not become healthy" in result["msg"], result
    assert "404" in result["msg"] and "last log lines" in result["msg"]
    assert "were removed" in result["msg"]
    assert result["unhealthy"] and result["unhealthy"][0]["health_output"]
    assert time.monotonic() - started < 25  # unhealthy is detected, not waited out to wait_timeout
    assert containers(app) == []

    kept = failure(play([dict(task, **{"immutable.deploy.docker_release": dict(
        task["immutable.deploy.docker_release"], replicas=1, keep_failed=True)})]), "rel")
    assert "kept" in kept["msg"]
    assert [c.name for c in containers(app)] == ["%s-1.0.0-1" % app]


def test_crashing_command_fails_with_logs(play, app, images):
    # command overrides CMD; the image's ENTRYPOINT is busybox httpd, which cannot serve a missing dir.
    task = release_task(app, "1.0.0", images["1.0.0"]["pinned"], healthcheck=None, restart_policy="no",
                        command=["-f", "-p", "8080", "-h", "/missing-dir"])
    result = failure(play([task]), "rel")
    assert "exited (code 1)" in result["msg"] and "/missing-dir" in result["msg"], result
    assert containers(app) == []


HAPROXY_CFG = """
global
    stats socket {sock} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
backend web
{servers}
"""


@pytest.fixture
def haproxy(tmp_path):
    """Start a private HAProxy with a runtime socket; yields start(servers) -> socket path."""
    if not shutil.which("haproxy"):
        pytest.skip("haproxy is not installed")
    procs = []

    def start(servers):
        sock = str(tmp_path / "admin.sock")
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(HAPROXY_CFG.format(sock=sock, servers="\n".join("    " + s for s in servers)))
        procs.append(subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        for _attempt in range(50):
            if os.path.exists(sock):
                return sock
            time.sleep(0.1)
        raise AssertionError("haproxy did not create %s" % sock)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_info_newest_first_and_live(play, app, images, haproxy):
    first = release_task(app, "1.0.0", images["1.0.0"]["pinned"], name="v1", replicas=2)
    second = release_task(app, "2.0.0", images["2.0.0"]["tagged"], name="v2", slot="green")
    third = release_task(app, "3.0.0", images["2.0.0"]["pinned"], name="v3", slot="blue")
    stop = {"name": "stop", "immutable.deploy.docker_release": {"app": app, "release": "3.0.0", "state": "stopped"}}
    run = play([first, second, third, stop])
    assert run.rc == 0, run.stdout[-3000:]
    v1, v2 = run.result("v1")["release"], run.result("v2")["release"]

    info = {"name": "info", "immutable.deploy.docker_release_info": {"app": app}, "register": "out"}
    releases = play([info], check=True).result("info")["releases"]
    assert [r["id"] for r in releases] == ["3.0.0", "2.0.0", "1.0.0"]
    latest, middle, oldest = releases
    assert latest["state"] == "stopped" and latest["health"] == "stopped" and latest["endpoints"] == []
    assert middle["state"] == "running" and middle["health"] == "healthy" and middle["slot"] == "green"
    assert middle["digest"] == images["2.0.0"]["digest"] and middle["image"] == images["2.0.0"]["pinned"]
    assert oldest["replicas"] == 2 and oldest["endpoints"] == v1["endpoints"] and oldest["slot"] == "blue"
    assert [c["health"] for c in oldest["containers"]] == ["healthy", "healthy"]
    assert oldest["created"] < middle["created"] < latest["created"]
    assert "live" not in oldest

    # One replica of 1.0.0 removed behind our back: partial, and unhealthy overall.
    docker.from_env().containers.get("%s-1.0.0-2" % app).remove(force=True)
    only = play([{"name": "info", "immutable.deploy.docker_release_info": {"app": app, "release": "1.0.0"},
                  "register": "out"}]).result("info")["releases"]
    assert [(r["id"], r["state"], r["health"]) for r in only] == [("1.0.0", "partial", "unhealthy")]

    # 2.0.0 takes the traffic; the surviving 1.0.0 replica is drained (weight 0 does not count as live).
    (e2,), e1 = v2["endpoints"], v1["endpoints"][0]
    sock = haproxy(["server g1 %s:%d weight 100" % (e2["address"], e2["port"]),
                    "server b1 %s:%d weight 0" % (e1["address"], e1["port"]),
                    "server other 127.0.0.1:9 weight 50"])
    routed = play([{"name": "info", "immutable.deploy.docker_release_info": {
        "app": app, "router_socket": sock, "router_backend": "web"}, "register": "out"}]).result("info")["releases"]
    by_id = {r["id"]: r for r in routed}
    assert (by_id["2.0.0"]["live"], by_id["2.0.0"]["weight"]) == (True, 100)
    assert (by_id["1.0.0"]["live"], by_id["1.0.0"]["weight"]) == (False, 0)
    assert (by_id["3.0.0"]["live"], by_id["3.0.0"]["weight"]) == (False, 0)

    wrong = failure(play([{"name": "info", "immutable.deploy.docker_release_info": {
        "app": app, "router_socket": sock, "router_backend": "nope"}, "register": "out",
        "ignore_errors": True}]), "info")
    assert "nope" in wrong["msg"]
