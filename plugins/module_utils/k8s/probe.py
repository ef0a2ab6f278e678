# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Smoke test and watch of a release on Kubernetes, from inside its own pods.

A pod's address is not reachable from where the play runs (and must not be used): the
probe command runs in each pod of the release through the API (exec: API server ->
kubelet) and asks the app on its own port, by default with busybox or GNU wget:
`wget -q -S -O- http://127.0.0.1:<port><path>` bounded by `timeout`. -S prints the
status line to stderr, so a 5xx is reported as such and not as "exit 1". A URL (an
ingress or load balancer address) can be checked from the module's host as well.

until_ok (smoke): rounds until one round where every pod (and the URL) answers as
expected, within the duration. watch: rounds for the whole duration; more failed
answers than max_failures fail it at once. Either way the answers are reported: per
pod the last one, counts per outcome, and a few failed answers with the body's start.
"""
from __future__ import annotations

import re
import shlex
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.analysis.probe import probe as http_get
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import lease
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.release import Releases, validate_names
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.rollout import pod_ready

# Suboptions of the `probe` option (doc fragment immutable.deploy.k8s.probe).
PROBE_OPTION: Dict[str, Any] = dict(type="dict", options=dict(
    command=dict(type="list", elements="str"),
    port=dict(type="int"),
    path=dict(type="str", default="/health"),
    timeout=dict(type="int", default=5),
    expect_status=dict(type="list", elements="int", default=[200]),
    body_contains=dict(type="str"),
    url=dict(type="str"),
    pods=dict(type="str", default="all", choices=["all", "none"]),
))
DEFAULTS: Dict[str, Any] = {k: v.get("default") for k, v in PROBE_OPTION["options"].items()}
PLACEHOLDERS = ("{url}", "{port}", "{path}", "{timeout}")
FAILED_KEPT = 5
_BODY = 200
_STATUS_RE = re.compile(r"HTTP/[0-9.]+\s+([0-9]{3})")


def normalize(probe: Optional[Dict[str, Any]], path: Optional[str] = None) -> Dict[str, Any]:
    """The probe's settings with defaults, checked before anything runs."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in (probe or {}).items() if v is not None})
    if path is not None and not (probe or {}).get("path"):
        out["path"] = path
    if not str(out["path"]).startswith("/"):
        raise invalid_option("probe.path", out["path"], "a URL path starting with '/'")
    if isinstance(out["timeout"], bool) or not isinstance(out["timeout"], int) or out["timeout"] < 1:
        raise invalid_option("probe.timeout", out["timeout"], "whole seconds, at least 1")
    if out["port"] is not None and not 1 <= out["port"] <= 65535:
        raise invalid_option("probe.port", out["port"], "a port from 1 to 65535")
    if not out["expect_status"] or any(not 100 <= s <= 599 for s in out["expect_status"]):
        raise invalid_option("probe.expect_status", out["expect_status"], "HTTP status codes (100-599)")
    if out["command"] is not None and (not out["command"] or not all(isinstance(a, str) for a in out["command"])):
        raise invalid_option("probe.command", out["command"], "a non-empty list of strings (exec form)")
    if out["url"] is not None and not re.match(r"^https?://[^/\s]+", out["url"]):
        raise invalid_option("probe.url", out["url"], "an http:// or https:// URL")
    if out["pods"] == "none" and not out["url"]:
        raise invalid_option("probe.pods", "none", "'all', or 'none' together with probe.url")
    return out


def local_url(port: int, path: str) -> str:
    return "http://127.0.0.1:%d%s" % (port, path)


def command(spec: Dict[str, Any], port: int) -> List[str]:
    """The argv run in a pod: the default wget, or the user's with {url}, {port}, {path}, {timeout} filled in."""
    url = local_url(port, spec["path"])
    if spec["command"] is None:
        return ["sh", "-c", "exec timeout %d wget -q -S -O- %s" % (spec["timeout"], shlex.quote(url))]
    values = dict(zip(PLACEHOLDERS, (url, str(port), spec["path"], str(spec["timeout"]))))
    out = []
    for arg in spec["command"]:
        for key, value in values.items():
            arg = arg.replace(key, value)
        out.append(arg)
    return out


def _short(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= _BODY else text[:_BODY - 3] + "..."


def judge(code: Optional[int], out: str, err: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    """One answer of an exec'd probe: {ok, outcome, status, body}. The HTTP status (from wget -S, or
    any 'HTTP/1.1 NNN' line) decides when there is one, else the exit code."""
    statuses = _STATUS_RE.findall(err) or _STATUS_RE.findall(out)
    status = int(statuses[-1]) if statuses else None
    if code is None:
        return {"ok": False, "outcome": "no answer within %ss" % spec["timeout"], "status": None, "body": _short(out)}
    if status is not None:
        ok, outcome = status in spec["expect_status"], "status %d" % status
    else:
        ok = code == 0
        lines = [line for line in (err or out or "").splitlines() if line.strip()]
        outcome = "exit %d" % code + (": %s" % _short(lines[-1]) if lines and code else "")
    if ok and spec["body_contains"] and spec["body_contains"] not in out:
        ok, outcome = False, "%s without %r in the body" % (outcome, spec["body_contains"])
    return {"ok": ok, "outcome": outcome, "status": status, "body": _short(out)}


def judge_url(spec: Dict[str, Any]) -> Dict[str, Any]:
    ok, outcome, dummy = http_get(spec["url"], spec["timeout"], spec["expect_status"], spec["body_contains"])
    return {"ok": ok, "outcome": outcome, "status": None, "body": ""}


# -- the pods ---------------------------------------------------------------------------------
def live_pods(pods: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Running pods that are not being deleted, oldest name first (a stable order for reports)."""
    out = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
           and not (p.get("metadata") or {}).get("deletionTimestamp")]
    return sorted(out, key=lambda p: p["metadata"]["name"])


def container_port(pod: Dict[str, Any]) -> Tuple[str, Optional[int]]:
    """(container name, its port named http or its first port) of the pod's first container."""
    container = (((pod.get("spec") or {}).get("containers")) or [{}])[0]
    ports = container.get("ports") or []
    port = next((p.get("containerPort") for p in ports if p.get("name") == "http"), None)
    if port is None and ports:
        port = ports[0].get("containerPort")
    return container.get("name"), port


class Prober:
    """Runs rounds of the probe over the pods of one release (read again every round: pods come and go)."""

    def __init__(self, client: Client, app: str, release: str, spec: Dict[str, Any],
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client, self.app, self.release, self.spec = client, app, release, spec
        self.clock, self.sleep = clock, sleep
        self.stats: Dict[str, Any] = {"rounds": 0, "requests": 0, "failures": 0, "outcomes": {}, "answers": {},
                                      "failed": []}

    def pods(self) -> List[Dict[str, Any]]:
        found = self.client.list("Pod", kn.label_selector(kn.selector_for(self.app, self.release)))
        return live_pods(found)

    def _record(self, target: str, answer: Dict[str, Any]) -> None:
        s = self.stats
        s["requests"] += 1
        s["outcomes"][answer["outcome"]] = s["outcomes"].get(answer["outcome"], 0) + 1
        s["answers"][target] = answer["outcome"]
        if not answer["ok"]:
            s["failures"] += 1
            if len(s["failed"]) < FAILED_KEPT:
                s["failed"].append({"target": target, "outcome": answer["outcome"], "body": answer["body"]})

    def round(self) -> bool:
        """One answer from every pod (and the URL); True when all were as expected."""
        self.stats["rounds"] += 1
        ok = True
        if self.spec["pods"] == "all":
            pods = self.pods()
            if not pods:
                self._record("(no pod)", {"ok": False, "outcome": "no running pod of release %s" % self.release,
                                          "status": None, "body": ""})
                ok = False
            for pod in pods:
                name = pod["metadata"]["name"]
                container, port = container_port(pod)
                port = self.spec["port"] or port
                if port is None:
                    raise DeployError("Option 'probe.port': pod %s declares no container port; set probe.port." % name,
                                      option="probe.port")
                code, out, err = self.client.exec(name, command(self.spec, port), self.spec["timeout"] + 2, container)
                answer = judge(code, out, err, self.spec)
                if not pod_ready(pod) and answer["ok"]:
                    answer = dict(answer, ok=False, outcome=answer["outcome"] + " but the pod is not ready")
                self._record(name, answer)
                ok = ok and answer["ok"]
        if self.spec["url"]:
            answer = judge_url(self.spec)
            self._record(self.spec["url"], answer)
            ok = ok and answer["ok"]
        return ok

    def until_ok(self, duration: float, interval: float) -> bool:
        deadline = self.clock() + duration
        while True:
            if self.round():
                return True
            if self.clock() >= deadline:
                return False
            self.sleep(interval)

    def watch(self, duration: float, interval: float, max_failures: int) -> bool:
        deadline = self.clock() + duration
        while True:
            self.round()
            if self.stats["failures"] > max_failures:
                return False
            if self.clock() >= deadline:
                return True
            self.sleep(interval)

    def report(self) -> str:
        s = self.stats
        parts = ["%s: %s" % (t, o) for t, o in sorted(s["answers"].items())]
        text = "last answers %s; outcomes %s" % ("; ".join(parts) or "none", s["outcomes"])
        bodies = ["%s %s%s" % (f["target"], f["outcome"], " (body: %s)" % f["body"] if f["body"] else "")
                  for f in s["failed"][:2]]
        if bodies:
            text += "; failed answers: " + "; ".join(bodies)
        return text


def check_timing(duration: Any, interval: Any, max_failures: Any = 0, prefix: str = "") -> None:
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
        raise invalid_option(prefix + "duration" if prefix else "duration", duration, "seconds >= 0")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        raise invalid_option(prefix + "interval" if prefix else "interval", interval, "seconds > 0")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
        raise invalid_option(prefix + "max_failures" if prefix else "max_failures", max_failures, "an integer >= 0")


def run(client: Client, app: str, release: str, spec: Dict[str, Any], mode: str, duration: float,
        interval: float, max_failures: int = 0) -> Dict[str, Any]:
    """Smoke test (until_ok) or watch of a release; the stats with passed, or DeployError with the answers."""
    prober = Prober(client, app, release, spec)
    started = time.monotonic()
    if mode == "until_ok":
        passed = prober.until_ok(duration, interval)
        what = "did not pass within %ss" % duration
    else:
        passed = prober.watch(duration, interval, max_failures)
        stats = prober.stats
        what = "failed %d of %d answers (allowed %d)" % (stats["failures"], stats["requests"], max_failures)
    result = dict(prober.stats, passed=passed, seconds=round(time.monotonic() - started, 3), release=release)
    if passed:
        return result
    raise DeployError("%s of release %r of app %r (namespace %s) %s: %s." % (
        "Smoke test" if mode == "until_ok" else "Watch", release, app, client.ns, what, prober.report()), **result)


def check(p: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """k8s_probe: everything validated before connecting; the release must exist."""
    validate_names(p, "release")
    check_timing(p["duration"], p["interval"], p["max_failures"])
    spec = normalize(p.get("probe"))
    client = Client(p)
    client.require_namespace()
    with lease.holding(p, p.get("lock"), check_mode, client):
        Releases(client).existing(p["app"], p["release"])
        result = run(client, p["app"], p["release"], spec, p["mode"], p["duration"], p["interval"], p["max_failures"])
    return dict(result, changed=False)
