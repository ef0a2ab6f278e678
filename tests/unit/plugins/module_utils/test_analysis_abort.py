"""release_analysis' abort option: validation, command planning, the write at the verdict (no router here)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.analysis import verdict as analysis
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.verdict import (
    Abort, Metric, abort_commands, analyse, chunk_commands, parse_abort, run)
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.conditions import compile_condition
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.providers import MeasurementError, Provider


def server(name: str, weight: int = 0, state: str = "maint", address: Optional[str] = "127.0.0.1",
           port: Optional[int] = 28001) -> Dict[str, Any]:
    return {"name": name, "address": address, "port": port, "weight": weight, "state": state}


WEB = [server("blue1", 180, "ready"), server("blue2", 0, "maint", None, None),
       server("green1", 20, "ready", port=28002), server("green2", 0, "maint", None, None)]
PREVIEW = [server("blue1", 0, "maint", None, None), server("green1", 1, "ready", port=28002)]
SPEC = {"socket": "/run/web/haproxy.sock", "state_file": "/run/web/server-state", "backends": [
    {"backend": "web", "servers": [{"name": "blue1", "weight": 200, "state": "ready", "address": "127.0.0.1", "port": 28001},
                                   {"name": "blue2", "weight": 0, "state": "maint"},
                                   {"name": "green1", "weight": 0, "state": "maint"},
                                   {"name": "green2", "weight": 0, "state": "maint"}]},
    {"backend": "web_preview", "servers": [], "exclusive": True}]}


class FakeRuntime:
    """The Runtime calls Abort makes; refuse=... makes batch() raise."""

    def __init__(self, backends: Dict[str, List[Dict[str, Any]]], refuse: Optional[Exception] = None) -> None:
        self.backends, self.refuse = backends, refuse
        self.writes: List[List[str]] = []
        self.saved: List[str] = []

    def servers(self, backend: str) -> List[Dict[str, Any]]:
        if backend not in self.backends:
            raise DeployError("Unknown backend %r (option 'backend'). Known backends: %s." % (backend, ", ".join(self.backends)),
                              option="backend", known=list(self.backends))
        return [dict(srv) for srv in self.backends[backend]]

    def batch(self, cmds: List[str]) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.writes.append(list(cmds))
        return ""

    def save_state(self, path: str) -> None:
        self.saved.append(path)


class Ticks:
    """A monotonic clock that advances 1 ms per reading."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def spec(**changes: Any) -> Dict[str, Any]:
    out = {"socket": SPEC["socket"], "state_file": SPEC["state_file"],
           "backends": [dict(b, servers=[dict(s) for s in b["servers"]]) for b in SPEC["backends"]]}
    out.update(changes)
    return out


def first_server(**changes: Any) -> Dict[str, Any]:
    out = spec()
    out["backends"][0]["servers"][0].update(changes)
    return out


@pytest.mark.parametrize("given, option, words", [
    (spec(socket="tcp:nohost"), "abort.socket", ["'tcp:nohost'", "tcp:HOST:PORT"]),
    (spec(socket=None), "abort.socket", ["None", "unix socket path"]),
    (spec(timeout=0), "abort.timeout", ["0", "more than 0"]),
    (spec(backends=[]), "abort.backends", ["[]", "at least one backend"]),
    (spec(backends=[{"backend": "", "servers": [{"name": "a", "weight": 1}]}]), "abort.backends[0].backend", ["''"]),
    (spec(backends=[{"backend": "web", "exclusive": True}, {"backend": "web", "exclusive": True}]),
     "abort.backends[1].backend", ["'web'", "not listed before"]),
    (spec(backends=[{"backend": "web", "servers": []}]), "abort.backends[0].servers", ["exclusive: true"]),
    (first_server(name=""), "abort.backends[0].servers[0].name", ["''"]),
    (first_server(name="blue2"), "abort.backends[0].servers[1].name", ["'blue2'", "listed once"]),
    (first_server(weight=300), "abort.backends[0].servers[0].weight", ["300", "0 to 256"]),
    (first_server(weight=-1), "abort.backends[0].servers[0].weight", ["-1", "0 to 256"]),
    (first_server(weight=True), "abort.backends[0].servers[0].weight", ["True"]),
    (first_server(weight="10"), "abort.backends[0].servers[0].weight", ["'10'"]),
    (first_server(state="up"), "abort.backends[0].servers[0].state", ["'up'", "ready, drain, maint"]),
    (first_server(port=0), "abort.backends[0].servers[0].port", ["0", "1 to 65535"]),
    (first_server(address=" "), "abort.backends[0].servers[0].address", ["' '", "IP address"]),
])
def test_bad_abort_options_name_option_value_and_accepted(given, option, words):
    with pytest.raises(DeployError) as err:
        parse_abort(given)
    assert err.value.details["option"] == option
    assert err.value.msg.startswith("Invalid value for option '%s': " % option) and "Accepted: " in err.value.msg
    for word in words:
        assert word in err.value.msg


def test_parse_abort_normalises():
    out = parse_abort({"socket": "tcp:127.0.0.1:9999", "backends": [{"backend": "web", "servers": [{"name": "blue1", "weight": 7}]}]})
    assert out == {"socket": "tcp:127.0.0.1:9999", "timeout": 5.0, "state_file": None,
                   "backends": [{"backend": "web", "exclusive": False, "servers": [{"name": "blue1", "weight": 7, "state": "ready"}]}]}


def test_commands_are_absolute_and_stable_gains_before_the_canary_leaves():
    parsed = parse_abort(spec())["backends"][0]
    written, cmds = abort_commands("web", WEB, parsed["servers"], False, "abort.backends[0]")
    assert [s["name"] for s in written] == ["blue1", "blue2", "green1", "green2"]
    # Same address and port: no addr command. Weight and state always, even where unchanged (blue2, green2).
    assert cmds == ["set server web/blue1 weight 200", "set server web/blue1 state ready",
                    "set server web/blue2 state maint", "set server web/blue2 weight 0",
                    "set server web/green1 state maint", "set server web/green1 weight 0",
                    "set server web/green2 state maint", "set server web/green2 weight 0"]


def test_changed_address_is_written_and_exclusive_takes_the_rest_out():
    servers = [{"name": "green1", "weight": 5, "state": "ready", "address": "127.0.0.2", "port": 28009}]
    written, cmds = abort_commands("web_preview", PREVIEW, servers, True, "abort.backends[1]")
    assert written == servers + [{"name": "blue1", "weight": 0, "state": "maint"}]
    assert cmds == ["set server web_preview/green1 addr 127.0.0.2 port 28009", "set server web_preview/green1 weight 5",
                    "set server web_preview/green1 state ready",
                    "set server web_preview/blue1 state maint", "set server web_preview/blue1 weight 0"]


def test_unknown_server_and_port_without_address_are_bad_input():
    with pytest.raises(DeployError) as err:
        abort_commands("web", WEB, [{"name": "red1", "weight": 0, "state": "maint"}], False, "abort.backends[0]")
    assert err.value.details["option"] == "abort.backends[0].servers[0].name"
    assert "'red1'" in err.value.msg and "blue1, blue2, green1, green2" in err.value.msg
    with pytest.raises(DeployError) as err:
        abort_commands("web", WEB, [{"name": "blue2", "weight": 1, "state": "ready", "port": 80}], False, "abort.backends[0]")
    assert err.value.details["option"] == "abort.backends[0].servers[0].address"


def test_chunks_keep_order_and_stay_within_the_limit():
    cmds = ["set server web/s%02d weight 0" % i for i in range(20)]
    chunks = chunk_commands(cmds, limit=100)
    assert [c for chunk in chunks for c in chunk] == cmds
    assert all(len(";".join(chunk)) <= 100 for chunk in chunks) and len(chunks) > 1
    assert chunk_commands(cmds) == [cmds]


def test_prepare_reports_unknown_backend_and_unreachable_socket_as_abort_options():
    abort = Abort(spec(), runtime=FakeRuntime({"web": WEB}))
    with pytest.raises(DeployError) as err:
        abort.prepare()
    assert err.value.details["option"] == "abort.backends[1].backend" and "'web_preview'" in err.value.msg

    class Down(FakeRuntime):
        def servers(self, backend):
            raise DeployError("Cannot reach the HAProxy runtime API at '/x' (option 'socket'): refused", option="socket")
    with pytest.raises(DeployError) as err:
        Abort(spec(), runtime=Down({})).prepare()
    assert err.value.details["option"] == "abort.socket" and "abort.socket" in err.value.msg


def prepared(runtime: FakeRuntime, check_mode: bool = False) -> Abort:
    abort = Abort(spec(), check_mode=check_mode, clock=Ticks(), runtime=runtime)
    abort.prepare()
    return abort


def test_write_sends_the_precomputed_commands_once_then_saves_the_state():
    runtime = FakeRuntime({"web": WEB, "web_preview": PREVIEW})
    abort = prepared(runtime)
    assert runtime.writes == []  # prepare only reads
    out = abort.write(500.0)
    assert runtime.writes == [abort.commands] and runtime.saved == ["/run/web/server-state"]
    assert abort.commands[:2] == ["set server web/blue1 weight 200", "set server web/blue1 state ready"]
    assert abort.commands[-2:] == ["set server web_preview/green1 state maint", "set server web_preview/green1 weight 0"]
    assert out["written"] is True and out["changed"] is True and out["reason"] == "verdict fail"
    assert out["decided_at"] == 500.0 and out["written_at"] == pytest.approx(500.001) and out["latency_ms"] == 1.0
    assert out["backends"][1] == {"backend": "web_preview", "servers": [{"name": "blue1", "weight": 0, "state": "maint"},
                                                                        {"name": "green1", "weight": 0, "state": "maint"}]}
    assert abort.diff["before"]["web/green1"] == {"address": "127.0.0.1", "port": 28002, "weight": 20, "state": "ready"}
    assert abort.diff["after"]["web/green1"] == {"address": "127.0.0.1", "port": 28002, "weight": 0, "state": "maint"}


@pytest.mark.parametrize("error", [DeployError("HAProxy refused part of ...: No such server."), BrokenPipeError(32, "Broken pipe")])
def test_a_failed_write_is_reported_never_raised(error):
    runtime = FakeRuntime({"web": WEB, "web_preview": PREVIEW}, refuse=error)
    out = prepared(runtime).write(500.0)
    assert out["written"] is False and out["written_at"] is None and out["latency_ms"] is None
    assert out["error"] and out["reason"].startswith("write failed: ") and runtime.saved == []


def test_check_mode_writes_nothing_and_says_what_it_would_write():
    runtime = FakeRuntime({"web": WEB, "web_preview": PREVIEW})
    abort = prepared(runtime, check_mode=True)
    out = abort.write(500.0)
    assert runtime.writes == [] and runtime.saved == []
    assert out["written"] is False and out["changed"] is True and out["commands"] == abort.commands


class Values(Provider):
    def __init__(self, values: List[Any]) -> None:
        self.values = list(values)

    def measure(self) -> Dict[str, Any]:
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return {"value": value, "result": value}


def metric(values: List[Any]) -> Metric:
    return Metric("errors", Values(values), compile_condition("result < 0.01", ("result",), "errors"), comparative=False)


def fake_time():
    now = [10.0]
    return (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))


@pytest.mark.parametrize("values, inconclusive, verdict, calls", [
    ([0.0, 0.5, 0.0], "fail", "fail", 1),
    ([0.0, 0.0, 0.0], "fail", "pass", 0),
    ([0.0, MeasurementError("down"), 0.0], "pause", "inconclusive", 0),
    ([0.0, MeasurementError("down"), 0.0], "fail", "fail", 1),  # inconclusive=fail: a fail verdict aborts too
])
def test_on_fail_runs_once_at_a_fail_verdict_with_the_decision_time(values, inconclusive, verdict, calls):
    clock, sleep = fake_time()
    seen: List[float] = []
    out = analyse([metric(values)], 2.0, 3, 0, inconclusive, clock=clock, sleep=sleep,
                  on_fail=lambda decided: seen.append(decided) or {"written": True, "changed": True})
    assert out["verdict"] == verdict and len(seen) == calls
    assert out["decided_at"] == clock()
    if calls:
        assert seen == [out["decided_at"]] and out["abort"] == {"written": True} and out["changed"] is True
    else:
        assert "abort" not in out and out["changed"] is False


def params(**changes: Any) -> Dict[str, Any]:
    base = {"interval": 0.01, "count": 1, "failure_limit": 0, "inconclusive": "fail", "fail_on_verdict": False,
            "fail_fast": False, "abort": spec(),
            "metrics": [{"name": "smoke", "provider": "command", "command": {"argv": ["false"]}, "success": "exit_code == 0"}]}
    base.update(changes)
    return base


@pytest.fixture
def router(monkeypatch):
    runtime = FakeRuntime({"web": WEB, "web_preview": PREVIEW})
    monkeypatch.setattr(analysis.haproxy, "Runtime", lambda socket, timeout: runtime)
    return runtime


def test_run_writes_the_abort_at_a_fail_verdict_and_returns_it(router):
    out = run(params())
    assert out["verdict"] == "fail" and out["changed"] is True
    assert out["abort"]["written"] is True and out["abort"]["decided_at"] == out["decided_at"]
    assert out["abort"]["written_at"] >= out["decided_at"] and out["abort"]["latency_ms"] >= 0
    assert router.writes == [out["abort"]["commands"]]
    assert out["diff"]["after"]["web/blue1"]["weight"] == 200
    with pytest.raises(DeployError) as err:
        run(params(fail_on_verdict=True))
    assert "abort written" in err.value.msg and err.value.details["abort"]["written"] is True


def test_run_without_fail_writes_nothing(router):
    good = [{"name": "smoke", "provider": "command", "command": {"argv": ["true"]}, "success": "exit_code == 0"}]
    out = run(params(metrics=good))
    assert out["verdict"] == "pass" and out["changed"] is False and "diff" not in out
    assert out["abort"]["written"] is False and out["abort"]["reason"] == "verdict pass: nothing written"
    assert router.writes == []


def test_bad_abort_fails_before_any_measurement_and_changes_nothing(router, monkeypatch):
    calls = []
    monkeypatch.setattr(analysis, "analyse", lambda *a, **k: calls.append(a))
    bad = spec()
    bad["backends"][0]["servers"][2]["name"] = "red1"
    for given in (first_server(weight=999), bad):
        with pytest.raises(DeployError) as err:
            run(params(abort=given))
        assert err.value.details["option"].startswith("abort.backends[0].servers[")
    assert calls == [] and router.writes == []
