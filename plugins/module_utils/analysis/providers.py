# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metric providers of release_analysis: where one measurement's numbers come from.

A provider is built from its option block (bad input raises DeployError at once),
begin() marks the start of an interval and measure() returns the values at its
end. A measurement that cannot be taken raises MeasurementError: the round
records it as inconclusive with the reason, it never crashes the analysis.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import traceback
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import Runtime

try:
    import jmespath
    from jmespath.exceptions import JMESPathError
    JMESPATH_IMPORT_ERROR: Optional[str] = None
except ImportError:  # reported with missing_required_lib by the module, only when an http metric needs it
    jmespath = None
    JMESPathError = Exception
    JMESPATH_IMPORT_ERROR = traceback.format_exc()

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback targets: never via a proxy
MAX_BODY = 10 * 1024 * 1024
MAX_OUTPUT = 4096  # characters of command output kept in the results
HAPROXY_QUERIES = ("error_ratio", "mean_response_time", "request_count")
_RESPONSES = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")


class MeasurementError(Exception):
    """This measurement could not be taken; the reason is recorded and the measurement is inconclusive.

    values: what was measured anyway (for example too few requests), reported with the reason.
    """

    def __init__(self, reason: str, values: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.values = values or {}


def number(value: Any) -> Optional[float]:
    """A finite int/float (not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Provider:
    names: Tuple[str, ...] = ("result",)

    def begin(self) -> None:
        """Called at the start of every interval."""

    def peek(self) -> Optional[Dict[str, Any]]:
        """Values of the interval so far when the provider can tell before it ends, else None."""
        return None

    def measure(self) -> Dict[str, Any]:
        """Values at the end of the interval: 'value' (shown) and the condition names."""
        raise NotImplementedError


def _get_json(url: str, headers: Dict[str, str], timeout: float) -> Any:
    request = urllib.request.Request(url, headers=dict({"Accept": "application/json"}, **headers))
    try:
        with _OPENER.open(request, timeout=timeout) as resp:
            body = resp.read(MAX_BODY + 1)
    except HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace").strip()
        raise MeasurementError("HTTP %d from %s%s" % (exc.code, url, ": " + detail[:300] if detail else "")) from exc
    except (URLError, OSError) as exc:
        raise MeasurementError("cannot reach %s: %s" % (url, getattr(exc, "reason", exc))) from exc
    if len(body) > MAX_BODY:
        raise MeasurementError("answer of %s is larger than %d bytes" % (url, MAX_BODY))
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise MeasurementError("answer of %s is not JSON: %s" % (url, exc)) from exc


class HttpProvider(Provider):
    """A number picked by a JMESPath expression from a JSON document."""

    def __init__(self, opts: Dict[str, Any], where: str) -> None:
        self.url, self.headers, self.timeout = opts["url"], opts.get("headers") or {}, opts.get("timeout") or 5
        self.path = opts.get("jmespath")
        self._expr = None
        if self.path:
            if jmespath is None:
                raise DeployError("%s (needed by option '%s.jmespath')" % (missing_required_lib("jmespath"), where),
                                  option=where + ".jmespath", exception=JMESPATH_IMPORT_ERROR)
            try:
                self._expr = jmespath.compile(self.path)
            except JMESPathError as exc:
                raise DeployError("Invalid value for option '%s.jmespath': %r: %s. Accepted: a JMESPath expression, "
                                  "see https://jmespath.org." % (where, self.path, str(exc).strip()),
                                  option=where + ".jmespath") from exc

    def measure(self) -> Dict[str, Any]:
        document = _get_json(self.url, self.headers, self.timeout)
        found = self._expr.search(document) if self._expr is not None else document
        if found is None:
            raise MeasurementError("%r found nothing in the answer of %s" % (self.path or "@", self.url))
        value = number(found)
        if value is None:
            raise MeasurementError("%r gave %s, not a number" % (self.path or "@", json.dumps(found)[:200]))
        return {"value": value, "result": value}


class PrometheusProvider(Provider):
    """An instant query: the result must be a scalar or a vector of exactly one series."""

    def __init__(self, opts: Dict[str, Any], where: str) -> None:
        self.base, self.query = opts["url"].rstrip("/"), opts["query"]
        self.headers, self.timeout = opts.get("headers") or {}, opts.get("timeout") or 5
        if not self.query.strip():
            raise DeployError("Option '%s.query' is empty. Accepted: a PromQL expression." % where, option=where + ".query")

    def measure(self) -> Dict[str, Any]:
        url = "%s/api/v1/query?%s" % (self.base, urllib.parse.urlencode({"query": self.query}))
        try:
            answer = _get_json(url, self.headers, self.timeout)
        except MeasurementError as exc:
            raise MeasurementError("Prometheus query %r: %s" % (self.query, exc)) from exc
        if not isinstance(answer, dict) or answer.get("status") != "success":
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise MeasurementError("Prometheus query %r failed: %s" % (self.query, error))
        data = answer.get("data") or {}
        kind, result = data.get("resultType"), data.get("result")
        if kind == "vector":
            if not result:
                raise MeasurementError("Prometheus query %r returned an empty vector (no series)" % self.query)
            if len(result) > 1:
                raise MeasurementError("Prometheus query %r returned %d series; aggregate it to one, for example "
                                       "sum(...)" % (self.query, len(result)))
            sample = result[0].get("value")
        elif kind == "scalar":
            sample = result
        else:
            raise MeasurementError("Prometheus query %r returned a %s; expected a scalar or a one-series vector"
                                   % (self.query, kind))
        try:
            value = float(sample[1])
        except (TypeError, ValueError, IndexError) as exc:
            raise MeasurementError("Prometheus query %r returned an unreadable sample %r" % (self.query, sample)) from exc
        if not math.isfinite(value):
            raise MeasurementError("Prometheus query %r returned %s" % (self.query, sample[1]))
        return {"value": value, "result": value}


class CommandProvider(Provider):
    """Runs a command (no shell unless argv asks for one): exit_code, output and result (output as a number)."""
    names = ("exit_code", "output", "result")

    def __init__(self, opts: Dict[str, Any], where: str) -> None:
        self.argv: List[str] = [str(arg) for arg in opts.get("argv") or []]
        self.timeout = opts.get("timeout") or 10
        if not self.argv:
            raise DeployError("Option '%s.argv' is empty. Accepted: the command and its arguments as a list." % where,
                              option=where + ".argv")
        exe = self.argv[0]
        found = (os.path.isfile(exe) and os.access(exe, os.X_OK)) if os.sep in exe else shutil.which(exe)
        if not found:
            raise DeployError("Invalid value for option '%s.argv': %r is not an executable file or a command on PATH."
                              % (where, exe), option=where + ".argv")

    def measure(self) -> Dict[str, Any]:
        try:
            proc = subprocess.run(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise MeasurementError("command %s did not finish within %ss" % (self.argv[0], self.timeout)) from exc
        except OSError as exc:
            raise MeasurementError("cannot run %s: %s" % (self.argv[0], exc)) from exc
        output = proc.stdout.decode("utf-8", "replace").strip()
        try:
            result = number(float(output)) if output else None
        except ValueError:
            result = None
        values = {"exit_code": proc.returncode, "output": output[:MAX_OUTPUT], "result": result,
                  "value": result if result is not None else proc.returncode}
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        if proc.returncode and stderr:
            values["stderr"] = stderr[-MAX_OUTPUT:]
        return values


def _sum(servers: List[Dict[str, Any]], prefix: str) -> Dict[str, Any]:
    group = [srv for srv in servers if srv["name"].startswith(prefix)]
    totals = {field: sum(srv[field] for srv in group) for field in _RESPONSES + ("req_tot",)}
    totals["servers"] = {srv["name"]: srv for srv in group}
    return totals


class HaproxyProvider(Provider):
    """The router's own per-server counters, canary servers against stable servers.

    Counters are cumulative: begin() takes a snapshot and measure() the delta, so a
    value covers exactly one interval. Requests = responses HAProxy counted for the
    servers (hrsp_1xx..5xx + other). error_ratio = delta 5xx / delta responses.
    mean_response_time: HAProxy only keeps rtime, the mean over each server's last
    1024 requests (ms); the value is each server's rtime at the end of the interval
    weighted by its requests in the interval. It covers exactly the interval only
    while a server gets at most 1024 requests per interval and no fewer than that
    was needed to flush older requests; treat it as an approximation.
    """
    names = ("result", "stable", "requests", "stable_requests")

    def __init__(self, opts: Dict[str, Any], where: str, query: Optional[str], min_requests: int) -> None:
        self.where = where
        self.backend, self.canary, self.stable = opts["backend"], opts["canary"], opts.get("stable")
        self.query = query or "error_ratio"
        if self.query not in HAPROXY_QUERIES:
            raise DeployError("Invalid value for option '%s': %r. Accepted: %s." % (where.rsplit(".", 1)[0] + ".query", query,
                              ", ".join(HAPROXY_QUERIES)), option="query")
        if min_requests < 0:
            raise DeployError("Invalid value for option 'min_requests' of %s: %r. Accepted: 0 or more." % (where, min_requests),
                              option="min_requests")
        if not self.canary:
            raise DeployError("Option '%s.canary' is empty. Accepted: the name prefix of the canary servers." % where,
                              option=where + ".canary")
        self.min_requests = min_requests
        self.runtime = Runtime(opts["socket"], opts.get("timeout") or 5)
        self._base: Optional[Dict[str, Any]] = None
        self._checked = False

    def _snapshot(self) -> Dict[str, Any]:
        try:
            servers = self.runtime.servers(self.backend)
        except DeployError as exc:
            if exc.details.get("option") == "backend":  # the backend does not exist: bad input, not a bad measurement
                raise DeployError("%s (option '%s.backend')" % (exc.msg, self.where), **exc.details) from exc
            raise MeasurementError("HAProxy stats: %s" % exc.msg) from exc
        snap: Dict[str, Any] = {"canary": _sum(servers, self.canary),
                                "stable": _sum(servers, self.stable) if self.stable else None}
        if not self._checked:
            names = sorted(srv["name"] for srv in servers)
            for role in ("canary", "stable"):
                prefix = getattr(self, role)
                if prefix and not snap[role]["servers"]:
                    raise DeployError("Invalid value for option '%s.%s': %r matches no server of backend %r. Servers: %s."
                                      % (self.where, role, prefix, self.backend, ", ".join(names) or "none"),
                                      option="%s.%s" % (self.where, role), servers=names)
            self._checked = True
        return snap

    def begin(self) -> None:
        if self._base is None:
            try:
                self._base = self._snapshot()
            except MeasurementError:
                self._base = None  # measure() reports it

    def peek(self) -> Dict[str, Any]:
        """The interval so far, without ending it (for fail_fast)."""
        if self._base is None:
            raise MeasurementError("no HAProxy snapshot at the start of the interval (stats socket unreachable)")
        return self._values(self._base, self._snapshot())

    def measure(self) -> Dict[str, Any]:
        base, self._base = self._base, None
        if base is None:
            raise MeasurementError("no HAProxy snapshot at the start of the interval (stats socket unreachable)")
        now = self._snapshot()
        self._base = now  # back-to-back intervals: this end is the next start
        return self._values(base, now)

    def _values(self, base: Dict[str, Any], now: Dict[str, Any]) -> Dict[str, Any]:
        canary = self._group(base["canary"], now["canary"], "canary")
        stable = self._group(base["stable"], now["stable"], "stable") if now["stable"] is not None else None
        values = {"value": canary[0], "result": canary[0], "requests": canary[1],
                  "stable": stable[0] if stable else None, "stable_requests": stable[1] if stable else None}
        if canary[1] < self.min_requests:
            raise MeasurementError("only %d canary requests in the interval, min_requests is %d" % (canary[1], self.min_requests),
                                   values)
        if values["result"] is None:
            raise MeasurementError("no canary requests in the interval", values)
        return values

    def _group(self, before: Dict[str, Any], after: Dict[str, Any], role: str) -> "tuple[Optional[float], int]":
        delta = {field: after[field] - before[field] for field in _RESPONSES}
        if any(value < 0 for value in delta.values()) or set(before["servers"]) != set(after["servers"]):
            raise MeasurementError("%s counters went back or servers changed during the interval (HAProxy restarted "
                                   "or reconfigured?)" % role)
        requests = sum(delta.values())
        if self.query == "request_count":
            return requests, requests
        if not requests:
            return None, 0
        if self.query == "error_ratio":
            return round(delta["hrsp_5xx"] / requests, 6), requests
        weighted = 0.0
        for name, srv in after["servers"].items():
            prev = before["servers"][name]
            weighted += srv["rtime"] * sum(srv[f] - prev[f] for f in _RESPONSES)
        return round(weighted / requests, 3), requests
