"""Unit tests of the HAProxy runtime client and planner (a fake runtime API over TCP)."""
from __future__ import annotations

import socket
import threading
from typing import Dict, List

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import (
    Runtime, admin_to_state, commands, drain_targets, parse_address, plan)

# Captured from HAProxy 2.6.12 (trailing columns trimmed where irrelevant).
STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state \
bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
3 web 1 blue1 127.0.0.2 2 4 50 0 4 15 3 4 6 0 0 0 localhost 19001 - 0 0 - - 0
3 web 2 blue2 127.0.0.1 0 5 0 0 13 1 0 0 14 0 0 0 localhost 1 - 0 0 - - 0
3 web 3 green1 127.0.0.1 2 12 10 0 3 15 3 4 6 0 0 0 localhost 19002 - 0 0 - - 0

"""
STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,hrsp_2xx,hrsp_5xx,req_tot,rtime,check_status,
fe,FRONTEND,,,0,1,9983,1,OPEN,,,,,,,
web,blue1,0,0,2,3,,9,UP,50,7,1,8,3,L7OK,
web,blue2,0,0,0,0,,0,MAINT,0,0,0,0,0,,
web,green1,0,0,0,0,,0,DRAIN,10,0,0,0,0,L7OK,
web,BACKEND,0,0,2,3,,9,UP,50,7,1,8,3,,

"""


class FakeHAProxy:
    """A TCP runtime API answering canned text per command and recording commands."""

    def __init__(self, answers: Dict[str, str]) -> None:
        self.answers = answers
        self.received: List[str] = []
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.address = "tcp:127.0.0.1:%d" % self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn = self.server.accept()[0]
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                cmd = data.decode().strip()
                self.received.append(cmd)
                answer = self.answers.get(cmd)
                if answer is None:
                    answer = next((v for k, v in self.answers.items() if k.endswith("*") and cmd.startswith(k[:-1])), "\n")
                conn.sendall(answer.encode())

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake():
    server = FakeHAProxy({"show servers state web": STATE, "show stat": STAT, "show backend": "# name\nweb\nweb_preview\n\n",
                          "show servers state nope": "Can't find backend.\n\n",
                          "set server web/nope*": "No such server.\n\n",
                          "set server web/blue1 weight*": "\n"})
    yield server
    server.close()


def test_parse_address():
    assert parse_address("tcp:127.0.0.1:9999") == (socket.AF_INET, ("127.0.0.1", 9999))
    assert parse_address("/run/haproxy.sock") == (socket.AF_UNIX, "/run/haproxy.sock")
    assert parse_address("unix:/run/h.sock") == (socket.AF_UNIX, "/run/h.sock")
    for bad in ("tcp:127.0.0.1", "tcp::80", "tcp:host:99999", ""):
        with pytest.raises(DeployError, match="option 'socket'"):
            parse_address(bad)


def test_admin_state_bits():
    assert admin_to_state(4) == "ready"  # config 'disabled' flag alone: set ready at runtime
    assert admin_to_state(5) == "maint"
    assert admin_to_state(12) == "drain"
    assert admin_to_state(0x20) == "maint"


def test_servers_merges_state_and_stats(fake):
    servers = Runtime(fake.address, 2).servers("web")
    assert [s["name"] for s in servers] == ["blue1", "blue2", "green1"]
    blue1 = servers[0]
    assert (blue1["address"], blue1["port"], blue1["weight"], blue1["state"]) == ("127.0.0.2", 19001, 50, "ready")
    assert (blue1["op_state"], blue1["health"], blue1["check_status"]) == ("running", "UP", "L7OK")
    assert (blue1["scur"], blue1["hrsp_2xx"], blue1["hrsp_5xx"], blue1["req_tot"], blue1["rtime"]) == (2, 7, 1, 8, 3)
    assert servers[1]["state"] == "maint" and servers[2]["state"] == "drain"


def test_unknown_backend_lists_known(fake):
    with pytest.raises(DeployError) as err:
        Runtime(fake.address, 2).servers("nope")
    assert err.value.msg == "Unknown backend 'nope' (option 'backend'). Known backends: web, web_preview."


def test_refused_command_raises(fake):
    runtime = Runtime(fake.address, 2)
    runtime.command("set server web/blue1 weight 3")
    with pytest.raises(DeployError, match="HAProxy refused 'set server web/nope weight 1': No such server."):
        runtime.command("set server web/nope weight 1")


def test_unreachable_socket(tmp_path):
    with pytest.raises(DeployError, match="Cannot reach the HAProxy runtime API at .*missing.sock.*option 'socket'"):
        Runtime(str(tmp_path / "missing.sock"), 1).servers("web")


def current() -> List[dict]:
    return [
        {"name": "blue1", "address": "127.0.0.1", "port": 8001, "weight": 100, "state": "ready"},
        {"name": "blue2", "address": "127.0.0.1", "port": 8002, "weight": 100, "state": "ready"},
        {"name": "green1", "address": "127.0.0.1", "port": 1, "weight": 0, "state": "maint"},
        {"name": "green2", "address": None, "port": None, "weight": 0, "state": "maint"},
    ]


def test_plan_keeps_unlisted_and_omitted_fields():
    changes = plan("web", current(), [{"name": "blue1", "weight": 50}], exclusive=False)
    assert changes == [{"name": "blue1",
                        "before": {"address": "127.0.0.1", "port": 8001, "weight": 100, "state": "ready"},
                        "after": {"address": "127.0.0.1", "port": 8001, "weight": 50, "state": "ready"}}]


def test_plan_is_empty_when_already_as_asked():
    assert plan("web", current(), [{"name": "blue1", "weight": 100, "state": "ready", "port": 8001}], False) == []


def test_exclusive_takes_unlisted_out():
    changes = plan("web", current(), [{"name": "green1", "port": 9001, "weight": 100, "state": "ready"}], True)
    assert [c["name"] for c in changes] == ["blue1", "blue2", "green1"]  # green2 is already out
    assert changes[0]["after"] == {"address": "127.0.0.1", "port": 8001, "weight": 0, "state": "maint"}


@pytest.mark.parametrize("request_, message", [
    ([{"name": "blue1", "weight": 300}], "Invalid value for option 'servers[0].weight': 300. Accepted: an integer from 0 to 256."),
    ([{"name": "blue1", "weight": -1}], "servers[0].weight': -1"),
    ([{"name": "blue1"}, {"name": "red1"}],
     "Unknown server 'red1' in backend 'web' (option 'servers[1].name'). Known servers: blue1, blue2, green1, green2."),
    ([{"name": "blue1", "port": 0}], "servers[0].port': 0"),
    ([{"name": "blue1"}, {"name": "blue1"}], "each server listed once"),
    ([{"name": "green2", "port": 80}], "servers[0].address"),
])
def test_plan_rejects(request_, message):
    with pytest.raises(DeployError) as err:
        plan("web", current(), request_, exclusive=False)
    assert message in err.value.msg


def test_commands_bring_new_servers_up_before_taking_old_out():
    changes = plan("web", current(), [{"name": "green1", "port": 9001, "weight": 100, "state": "ready"}], True)
    assert commands("web", changes) == [
        "set server web/green1 addr 127.0.0.1 port 9001",
        "set server web/green1 weight 100",
        "set server web/green1 state ready",
        "set server web/blue1 state maint",
        "set server web/blue1 weight 0",
        "set server web/blue2 state maint",
        "set server web/blue2 weight 0",
    ]


def test_drain_targets():
    changes = plan("web", current(), [{"name": "blue1", "state": "drain"}, {"name": "green1", "weight": 1}], False)
    # blue1 drains; green1 has weight but stays in maint; blue2 is untouched (not exclusive)
    assert drain_targets(current(), [{"name": "blue1", "state": "drain"}, {"name": "green1", "weight": 1}],
                         changes) == ["blue1", "green1"]
