"""Host ports fixed at creation, and the router check that compares slots with containers."""
from __future__ import annotations

import random

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.docker import ports as host_ports
from ansible_collections.immutable.deploy.plugins.module_utils.docker import router_check
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError


def test_range_parses_and_refuses_what_is_not_a_range():
    assert host_ports.parse_range(None) == (27000, 29999)
    assert host_ports.parse_range("28000-28010") == (28000, 28010)
    assert host_ports.parse_range("28000") == (28000, 28000)
    for bad in ("abc", "30000-29000", "80-90", "28000-70000"):
        with pytest.raises(DeployError) as err:
            host_ports.parse_range(bad)
        assert err.value.details["option"] == "host_port_range" and repr(bad) in err.value.msg


def test_choose_skips_taken_and_busy_ports_and_says_when_the_range_is_full():
    chosen = host_ports.choose(3, (28000, 28005), taken=[28001, 28003], is_free=lambda p: p != 28004,
                               rng=random.Random(1))
    assert len(set(chosen)) == 3 and set(chosen) <= {28000, 28002, 28005}
    with pytest.raises(DeployError) as err:
        host_ports.choose(4, (28000, 28005), taken=[28001, 28003], is_free=lambda p: p != 28004)
    assert "only 3 of the 4" in err.value.msg and err.value.details["option"] == "host_port_range"


def test_fixed_and_ephemeral_bindings_are_told_apart():
    fixed = {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28001"}]}}}
    ephemeral = {"HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
                 "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}}}
    assert host_ports.is_fixed(fixed) and host_ports.bound_ports(fixed) == [28001]
    assert not host_ports.is_fixed(ephemeral) and host_ports.bound_ports(ephemeral) == [32768]


def _release(rid, slot, ports, state="running"):
    return {"id": rid, "slot": slot, "state": state,
            "containers": [{"replica": i + 1, "address": "127.0.0.1", "port": p} for i, p in enumerate(ports)]}


def _key(address, port):
    return str(address), int(port)


def test_router_check_names_servers_that_point_at_other_releases():
    releases = [_release("2.0.0", "green", [28003, 28004]), _release("1.0.0", "blue", [28001, 28002])]
    servers = [
        {"name": "blue1", "address": "127.0.0.1", "port": 28001, "state": "ready", "weight": 100},
        {"name": "blue2", "address": "127.0.0.1", "port": 28003, "state": "ready", "weight": 100},  # green's
        {"name": "green1", "address": "127.0.0.1", "port": 28003, "state": "drain", "weight": 0},
        {"name": "green2", "address": "127.0.0.1", "port": 32999, "state": "drain", "weight": 0},  # nobody
        {"name": "blue3", "address": "127.0.0.1", "port": 1, "state": "maint", "weight": 0},  # unused: ignored
    ]
    owners = {("127.0.0.1", 28003): {"app": "web", "release": "2.0.0", "slot": "green", "replica": 1}}
    found = router_check.mismatches(releases, servers, owners, _key)
    assert [m["server"] for m in found] == ["blue2", "green2"]
    assert found[0]["expected"] == {"release": "1.0.0", "address": "127.0.0.1", "port": 28002}
    assert found[0]["found"]["release"] == "2.0.0" and found[1]["found"] is None
    text = router_check.describe("web", found)
    assert "blue2 (ready, weight 100) -> 127.0.0.1:28003, which is release 2.0.0 of app web (slot green)" in text
    assert router_check.repairs(found) == [{"name": "blue2", "address": "127.0.0.1", "port": 28002},
                                           {"name": "green2", "address": "127.0.0.1", "port": 28004}]


def test_router_check_sends_a_server_of_an_empty_slot_to_maint():
    servers = [{"name": "green1", "address": "127.0.0.1", "port": 28003, "state": "drain", "weight": 0}]
    found = router_check.mismatches([_release("1.0.0", "blue", [28001])], servers, {}, _key)
    assert found[0]["expected"] is None
    assert router_check.repairs(found) == [{"name": "green1", "weight": 0, "state": "maint"}]
    assert router_check.mismatches([_release("1.0.0", "blue", [28001])],
                                   [{"name": "blue1", "address": "127.0.0.1", "port": 28001, "state": "ready"}],
                                   {}, _key) == []
