"""docker_switch's choices with the engine and the router faked (the integration test drives them for real)."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.docker import switch as docker_switch
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError


def rel(rid: str, slot: str, live: bool, state: str = "running", port: int = 0) -> Dict[str, Any]:
    endpoints = [{"address": "127.0.0.1", "port": port}] if state == "running" else []
    return {"id": rid, "slot": slot, "digest": "sha256:" + rid[0] * 64, "state": state, "live": live,
            "weight": 100 if live else 0, "endpoints": endpoints, "created": rid}


def params(**extra: Any) -> Dict[str, Any]:
    p = dict(app="web", to=None, start=True, wait_timeout=5, weight=100, router_kind="haproxy",
             router_socket="/run/web.sock", router_backend=None, router_timeout=5, router_state_file=None,
             router_max_replicas=2, up_timeout=5, drain=False, drain_timeout=5, router_upstream_file=None,
             nginx_conf=None, nginx_binary="nginx", nginx_pid_file=None, nginx_reload_timeout=5,
             docker_host=None, docker_timeout=5)
    p.update(extra)
    return p


@pytest.fixture
def fake(monkeypatch):
    """The engine, the reading of releases, the cold start and the HAProxy write, faked."""
    calls: Dict[str, List[Any]] = {"backend": [], "ensure": []}
    state: Dict[str, Any] = {"releases": []}
    monkeypatch.setattr(docker_switch, "Engine", lambda *a, **kw: object())
    monkeypatch.setattr(docker_switch.releases, "read", lambda client, app, ref, *a: {"releases": state["releases"]})

    def start(client, app, release_id, wait_timeout):
        calls["ensure"].append(release_id)
        return rel(release_id, "blue", False, port=3001)

    def apply_backend(p, check_mode):
        calls["backend"].append((p, check_mode))
        return {"changed": True, "backend": p["backend"], "changes": [], "commands": [], "drained": {}}
    from ansible_collections.immutable.deploy.plugins.module_utils.docker import release
    monkeypatch.setattr(release, "start", start)
    from ansible_collections.immutable.deploy.plugins.module_utils.routers import haproxy
    monkeypatch.setattr(haproxy, "apply_backend", apply_backend)
    return state, calls


def test_warm_previous_takes_all_traffic_and_the_live_one_drains_in_the_same_write(fake):
    state, calls = fake
    state["releases"] = [rel("2.0.0", "green", True, port=3002), rel("1.0.0", "blue", False, port=3001)]
    out = docker_switch.switch(params(), False, False)
    assert out["changed"] and not out["started"] and out["target"]["id"] == "1.0.0" and out["previous"]["id"] == "2.0.0"
    (p, check), = calls["backend"]
    assert p["backend"] == "web" and p["wait_up"] and not p["wait_drained"] and not check
    assert [(s["name"], s.get("port"), s["weight"], s["state"]) for s in p["servers"]] == [
        ("blue1", 3001, 100, "ready"), ("blue2", None, 0, "maint"),
        ("green1", 3002, 0, "drain"), ("green2", None, 0, "maint")]
    assert out["diff"] == {"before": {"live": "2.0.0"}, "after": {"live": "1.0.0"}}
    assert not calls["ensure"]


def test_the_live_target_is_a_no_op_without_touching_the_router(fake):
    state, calls = fake
    state["releases"] = [rel("2.0.0", "green", True, port=3002), rel("1.0.0", "blue", False, port=3001)]
    out = docker_switch.switch(params(to="2.0.0"), False, False)
    assert not out["changed"] and out["router"] == {} and not calls["backend"]


def test_a_stopped_target_is_started_first_but_not_in_check_mode(fake):
    state, calls = fake
    state["releases"] = [rel("2.0.0", "green", True, port=3002), rel("1.0.0", "blue", False, state="stopped")]
    checked = docker_switch.switch(params(), True, False)
    assert checked["changed"] and checked["started"] and not calls["ensure"] and not calls["backend"]
    with pytest.raises(DeployError, match="is stopped, not running; set start=true"):
        docker_switch.switch(params(start=False), False, False)
    assert not calls["ensure"] and not calls["backend"]
    out = docker_switch.switch(params(), False, False)
    assert calls["ensure"] == ["1.0.0"] and out["target"]["endpoints"][0]["port"] == 3001
    assert calls["backend"][0][0]["servers"][0]["port"] == 3001


@pytest.mark.parametrize("extra, option", [
    ({"to": "bad id!"}, "to"), ({"weight": 0}, "weight"), ({"weight": 257}, "weight"),
    ({"router_max_replicas": 0}, "router_max_replicas"), ({"app": "Web"}, "app"), ({"to": "9.9.9"}, "to"),
])
def test_bad_input_names_the_option_and_touches_nothing(fake, extra, option):
    state, calls = fake
    state["releases"] = [rel("1.0.0", "blue", True, port=3001)]
    with pytest.raises(DeployError) as err:
        docker_switch.switch(params(**extra), False, False)
    assert err.value.details.get("option") == option, err.value.msg
    assert not calls["backend"] and not calls["ensure"]


def test_a_router_pointing_at_other_containers_is_refused_without_to_and_repaired_with_it(fake, monkeypatch):
    state, calls = fake
    releases = [rel("2.0.0", "green", True, port=3002), rel("1.0.0", "blue", False, port=3001)]
    wrong = [{"server": "blue1", "slot": "blue", "replica": 1, "address": "127.0.0.1", "port": 3002, "state": "ready",
              "weight": 100, "expected": {"release": "1.0.0", "address": "127.0.0.1", "port": 3001},
              "found": {"app": "web", "release": "2.0.0", "slot": "green", "replica": 1}}]
    monkeypatch.setattr(docker_switch.releases, "read",
                        lambda client, app, ref, *a: {"releases": releases, "router_mismatches": wrong})
    with pytest.raises(DeployError, match="blue1 .ready, weight 100. -> 127.0.0.1:3002, which is release 2.0.0") as err:
        docker_switch.switch(params(), False, False)
    assert err.value.details["option"] == "to" and not calls["backend"]
    out = docker_switch.switch(params(to="2.0.0"), False, False)  # live already: the repair alone is written
    assert out["changed"] and out["router_mismatches"] == wrong
    servers = calls["backend"][0][0]["servers"]
    assert {"name": "blue1", "address": "127.0.0.1", "port": 3001} in servers
