from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils.analysis import verdict as analysis
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.verdict import Metric, analyse, build_metrics, run
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.conditions import compile_condition
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.providers import HaproxyProvider, MeasurementError, Provider


class Script(Provider):
    """Returns scripted values; an Exception in the script is raised by measure()."""

    def __init__(self, values: List[Any]) -> None:
        self.values = list(values)
        self.begins = 0
        self.measured = 0

    def begin(self) -> None:
        self.begins += 1

    def measure(self) -> Dict[str, Any]:
        self.measured += 1
        value = self.values.pop(0)
        if isinstance(value, Exception):
            raise value
        return {"value": value, "result": value}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def metric(name: str, values: List[Any], success: str = "result < 10") -> Metric:
    return Metric(name, Script(values), compile_condition(success, ("result",), name), comparative=False)


def go(metrics, count=3, failure_limit=0, inconclusive="fail", interval=2.0):
    clock = Clock()
    return analyse(metrics, interval, count, failure_limit, inconclusive, clock=clock, sleep=clock.sleep), clock


def test_all_rounds_pass():
    out, clock = go([metric("a", [1, 2, 3]), metric("b", [4, 5, 6])])
    assert out["verdict"] == "pass"
    assert [r["outcome"] for r in out["measurements"]] == ["pass"] * 3
    assert out["summary"] == {"a": {"passes": 3, "failures": 0, "inconclusive": 0}, "b": {"passes": 3, "failures": 0, "inconclusive": 0}}
    assert out["measurements"][1]["metrics"]["a"] == {"value": 2, "passed": True, "reason": ""}
    assert clock.slept == [2.0, 2.0, 2.0] and out["elapsed"] == 6.0
    assert out["rounds"] == {"pass": 3, "fail": 0, "inconclusive": 0, "planned": 3, "run": 3}


def test_stops_as_soon_as_failures_exceed_limit():
    a = metric("a", [1, 50, 1, 1])
    out = go([a], count=4)[0]
    assert out["verdict"] == "fail"
    assert len(out["measurements"]) == 2 and a.provider.measured == 2
    assert out["measurements"][1]["metrics"]["a"]["passed"] is False
    assert "a=50" in out["reason"] and "failure_limit 0" in out["reason"] and "round 2" in out["reason"]


def test_failures_within_limit_are_tolerated():
    out = go([metric("a", [50, 1, 1])], failure_limit=1)[0]
    assert out["verdict"] == "pass"
    assert out["rounds"]["fail"] == 1
    out = go([metric("a", [50, 1, 50])], failure_limit=1)[0]
    assert out["verdict"] == "fail" and out["rounds"]["run"] == 3


def test_round_fails_when_any_metric_fails_even_if_another_is_inconclusive():
    out = go([metric("a", [MeasurementError("down")]), metric("b", [50])], count=1)[0]
    assert out["measurements"][0]["outcome"] == "fail" and out["verdict"] == "fail"


@pytest.mark.parametrize("option, verdict", [("pause", "inconclusive"), ("fail", "fail"), ("pass", "pass")])
def test_inconclusive_option_decides(option, verdict):
    out = go([metric("a", [1, MeasurementError("endpoint down"), 2])], inconclusive=option)[0]
    assert out["verdict"] == verdict
    entry = out["measurements"][1]["metrics"]["a"]
    assert entry == {"value": None, "passed": None, "reason": "endpoint down"}
    assert "inconclusive=%s" % option in out["reason"] and "endpoint down" in out["reason"]


def test_failure_beyond_limit_wins_over_inconclusive_pass():
    out = go([metric("a", [MeasurementError("x"), 50])], count=2, inconclusive="pass")[0]
    assert out["verdict"] == "fail"


def test_unexpected_provider_exception_is_inconclusive_not_a_crash():
    out = go([metric("a", [RuntimeError("boom"), 1, 1])], inconclusive="pause")[0]
    assert out["verdict"] == "inconclusive"
    assert "RuntimeError: boom" in out["measurements"][0]["metrics"]["a"]["reason"]


def test_condition_that_cannot_be_evaluated_is_inconclusive():
    m = Metric("a", Script(["text"]), compile_condition("result < 10", ("result",), "a"), comparative=False)
    out = go([m], count=1, inconclusive="pause")[0]
    assert out["verdict"] == "inconclusive" and "cannot order 'text' and 10" in out["reason"]


def test_bad_input_during_measurement_keeps_results():
    with pytest.raises(DeployError) as err:
        go([metric("a", [1, DeployError("Unknown backend 'x'", option="backend")])])
    assert err.value.msg == "Unknown backend 'x'" and err.value.details["option"] == "backend"
    assert [r["outcome"] for r in err.value.details["measurements"]] == ["pass"]


@pytest.mark.parametrize("interval, count, limit, option", [(0, 3, 0, "interval"), (-1, 3, 0, "interval"),
                                                            (1, 0, 0, "count"), (1, 3, -1, "failure_limit")])
def test_bad_loop_options(interval, count, limit, option):
    with pytest.raises(DeployError) as err:
        run({"interval": interval, "count": count, "failure_limit": limit, "inconclusive": "fail",
             "fail_on_verdict": True, "metrics": [{"name": "a", "provider": "command", "command": {"argv": ["true"]},
                                                   "success": "exit_code == 0"}]})
    assert err.value.details["option"] == option and option in err.value.msg


def spec(**kw):
    base = {"name": "m", "provider": "http", "http": {"url": "http://127.0.0.1:1/x", "jmespath": "a.b"},
            "success": "result < 1", "query": None, "min_requests": 0}
    base.update(kw)
    return base


@pytest.mark.parametrize("metrics, words", [
    ([], ["metrics"]),
    ([spec(provider="datadog")], ["metrics[0].provider", "'m'", "datadog", "haproxy, http, prometheus, command"]),
    ([spec(http=None)], ["metrics[0].http", "missing", "'m'"]),
    ([spec(command={"argv": ["true"]})], ["metrics[0].command", "only the block"]),
    ([spec(http={"url": "http://x", "jmespath": "a.[b"})], ["metrics[0].http.jmespath", "a.[b"]),
    ([spec(success="result.real < 1")], ["metrics[0].success", "attribute access", "'m'"]),
    ([spec(success="stable < 1")], ["unknown name 'stable'"]),
    ([spec(), spec()], ["metrics[1].name", "not used by another"]),
    ([spec(query="error_ratio")], ["metrics[0].query", "haproxy only"]),
    ([spec(provider="command", http=None, command={"argv": []}, success="exit_code == 0")], ["metrics[0].command.argv", "empty"]),
    ([spec(provider="command", http=None, command={"argv": ["/nonexistent/x"]}, success="exit_code == 0")],
     ["metrics[0].command.argv", "/nonexistent/x"]),
    ([spec(provider="haproxy", http=None, haproxy={"socket": "tcp:nohost", "backend": "b", "canary": "g"})],
     ["socket", "tcp:HOST:PORT"]),
])
def test_bad_metric_input(metrics, words):
    with pytest.raises(DeployError) as err:
        build_metrics(metrics)
    for word in words:
        assert word in err.value.msg


def test_bad_input_fails_before_any_measurement(monkeypatch):
    calls = []
    monkeypatch.setattr(analysis, "analyse", lambda *a, **k: calls.append(a))
    good = {"name": "ok", "provider": "command", "command": {"argv": ["true"]}, "success": "exit_code == 0"}
    with pytest.raises(DeployError):
        run({"interval": 1, "count": 1, "failure_limit": 0, "inconclusive": "fail", "fail_on_verdict": True,
             "metrics": [good, spec(http={"url": "http://x", "jmespath": "[["})]})
    assert calls == []


def test_fail_on_verdict(monkeypatch):
    params = {"interval": 0.01, "count": 2, "failure_limit": 0, "inconclusive": "fail", "fail_on_verdict": True,
              "metrics": [{"name": "smoke", "provider": "command", "command": {"argv": ["false"]}, "success": "exit_code == 0"}]}
    with pytest.raises(DeployError) as err:
        run(params)
    assert err.value.msg.startswith("Release analysis verdict fail:") and "smoke=1" in err.value.msg
    assert err.value.details["verdict"] == "fail" and len(err.value.details["measurements"]) == 1
    out = run(dict(params, fail_on_verdict=False))
    assert out["verdict"] == "fail" and out["measurements"][0]["metrics"]["smoke"]["exit_code"] == 1


class FakeRuntime:
    def __init__(self, snapshots: List[List[Dict[str, Any]]]) -> None:
        self.snapshots = snapshots

    def servers(self, backend: str) -> List[Dict[str, Any]]:
        if not self.snapshots:
            raise DeployError("Cannot reach the HAProxy runtime API", option="socket")
        return self.snapshots.pop(0)


def srv(name: str, ok: int, err: int, rtime: int = 0) -> Dict[str, Any]:
    return {"name": name, "hrsp_1xx": 0, "hrsp_2xx": ok, "hrsp_3xx": 0, "hrsp_4xx": 0, "hrsp_5xx": err,
            "hrsp_other": 0, "req_tot": ok + err, "rtime": rtime}


def haproxy(snapshots, query="error_ratio", min_requests=0, stable="blue"):
    provider = HaproxyProvider({"socket": "/tmp/none.sock", "backend": "web", "canary": "green", "stable": stable},
                               "metrics[0].haproxy", query, min_requests)
    provider.runtime = FakeRuntime(snapshots)
    return provider


def test_haproxy_deltas_sum_servers_by_prefix():
    p = haproxy([
        [srv("blue1", 1000, 5), srv("green1", 100, 0), srv("green2", 100, 50)],
        [srv("blue1", 1100, 5), srv("green1", 140, 2), srv("green2", 150, 58)],
        [srv("blue1", 1100, 5), srv("green1", 141, 2), srv("green2", 150, 58)],
    ], min_requests=5)
    p.begin()
    first = p.measure()
    assert first["requests"] == 100 and first["result"] == 0.1 and first["stable"] == 0.0 and first["stable_requests"] == 100
    p.begin()  # back to back: the end of round 1 is the start of round 2, no new snapshot
    with pytest.raises(MeasurementError) as err:
        p.measure()
    assert "only 1 canary requests" in err.value.reason and err.value.values["requests"] == 1
    assert err.value.values["stable"] is None  # no stable requests in that interval


def test_haproxy_mean_response_time_weighted_by_requests():
    p = haproxy([[srv("blue1", 0, 0, 5), srv("green1", 0, 0), srv("green2", 0, 0)],
                 [srv("blue1", 10, 0, 5), srv("green1", 30, 0, 10), srv("green2", 10, 0, 50)]], query="mean_response_time")
    p.begin()
    out = p.measure()
    assert out["result"] == 20.0 and out["stable"] == 5.0


def test_haproxy_unreachable_then_restart_is_inconclusive():
    p = haproxy([[srv("blue1", 10, 0), srv("green1", 10, 0)], [srv("blue1", 1, 0), srv("green1", 1, 0)]])
    p.begin()
    with pytest.raises(MeasurementError, match="went back"):
        p.measure()
    p.runtime.snapshots = []  # socket gone: this round and the next are inconclusive
    p.begin()  # no-op: the restart snapshot is the new start
    with pytest.raises(MeasurementError, match="Cannot reach"):
        p.measure()
    p.begin()
    with pytest.raises(MeasurementError, match="no HAProxy snapshot"):
        p.measure()
    p.runtime.snapshots = [[srv("blue1", 1, 0), srv("green1", 1, 0)], [srv("blue1", 2, 0), srv("green1", 3, 1)]]
    p.begin()
    assert p.measure()["result"] == 0.333333


def test_haproxy_prefix_matching_nothing_is_bad_input():
    p = haproxy([[srv("blue1", 10, 0), srv("green1", 10, 0)]], stable="red")
    with pytest.raises(DeployError) as err:
        p.begin()
    assert "metrics[0].haproxy.stable" in err.value.msg and "'red'" in err.value.msg and "blue1" in err.value.msg


def test_fail_fast_ends_the_round_once_enough_requests_fail():
    from ansible_collections.immutable.deploy.plugins.module_utils.analysis import verdict as analysis
    from ansible_collections.immutable.deploy.plugins.module_utils.analysis.conditions import compile_condition

    class Early:
        def __init__(self):
            self.peeks = 0

        def begin(self):
            pass

        def peek(self):
            self.peeks += 1
            return {"result": 0.5 if self.peeks >= 2 else 0.0, "value": 0.5}

        def measure(self):
            return {"result": 0.5, "value": 0.5}

    now = [0.0]
    provider = Early()
    metric = analysis.Metric("errors", provider, compile_condition("result < 0.01", ("result", "value"), "errors"), False)
    result = analysis.analyse([metric], 10, 1, 0, "fail", clock=lambda: now[0],
                              sleep=lambda s: now.__setitem__(0, now[0] + s), fail_fast=True)
    assert result["verdict"] == "fail" and result["elapsed"] == 2.0 and provider.peeks == 2
    now[0] = 0.0
    slow = analysis.analyse([analysis.Metric("errors", Early(), metric.condition, False)], 10, 1, 0, "fail",
                            clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert slow["verdict"] == "fail" and slow["elapsed"] == 10.0
