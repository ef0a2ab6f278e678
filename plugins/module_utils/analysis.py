# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Release analysis: measure a release in rounds and decide pass, fail or inconclusive.

Verdict rules (also in the module documentation):
- a metric's measurement passes (condition true), fails (false) or is
  inconclusive (no measurement, or the condition cannot be evaluated);
- a round fails when any metric failed, else is inconclusive when any metric was
  inconclusive, else passes;
- the analysis stops with verdict fail as soon as failed rounds > failure_limit;
- when all rounds ran: no inconclusive round -> pass (failed rounds within
  failure_limit are tolerated); some inconclusive round -> the 'inconclusive'
  option decides: pause -> verdict inconclusive, fail -> fail, pass -> pass.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List

from ansible_collections.immutable.deploy.plugins.module_utils.conditions import Condition, compile_condition, evaluate
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.providers import (
    CommandProvider, HaproxyProvider, HttpProvider, MeasurementError, PrometheusProvider, Provider)

PROVIDERS = ("haproxy", "http", "prometheus", "command")
INCONCLUSIVE = ("pause", "fail", "pass")
_EXTRA = ("requests", "stable_requests", "exit_code", "output", "stderr")  # reported with the value when measured


class Metric:
    def __init__(self, name: str, provider: Provider, condition: Condition, comparative: bool) -> None:
        self.name, self.provider, self.condition, self.comparative = name, provider, condition, comparative


def build_metrics(specs: List[Dict[str, Any]]) -> List[Metric]:
    """Validate every metric (providers, conditions, JMESPath) before anything is measured."""
    if not specs:
        raise invalid_option("metrics", specs, "a list of at least one metric")
    metrics: List[Metric] = []
    for index, spec in enumerate(specs):
        where = "metrics[%d]" % index
        name = spec.get("name")
        if not name or not str(name).strip():
            raise invalid_option(where + ".name", name, "a non-empty name")
        if name in [m.name for m in metrics]:
            raise invalid_option(where + ".name", name, "a name not used by another metric")
        kind = spec.get("provider")
        if kind not in PROVIDERS:
            raise DeployError("Invalid value for option '%s.provider' (metric %r): %r. Accepted: %s."
                              % (where, name, kind, ", ".join(PROVIDERS)), option=where + ".provider", metric=name)
        block = spec.get(kind)
        if not block:
            raise DeployError("Metric %r (%s) uses provider %r but option '%s.%s' is missing. Accepted: a dict with "
                              "the %s settings." % (name, where, kind, where, kind, kind), option="%s.%s" % (where, kind), metric=name)
        others = [other for other in PROVIDERS if other != kind and spec.get(other)]
        if others:
            raise DeployError("Metric %r (%s) uses provider %r but also sets option '%s.%s'. Accepted: only the block of "
                              "its provider." % (name, where, kind, where, others[0]), option="%s.%s" % (where, others[0]), metric=name)
        if kind != "haproxy" and (spec.get("query") is not None or spec.get("min_requests")):
            option = "query" if spec.get("query") is not None else "min_requests"
            raise DeployError("Metric %r (%s): option '%s.%s' applies to provider haproxy only%s."
                              % (name, where, where, option, "; set %s.%s.query" % (where, kind) if kind == "prometheus" and option == "query" else ""),
                              option="%s.%s" % (where, option), metric=name)
        provider = _provider(kind, block, "%s.%s" % (where, kind), spec)
        condition = compile_condition(spec.get("success") or "", provider.names, name, option=where + ".success")
        metrics.append(Metric(str(name), provider, condition, comparative=kind == "haproxy"))
    return metrics


def _provider(kind: str, block: Dict[str, Any], where: str, spec: Dict[str, Any]) -> Provider:
    if kind == "haproxy":
        return HaproxyProvider(block, where, spec.get("query"), spec.get("min_requests") or 0)
    if kind == "http":
        return HttpProvider(block, where)
    if kind == "prometheus":
        return PrometheusProvider(block, where)
    return CommandProvider(block, where)


def measure(metric: Metric) -> Dict[str, Any]:
    """One measurement: value, stable (comparative providers), passed (True/False/None) and reason."""
    try:
        values = metric.provider.measure()
        passed, reason = evaluate(metric.condition, values)
        if passed is False:
            reason = "condition %r is false" % metric.condition.text
    except MeasurementError as exc:
        values, passed, reason = exc.values, None, exc.reason
    except DeployError:
        raise  # bad input found while measuring (for example an unknown backend)
    except Exception as exc:  # pylint: disable=broad-except
        # A measurement failure must never crash the analysis: it is inconclusive.
        values, passed, reason = {}, None, "unexpected error: %s: %s" % (type(exc).__name__, exc)
    entry: Dict[str, Any] = {"value": values.get("value"), "passed": passed, "reason": reason}
    if metric.comparative:
        entry["stable"] = values.get("stable")
    entry.update({key: values[key] for key in _EXTRA if key in values})
    return entry


def _round_outcome(results: Dict[str, Dict[str, Any]]) -> str:
    states = [entry["passed"] for entry in results.values()]
    if False in states:
        return "fail"
    return "inconclusive" if None in states else "pass"


def _describe(name: str, entry: Dict[str, Any]) -> str:
    text = "%s=%s" % (name, entry["value"])
    if "stable" in entry:
        text += " (stable %s)" % entry["stable"]
    if "requests" in entry:
        text += " over %s requests" % entry["requests"]
    return text + (": " + entry["reason"] if entry["reason"] else "")


def _wait(metrics: List[Metric], until: float, fail_fast: bool, clock: Callable[[], float],
          sleep: Callable[[float], None]) -> None:
    """Sleep to the end of the round; with fail_fast, end it as soon as a metric that can
    be read early (enough requests already) fails its condition."""
    while clock() < until:
        sleep(max(0.0, min(until - clock(), 1.0 if fail_fast else until - clock())))
        if not fail_fast:
            return
        for metric in metrics:
            try:
                values = metric.provider.peek()
                if values is not None and evaluate(metric.condition, values)[0] is False:
                    return
            except MeasurementError:
                continue  # not enough yet: keep measuring


def analyse(metrics: List[Metric], interval: float, count: int, failure_limit: int, inconclusive: str,
            clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
            fail_fast: bool = False) -> Dict[str, Any]:
    """Run the rounds and return the verdict with every measurement (never raises on a verdict)."""
    if not interval > 0:
        raise invalid_option("interval", interval, "seconds between measurements, more than 0")
    if count < 1:
        raise invalid_option("count", count, "the number of measurements, 1 or more")
    if failure_limit < 0:
        raise invalid_option("failure_limit", failure_limit, "0 or more failed rounds tolerated")
    if inconclusive not in INCONCLUSIVE:
        raise invalid_option("inconclusive", inconclusive, ", ".join(INCONCLUSIVE))
    started = clock()
    rounds: List[Dict[str, Any]] = []
    summary = {m.name: {"passes": 0, "failures": 0, "inconclusive": 0} for m in metrics}
    tally = {"pass": 0, "fail": 0, "inconclusive": 0}
    try:
        for number in range(1, count + 1):
            round_start = clock()
            for metric in metrics:
                metric.provider.begin()
            _wait(metrics, round_start + interval, fail_fast, clock, sleep)
            results = {metric.name: measure(metric) for metric in metrics}
            outcome = _round_outcome(results)
            tally[outcome] += 1
            for name, entry in results.items():
                summary[name][{True: "passes", False: "failures", None: "inconclusive"}[entry["passed"]]] += 1
            rounds.append({"round": number, "elapsed": round(clock() - started, 3), "outcome": outcome, "metrics": results})
            if tally["fail"] > failure_limit:
                break
    except DeployError as exc:
        raise DeployError(exc.msg, measurements=rounds, summary=summary, **exc.details) from exc
    verdict, reason = _verdict(rounds, tally, count, failure_limit, inconclusive)
    return {"changed": False, "verdict": verdict, "reason": reason, "measurements": rounds, "summary": summary,
            "rounds": dict(tally, planned=count, run=len(rounds)), "elapsed": round(clock() - started, 3)}


def _verdict(rounds: List[Dict[str, Any]], tally: Dict[str, int], count: int, failure_limit: int,
             inconclusive: str) -> "tuple[str, str]":
    if tally["fail"] > failure_limit:
        last = rounds[-1]
        failed = "; ".join(_describe(name, entry) for name, entry in last["metrics"].items() if entry["passed"] is False)
        return "fail", ("%d failed round(s) exceed failure_limit %d; stopped after round %d of %d; round %d: %s"
                        % (tally["fail"], failure_limit, len(rounds), count, last["round"], failed))
    if not tally["inconclusive"]:
        return "pass", "%d of %d rounds passed, %d failed (failure_limit %d)" % (tally["pass"], count, tally["fail"], failure_limit)
    last = [r for r in rounds if r["outcome"] == "inconclusive"][-1]
    why = "; ".join(_describe(name, entry) for name, entry in last["metrics"].items() if entry["passed"] is None)
    decided = {"pause": "inconclusive", "fail": "fail", "pass": "pass"}[inconclusive]
    return decided, ("%d of %d rounds inconclusive, %d passed, %d failed (failure_limit %d); inconclusive=%s; round %d: %s"
                     % (tally["inconclusive"], count, tally["pass"], tally["fail"], failure_limit, inconclusive, last["round"], why))


def run(params: Dict[str, Any]) -> Dict[str, Any]:
    """The release_analysis module's service. Read-only, so it runs in check mode too."""
    for option, value, ok, accepted in (("interval", params["interval"], params["interval"] > 0, "more than 0 seconds"),
                                        ("count", params["count"], params["count"] >= 1, "1 or more"),
                                        ("failure_limit", params["failure_limit"], params["failure_limit"] >= 0, "0 or more")):
        if not ok:
            raise invalid_option(option, value, accepted)
    metrics = build_metrics(params["metrics"])
    result = analyse(metrics, params["interval"], params["count"], params["failure_limit"], params["inconclusive"],
                     fail_fast=params.get("fail_fast", False))
    if result["verdict"] == "fail" and params["fail_on_verdict"]:
        raise DeployError("Release analysis verdict fail: %s" % result["reason"], **result)
    return result
