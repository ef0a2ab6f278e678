"""docker/release.py's lifecycle against one fake engine (the integration tests drive a real one)."""
from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.docker import release as drelease
from ansible_collections.immutable.deploy.plugins.module_utils.docker import spec as dspec
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

DIGEST = "sha256:" + "a" * 64
IMAGE = "reg.example:5000/shop/web@" + DIGEST


class FakeEngine:
    """Containers as the engine inspects them; health is scripted per container name."""

    local = False  # no probing of this machine's ports
    url = "unix:///fake.sock"

    def __init__(self, health: str = "healthy", clash_once: bool = False) -> None:
        self.containers_by_id: Dict[str, Dict[str, Any]] = {}
        self.health, self.clash_once, self.calls = health, clash_once, []
        self.ids = itertools.count(1)

    def containers(self, labels: Optional[List[str]] = None) -> List[Dict[str, Any]]:
        def matches(c: Dict[str, Any]) -> bool:
            have = c["Config"]["Labels"]
            for label in labels or []:
                key, _sep, value = label.partition("=")
                if key not in have or (value and have[key] != value):
                    return False
            return True
        return [{"Id": cid, "Ports": []} for cid, c in self.containers_by_id.items() if matches(c)]

    def inspect_container(self, ref: str) -> Optional[Dict[str, Any]]:
        return self.containers_by_id.get(ref) or next(
            (c for c in self.containers_by_id.values() if c["Name"] == "/" + ref), None)

    def inspect_all(self, labels: List[str]) -> List[Dict[str, Any]]:
        return [self.containers_by_id[s["Id"]] for s in self.containers(labels)]

    def create_container(self, image: str, name: str, host_config: Dict[str, Any], **kw: Any) -> str:
        cid = "c%d" % next(self.ids)
        port, binding = next(iter((host_config["port_bindings"] or {}).items()), (None, None))
        bindings = {"%s/tcp" % port: [{"HostIp": binding[0], "HostPort": str(binding[1]) if len(binding) > 1 else ""}]} \
            if port else {}
        self.containers_by_id[cid] = {"Id": cid, "Name": "/" + name, "Config": {"Labels": kw["labels"], "Image": image},
                                      "HostConfig": {"PortBindings": bindings}, "NetworkSettings": {"Ports": {}},
                                      "State": {"Status": "created", "Running": False}, "RestartCount": 0}
        self.calls.append(("create", name))
        return cid

    def start(self, ref: str) -> None:
        self.calls.append(("start", ref))
        if self.clash_once:
            self.clash_once = False
            raise DeployError("Starting container %s failed: port is already allocated" % ref,
                              explanation="Bind for 127.0.0.1:27001 failed: port is already allocated")
        c = self.containers_by_id[ref]
        c["State"] = {"Status": "running", "Running": True, "Health": {"Status": self.health, "Log": [
            {"ExitCode": 1 if self.health == "unhealthy" else 0, "Output": "wget: server returned error: 500"}]}}
        c["NetworkSettings"]["Ports"] = c["HostConfig"]["PortBindings"]

    def stop(self, ref: str, timeout: int) -> None:
        self.containers_by_id[ref]["State"] = {"Status": "exited", "Running": False, "ExitCode": 0}

    def remove(self, ref: str) -> None:
        self.calls.append(("remove", ref))
        self.containers_by_id.pop(ref, None)

    def logs(self, ref: str, tail: int) -> List[str]:
        return ["GET /health 500"]

    def inspect_image(self, ref: str) -> Optional[Dict[str, Any]]:
        return {"Id": "sha256:" + "b" * 64, "RepoDigests": [IMAGE]}

    def pull(self, image: str, auth: Optional[Dict[str, str]] = None) -> None:
        raise AssertionError("the image is local: nothing to pull")


def params(**extra: Any) -> Dict[str, Any]:
    p = dict(app="web", release="1.0.0", slot="blue", image=IMAGE, replicas=2, container_port=8080,
             published_ports=None, host_port_range="27000-27009", bind_address="127.0.0.1", env={}, secret_env={},
             command=None, restart_policy="unless-stopped", memory=None, cpus=None, labels={},
             healthcheck={"type": "http", "path": "/health"}, wait_timeout=5, keep_failed=False, state="started",
             docker_host=None, docker_timeout=5, moving_tags=None)
    p.update(extra)
    return p


def test_a_release_is_created_on_fixed_ports_started_and_a_rerun_changes_nothing():
    engine = FakeEngine()
    out = drelease.ensure(params(), False, client=engine)
    assert out["changed"] and out["release"]["state"] == "running" and out["release"]["restart_safe"]
    ports = [e["port"] for e in out["release"]["endpoints"]]
    assert len(set(ports)) == 2 and all(27000 <= port <= 27009 for port in ports)
    labels = next(iter(engine.containers_by_id.values()))["Config"]["Labels"]
    assert labels[dspec.LABEL_DIGEST] == DIGEST and labels[dspec.LABEL_SLOT] == "blue"
    before = list(engine.calls)
    again = drelease.ensure(params(), False, client=engine)
    assert not again["changed"] and engine.calls == before


def test_check_mode_creates_nothing():
    engine = FakeEngine()
    out = drelease.ensure(params(), True, client=engine)
    assert out["changed"] and out["diff"] == {"before": {"state": "absent"}, "after": {
        "state": "running", "slot": "blue", "digest": DIGEST, "replicas": 2}} and engine.calls == []


def test_a_port_taken_between_choice_and_start_is_chosen_again():
    engine = FakeEngine(clash_once=True)
    out = drelease.ensure(params(replicas=1), False, client=engine)
    assert out["release"]["state"] == "running"
    assert [c[0] for c in engine.calls] == ["create", "start", "remove", "create", "start"]


def test_an_unhealthy_release_is_removed_and_the_error_says_why():
    engine = FakeEngine(health="unhealthy")
    with pytest.raises(DeployError) as err:
        drelease.ensure(params(), False, client=engine)
    assert "did not become healthy" in err.value.msg and "server returned error: 500" in err.value.msg
    assert "GET /health 500" in err.value.msg and engine.containers_by_id == {}


def test_another_spec_under_the_same_id_is_refused_and_nothing_changes():
    engine = FakeEngine()
    drelease.ensure(params(), False, client=engine)
    before = list(engine.calls)
    with pytest.raises(DeployError) as err:
        drelease.ensure(params(env={"A": "1"}), False, client=engine)
    assert "differs in: env" in err.value.msg and engine.calls == before


def test_wait_healthy_reports_what_is_still_pending_at_the_deadline():
    engine = FakeEngine(health="starting")
    cid = engine.create_container(IMAGE, "web-1.0.0-1", {"port_bindings": None}, labels={})
    engine.start(cid)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
    failures = drelease.wait_healthy(engine, [cid], 3, clock=lambda: now[0], sleep=sleep)
    assert [f["why"] for f in failures] == ["still starting after 3s"] and now[0] >= 3
