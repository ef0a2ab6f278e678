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

import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.routers import haproxy
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.conditions import Condition, compile_condition, evaluate
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.analysis.providers import (
    CommandProvider, HaproxyProvider, HttpProvider, MeasurementError, PrometheusProvider, Provider)

PROVIDERS = ("haproxy", "http", "prometheus", "command")
INCONCLUSIVE = ("pause", "fail", "pass")
_EXTRA = ("requests", "stable_requests", "exit_code", "output", "stderr")  # reported with the value when measured


# The metrics option of every module that analyses (release_analysis, k8s_canary): one shape, one set of checks.
_HEADERS = dict(type="dict", no_log=True)
METRIC_OPTIONS: Dict[str, Any] = dict(
    name=dict(type="str", required=True),
    provider=dict(type="str", required=True, choices=["haproxy", "http", "prometheus", "command"]),
    success=dict(type="str", required=True),
    query=dict(type="str", choices=["error_ratio", "mean_response_time", "request_count"]),
    min_requests=dict(type="int", default=0),
    haproxy=dict(type="dict", options=dict(socket=dict(type="str", required=True), backend=dict(type="str", required=True),
                                           canary=dict(type="str", required=True), stable=dict(type="str"),
                                           timeout=dict(type="float", default=5))),
    http=dict(type="dict", options=dict(url=dict(type="str", required=True), jmespath=dict(type="str"), headers=_HEADERS,
                                        timeout=dict(type="float", default=5))),
    prometheus=dict(type="dict", options=dict(url=dict(type="str", required=True), query=dict(type="str", required=True),
                                              headers=_HEADERS, timeout=dict(type="float", default=5))),
    command=dict(type="dict", options=dict(argv=dict(type="list", elements="str", required=True),
                                           timeout=dict(type="float", default=10))),
)


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
            fail_fast: bool = False, on_fail: Optional[Callable[[float], Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Run the rounds and return the verdict with every measurement (never raises on a verdict).

    on_fail(decided_at) runs the moment the verdict is fail, before anything else is done
    with the result; what it returns is the result's 'abort'."""
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
    decided = clock()
    result: Dict[str, Any] = {"changed": False, "verdict": verdict, "reason": reason, "decided_at": decided}
    if verdict == "fail" and on_fail is not None:
        result["abort"] = on_fail(decided)
        result["changed"] = bool(result["abort"].pop("changed", False))
    result.update({"measurements": rounds, "summary": summary, "rounds": dict(tally, planned=count, run=len(rounds)),
                   "elapsed": round(clock() - started, 3)})
    return result


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


# The abort option: the router write that gives stable all traffic back, done by the process
# that decided. A later task (the canary role's abort) would add a module start-up (0.5 s or
# more, see docs/architecture.md) during which the canary keeps serving.
ABORT_WRITE_BYTES = 8000  # per runtime write; HAProxy reads a CLI line into one buffer (tune.bufsize, 16 kB by default)


def parse_abort(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Validate the abort option's format (no router contact); return it normalised."""
    socket_path = spec.get("socket")
    try:
        haproxy.parse_address(socket_path or "")
    except DeployError:
        raise invalid_option("abort.socket", socket_path, "an HAProxy admin socket: a unix socket path or tcp:HOST:PORT") from None
    timeout = spec.get("timeout") if spec.get("timeout") is not None else 5
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise invalid_option("abort.timeout", timeout, "seconds, more than 0")
    backends = spec.get("backends")
    if not isinstance(backends, list) or not backends:
        raise invalid_option("abort.backends", backends, "a list of at least one backend with the servers to write")
    out: List[Dict[str, Any]] = []
    for index, block in enumerate(backends):
        where = "abort.backends[%d]" % index
        name = block.get("backend") if isinstance(block, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise invalid_option(where + ".backend", name, "the name of an HAProxy backend")
        if name in [b["backend"] for b in out]:
            raise invalid_option(where + ".backend", name, "a backend not listed before")
        servers = block.get("servers") or []
        exclusive = bool(block.get("exclusive"))
        if not isinstance(servers, list) or (not servers and not exclusive):
            raise invalid_option(where + ".servers", servers, "at least one server, or exclusive: true (every server out)")
        listed: List[Dict[str, Any]] = []
        for number, server in enumerate(servers):
            listed.append(_abort_server(server, "%s.servers[%d]" % (where, number), [srv["name"] for srv in listed]))
        out.append({"backend": name, "exclusive": exclusive, "servers": listed})
    return {"socket": socket_path, "timeout": float(timeout), "state_file": spec.get("state_file") or None, "backends": out}


def _abort_server(server: Any, where: str, seen: List[str]) -> Dict[str, Any]:
    if not isinstance(server, dict):
        raise invalid_option(where, server, "a dict with name, weight and state")
    name = server.get("name")
    if not isinstance(name, str) or not name.strip():
        raise invalid_option(where + ".name", name, "the name of a server of the backend")
    if name in seen:
        raise invalid_option(where + ".name", name, "each server listed once per backend")
    weight = server.get("weight")
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= haproxy.MAX_WEIGHT:
        raise invalid_option(where + ".weight", weight, "an integer from 0 to %d" % haproxy.MAX_WEIGHT)
    state = server.get("state") or "ready"
    if state not in haproxy.STATES:
        raise invalid_option(where + ".state", state, ", ".join(haproxy.STATES))
    entry = {"name": name, "weight": weight, "state": state}
    address, port = server.get("address"), server.get("port")
    if address is not None:
        if not str(address).strip():
            raise invalid_option(where + ".address", address, "an IP address")
        entry["address"] = str(address)
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise invalid_option(where + ".port", port, "an integer from 1 to 65535")
        entry["port"] = port
    return entry


def abort_commands(backend: str, current: List[Dict[str, Any]], servers: List[Dict[str, Any]], exclusive: bool,
                   where: str) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(servers to write, runtime commands) for one backend, from its servers as read now.

    Weight and state are always written (absolute, so the write is right whatever changed
    after this read; HAProxy ignores a state it already has); an address only when it
    differs. haproxy.commands orders them: servers taking traffic first, then the ones
    leaving, so the backend is never empty in between."""
    by_name = {srv["name"]: srv for srv in current}
    for number, server in enumerate(servers):
        if server["name"] not in by_name:
            raise DeployError("Invalid value for option '%s.servers[%d].name': %r. Accepted: a server of backend %r: %s."
                              % (where, number, server["name"], backend, ", ".join(sorted(by_name)) or "none"),
                              option="%s.servers[%d].name" % (where, number), known=sorted(by_name))
        if "port" in server and "address" not in server and by_name[server["name"]]["address"] is None:
            raise invalid_option("%s.servers[%d].address" % (where, number), None,
                                 "an IP address, required with port while the server has none")
    wanted = list(servers)
    if exclusive:
        named = {server["name"] for server in servers}
        wanted += [{"name": srv["name"], "weight": 0, "state": "maint"} for srv in current if srv["name"] not in named]
    changes = []
    for server in wanted:
        now = by_name[server["name"]]
        changes.append({"name": server["name"],
                        "before": {"address": now["address"], "port": now["port"], "weight": None, "state": None},
                        "after": {"address": server.get("address", now["address"]), "port": server.get("port", now["port"]),
                                  "weight": server["weight"], "state": server["state"]}})
    return wanted, haproxy.commands(backend, changes)


def chunk_commands(cmds: List[str], limit: int = ABORT_WRITE_BYTES) -> List[List[str]]:
    """Consecutive groups whose joined line stays within limit bytes (one runtime write each)."""
    chunks: List[List[str]] = []
    size = 0
    for cmd in cmds:
        if chunks and size + 1 + len(cmd) <= limit:
            chunks[-1].append(cmd)
            size += 1 + len(cmd)
        else:
            chunks.append([cmd])
            size = len(cmd)
    return chunks


class Abort:
    """The abort option: checked against the router before the first measurement, then, when
    the verdict is fail, written as precomputed runtime commands (no read on the way)."""

    def __init__(self, spec: Dict[str, Any], check_mode: bool = False, clock: Callable[[], float] = time.monotonic,
                 runtime: Optional[Any] = None) -> None:
        self.spec = parse_abort(spec)
        self.check_mode = check_mode
        self.clock = clock
        self.runtime = runtime or haproxy.Runtime(self.spec["socket"], self.spec["timeout"])
        self.backends: List[Dict[str, Any]] = []
        self.commands: List[str] = []
        self.diff: Dict[str, Dict[str, Any]] = {"before": {}, "after": {}}

    def prepare(self) -> None:
        """Read every backend once: unknown backends or servers are bad input, reported now."""
        for index, block in enumerate(self.spec["backends"]):
            where = "abort.backends[%d]" % index
            try:
                current = self.runtime.servers(block["backend"])
            except DeployError as exc:
                option = {"backend": where + ".backend", "socket": "abort.socket"}.get(exc.details.get("option", ""))
                if option is None:
                    raise
                raise DeployError("%s (option '%s')" % (exc.msg, option), **dict(exc.details, option=option)) from exc
            servers, cmds = abort_commands(block["backend"], current, block["servers"], block["exclusive"], where)
            self.backends.append({"backend": block["backend"], "servers": servers})
            self.commands += cmds
            by_name = {srv["name"]: srv for srv in current}
            for server in servers:
                key, now = "%s/%s" % (block["backend"], server["name"]), by_name[server["name"]]
                self.diff["before"][key] = {field: now[field] for field in haproxy.FIELDS}
                self.diff["after"][key] = {field: server.get(field, now[field]) for field in haproxy.FIELDS}

    def report(self, reason: str, **extra: Any) -> Dict[str, Any]:
        return dict({"written": False, "reason": reason, "socket": self.spec["socket"], "backends": self.backends,
                     "commands": self.commands}, **extra)

    def write(self, decided_at: float) -> Dict[str, Any]:
        """Called the moment the verdict is fail. Returns the report; 'changed' is popped by analyse."""
        timing = {"decided_at": decided_at, "written_at": None, "latency_ms": None, "pid": os.getpid()}
        if self.check_mode:
            return self.report("check mode: not written", changed=True, **timing)
        try:
            for chunk in chunk_commands(self.commands):
                self.runtime.batch(chunk)
        except Exception as exc:  # pylint: disable=broad-except
            # Never raise here: the verdict stands and is returned, and the caller's own
            # abort (the canary role's safety net) still runs and tries again.
            error = exc.msg if isinstance(exc, DeployError) else "%s: %s" % (type(exc).__name__, exc)
            return self.report("write failed: %s" % error, changed=True, error=error, **timing)
        timing["written_at"] = written_at = self.clock()
        timing["latency_ms"] = round((written_at - decided_at) * 1000, 3)
        out = self.report("verdict fail", written=True, changed=True, state_file=self.spec["state_file"], **timing)
        if self.spec["state_file"]:
            try:  # after the timing: persisting for a restart of HAProxy is not on the way to weight 0
                self.runtime.save_state(self.spec["state_file"])
            except DeployError as exc:
                out["state_file_error"] = exc.msg
        return out


def run(params: Dict[str, Any], check_mode: bool = False) -> Dict[str, Any]:
    """The release_analysis module's service. Read-only unless the abort option is set and the verdict is fail."""
    for option, value, ok, accepted in (("interval", params["interval"], params["interval"] > 0, "more than 0 seconds"),
                                        ("count", params["count"], params["count"] >= 1, "1 or more"),
                                        ("failure_limit", params["failure_limit"], params["failure_limit"] >= 0, "0 or more")):
        if not ok:
            raise invalid_option(option, value, accepted)
    metrics = build_metrics(params["metrics"])
    abort = Abort(params["abort"], check_mode) if params.get("abort") else None
    if abort is not None:
        abort.prepare()
    result = analyse(metrics, params["interval"], params["count"], params["failure_limit"], params["inconclusive"],
                     fail_fast=params.get("fail_fast", False), on_fail=abort.write if abort is not None else None)
    if abort is not None:
        if "abort" not in result:
            result["abort"] = abort.report("verdict %s: nothing written" % result["verdict"])
        elif result["changed"]:
            result["diff"] = abort.diff
    if result["verdict"] == "fail" and params["fail_on_verdict"]:
        msg = "Release analysis verdict fail: %s" % result["reason"]
        if result.get("abort", {}).get("written"):
            msg += "; abort written %s ms after the verdict" % result["abort"]["latency_ms"]
        raise DeployError(msg, **result)
    return result
