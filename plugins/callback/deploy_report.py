# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: deploy_report
type: notification
short_description: Write a JSON deployment report and a Markdown summary of each run
version_added: 0.1.0
description:
  - For every run that deploys with this collection, writes C(<name>.json) and C(<name>.md) into O(output_dir).
  - "The JSON has, per host and app: the strategy (blue_green, canary, rollback, build, promote) and target
    (docker, kubernetes), the release it went from and the one it went to with their digests, every step (each
    module run of the collection) with its timing, the traffic shares it set, the analysis verdicts with their
    measurements and the checks' counts, the result (success, noop, paused, aborted, failed) with the reason;
    and for the run, who and what ran it (user, AWX job, CI pipeline, commit, controller, ansible-core) and
    C(handover), the data the playbook handed on with C(set_stats) (for example C(deploy_image)), which a CI
    job can pass to the next one as AWX passes it to the next workflow node."
  - The Markdown is a short summary fit for a CI job summary (C($GITHUB_STEP_SUMMARY), a GitLab or Jenkins
    artifact); O(summary_file) appends it to a file directly.
  - Everything comes from the structured results the modules return and the roles' C(*_result) facts; no
    message is parsed, apart from the C(msg) of the failure that ended a deploy, which is its reason.
    Module arguments are never copied into the report (they may hold secrets).
  - For a JUnit XML report use ansible-core's own P(ansible.builtin.junit#callback) beside this one; a deploy
    that fails shows there as a failed test case whose message is the reason.
  - Enable it like any callback, for example C(ANSIBLE_CALLBACKS_ENABLED=immutable.deploy.deploy_report) or
    C(callbacks_enabled) in C(ansible.cfg).
requirements:
  - enabled in C(callbacks_enabled)
options:
  output_dir:
    description: Directory of the reports, created when missing.
    type: path
    default: ./deploy-reports
    env:
      - name: IMMUTABLE_DEPLOY_REPORT_DIR
    ini:
      - section: immutable_deploy_report
        key: output_dir
  file_name:
    description:
      - Base name of the two files. Default C(<playbook>-<UTC time>-<pid>), one pair per run.
      - A fixed name makes each run replace the previous run's files.
    type: str
    env:
      - name: IMMUTABLE_DEPLOY_REPORT_NAME
    ini:
      - section: immutable_deploy_report
        key: file_name
  summary_file:
    description: Also append the Markdown summary to this file, for example the value of C($GITHUB_STEP_SUMMARY).
    type: path
    env:
      - name: IMMUTABLE_DEPLOY_REPORT_SUMMARY
    ini:
      - section: immutable_deploy_report
        key: summary_file
"""

import datetime
import getpass
import json
import os
import socket
import time
from typing import Any, Dict, List, Optional

from ansible import constants as C
from ansible import context
from ansible.module_utils.ansible_release import __version__ as ansible_version
from ansible.plugins.callback import CallbackBase

SCHEMA = "immutable.deploy/report/v1"
PREFIX = "immutable.deploy."
ROLES = {"blue_green": "blue_green", "canary": "canary", "rollback": "rollback", "image": "build"}
OUTCOME_FACTS = {"blue_green_result": "blue_green", "canary_result": "canary", "rollback_result": "rollback",
                 "image_pinned": "build"}
# Module runs that begin a deploy: after a finished deploy of the same app on the host, a new record opens.
OPENERS = {"deploy_lock", "docker_switch", "image_build"}
AWX_VARS = ("awx_job_id", "awx_job_template_name", "awx_workflow_job_id", "awx_workflow_job_name",
            "awx_user_name", "awx_project_revision", "awx_inventory_name", "awx_host")
COUNTS = ("ok", "changed", "failures", "skipped", "rescued", "ignored")
# Steps worth a line in the Markdown summary (the JSON has every step).
NOTABLE = ("haproxy_backend", "k8s_traffic", "docker_switch", "release_analysis", "http_check", "docker_release",
           "k8s_release", "image_build", "image_promote")
ICON = {"success": "\u2705", "noop": "\u2705", "paused": "\u23f8\ufe0f", "aborted": "\u26d4", "failed": "\u274c"}


def _utc(stamp: Optional[float]) -> Optional[str]:
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _short(action: str) -> str:
    for prefix in (PREFIX, "ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def _slot_of(server: str) -> str:
    return server.rstrip("0123456789")


def _role_of(task: Any) -> Optional[str]:
    role = getattr(task, "_role", None)
    if role is None:
        return None
    name = role.get_name()
    if "." in name and not name.startswith(PREFIX):
        return None  # another collection's role of the same name
    return name.rsplit(".", 1)[-1]


def _ci() -> Dict[str, Any]:
    """Which CI system runs us, from the variables each one sets."""
    env = os.environ
    if env.get("GITHUB_ACTIONS") == "true":
        return {"system": "github-actions", "actor": env.get("GITHUB_ACTOR"), "commit": env.get("GITHUB_SHA"),
                "ref": env.get("GITHUB_REF_NAME"), "job": env.get("GITHUB_JOB"),
                "url": "%s/%s/actions/runs/%s" % (env.get("GITHUB_SERVER_URL", "https://github.com"),
                                                   env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID"))}
    if env.get("GITLAB_CI") == "true":
        return {"system": "gitlab-ci", "actor": env.get("GITLAB_USER_LOGIN"), "commit": env.get("CI_COMMIT_SHA"),
                "ref": env.get("CI_COMMIT_REF_NAME"), "job": env.get("CI_JOB_NAME"), "url": env.get("CI_JOB_URL"),
                "pipeline": env.get("CI_PIPELINE_URL")}
    if env.get("JENKINS_URL"):
        return {"system": "jenkins", "actor": env.get("BUILD_USER_ID"), "commit": env.get("GIT_COMMIT"),
                "ref": env.get("BRANCH_NAME") or env.get("GIT_BRANCH"), "job": env.get("JOB_NAME"),
                "build": env.get("BUILD_NUMBER"), "url": env.get("BUILD_URL")}
    return {}


class Deploy:
    """What one host did to one app: a deploy, a canary, a rollback, a build or a promotion."""

    def __init__(self, host: str, app: Optional[str], strategy: Optional[str]) -> None:
        self.host, self.app, self.strategy = host, app, strategy
        self.target: Optional[str] = None
        self.steps: List[Dict[str, Any]] = []
        self.releases: Dict[str, Dict[str, Any]] = {}
        self.live_before: Optional[str] = None
        self.started_release: Optional[str] = None
        self.switch: Optional[Dict[str, Any]] = None
        self.outcome: Optional[Dict[str, Any]] = None
        self.built: Optional[Dict[str, Any]] = None
        self.failures: List[Dict[str, Any]] = []
        self.started: Optional[float] = None
        self.finished: Optional[float] = None
        self.live_after: Optional[str] = None
        self.roles: set = set()

    def known(self, release: Optional[Dict[str, Any]]) -> None:
        if release and release.get("id"):
            entry = self.releases.setdefault(release["id"], {"id": release["id"]})
            for key in ("digest", "image", "slot"):
                if release.get(key):
                    entry[key] = release[key]

    def release(self, rid: Optional[str]) -> Optional[Dict[str, Any]]:
        if not rid:
            return None
        return dict(self.releases.get(rid, {"id": rid}))

    def slots(self) -> Dict[str, str]:
        return {r["slot"]: r["id"] for r in self.releases.values() if r.get("slot")}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "immutable.deploy.deploy_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._root = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
        self._playbook: Optional[str] = None
        self._started = time.time()
        self._task_started: Dict[str, float] = {}
        self._open: Dict[str, Deploy] = {}
        self._deploys: List[Deploy] = []
        self._failures: List[Dict[str, Any]] = []
        self._extra_vars: Dict[str, Any] = {}
        self._ours = False

    # -- Ansible events -------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._playbook = playbook._file_name

    def v2_playbook_on_play_start(self, play: Any) -> None:
        try:
            extra = play.get_variable_manager().extra_vars
            self._extra_vars = {k: extra[k] for k in AWX_VARS if k in extra}
        except Exception:  # pylint: disable=broad-except
            self._extra_vars = {}

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task_started.setdefault(task._uuid, time.time())
        path = task.get_path() or ""
        if path and os.path.realpath(path.rsplit(":", 1)[0]).startswith(self._root + os.sep):
            self._ours = True

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task_started.setdefault(task._uuid, time.time())

    def v2_runner_on_ok(self, result: Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not (self._deploys or self._ours):
            return
        try:
            report = self._report(stats)
            self._write(report)
        except Exception as exc:  # pylint: disable=broad-except
            self._display.warning("immutable.deploy.deploy_report: no report written: %s" % exc)

    # -- collecting -----------------------------------------------------------------
    @staticmethod
    def _parts(result: Any):
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        return task, host.get_name(), data

    def _record(self, result: Any, status: str) -> None:
        task, host, data = self._parts(result)
        now = time.time()
        action = task.action or ""
        role = _role_of(task)
        if status in ("failed", "unreachable"):
            failure = {"host": host, "task": task.get_name(), "reason": str(data.get("msg", "failed"))}
            self._failures.append(failure)
        facts = data.get("ansible_facts") or {}
        outcome = [(name, facts[name]) for name in OUTCOME_FACTS if isinstance(facts.get(name), dict)]
        ours = action.startswith(PREFIX) or role in ROLES or bool(outcome)
        if not ours:
            if status in ("failed", "unreachable") and host in self._open:
                self._open[host].failures.append(failure)
            return
        self._ours = True
        items = data.get("results") if isinstance(data.get("results"), list) else [data]
        started = self._task_started.get(task._uuid, now)
        for item in items:
            if not isinstance(item, dict) or item.get("skipped"):
                continue
            deploy = self._deploy_for(host, action, role, item, task, outcome)
            if deploy is None:
                continue
            deploy.started = started if deploy.started is None else min(deploy.started, started)
            deploy.finished = now
            if action.startswith(PREFIX) and not item.get("_ansible_no_log"):
                step = self._step(deploy, task, _short(action), item, status, started, now)
                if step is not None:
                    deploy.steps.append(step)
            for name, value in outcome:
                deploy.outcome = dict(value, _fact=name)
                if deploy.strategy is None:
                    deploy.strategy = OUTCOME_FACTS[name]
        if status in ("failed", "unreachable") and host in self._open:
            self._open[host].failures.append(failure)

    def _deploy_for(self, host: str, action: str, role: Optional[str], item: Dict[str, Any], task: Any,
                    outcome: List[Any]) -> Optional[Deploy]:
        module = _short(action)
        args = (item.get("invocation") or {}).get("module_args") or {}
        app = args.get("app") or (args.get("name") if module == "deploy_lock" else None)
        if module == "image_build":
            app = args.get("name")
        if not app and outcome:
            app = outcome[0][1].get("app") or (outcome[0][1].get("tagged", "").rsplit(":", 1)[0] or None)
        strategy = ROLES.get(role or "") or ("promote" if module == "image_promote" else None)
        role_uuid = getattr(getattr(task, "_role", None), "_uuid", None) if role in ROLES else None
        current = self._open.get(host)
        if current is not None:
            if app and current.app and app != current.app:
                current = None
            elif current.outcome is not None:
                # A finished deploy still takes its own role's last tasks (the fail after a published
                # abort, the lock release); another application of a role, or a module that begins
                # a deploy outside a role, starts the next one.
                if role_uuid is not None and role_uuid not in current.roles:
                    current = None
                elif role_uuid is None and module in OPENERS and args.get("state", "present") == "present":
                    current = None
        if current is None:
            if not (app or strategy):
                return None
            current = Deploy(host, app, strategy)
            self._open[host] = current
            self._deploys.append(current)
        if role_uuid is not None:
            current.roles.add(role_uuid)
        if current.app is None and app:
            current.app = app
        if current.strategy is None and strategy:
            current.strategy = strategy
        return current

    def _step(self, deploy: Deploy, task: Any, module: str, data: Dict[str, Any], status: str,
              started: float, now: float) -> Optional[Dict[str, Any]]:
        step: Dict[str, Any] = {"name": task.get_name(), "module": module, "status": status,
                                "changed": bool(data.get("changed")), "started": _utc(started),
                                "seconds": round(now - started, 3)}
        if status == "failed":
            step["reason"] = str(data.get("msg", "failed"))
        if module.startswith("k8s_"):
            deploy.target = "kubernetes"
        elif module.startswith("docker_") or module in ("haproxy_backend", "nginx_upstream"):
            deploy.target = deploy.target or "docker"
        if module in ("docker_release_info", "k8s_release_info"):
            releases = data.get("releases") or []
            for rel in releases:
                deploy.known(rel)
            live = [r["id"] for r in releases if r.get("live")]
            if deploy.live_before is None and live:
                deploy.live_before = live[0]
            step["releases"] = [{k: r.get(k) for k in ("id", "slot", "digest", "state", "health", "live", "weight")}
                                for r in releases]
        elif module in ("docker_release", "k8s_release"):
            rel = data.get("release") or {}
            args = (data.get("invocation") or {}).get("module_args") or {}
            if not rel.get("id") and args.get("release"):
                # a release that failed to start: the ids it was asked for (the image is pinned by digest)
                image = args.get("image") or ""
                rel = {"id": args["release"], "image": image or None, "slot": args.get("slot"),
                       "digest": image.split("@", 1)[1] if "@sha256:" in image else None}
            deploy.known(rel)
            step["release"] = {k: rel.get(k) for k in ("id", "slot", "digest", "image", "replicas", "state", "health")
                               if k in rel}
            if args.get("state", rel.get("state")) not in (None, "absent", "stopped"):
                deploy.started_release = rel.get("id")
        elif module == "haproxy_backend":
            step["backend"] = data.get("backend")
            step["traffic"] = self._shares(deploy, data.get("servers") or [])
            step["changes"] = len(data.get("changes") or [])
            if data.get("backend") == deploy.app and step["traffic"]:
                deploy.live_after = max(step["traffic"], key=step["traffic"].get)
        elif module == "nginx_upstream":
            step["upstream"] = data.get("name")
            step["servers"] = [{k: s.get(k) for k in ("address", "port", "weight", "down", "backup")}
                               for s in data.get("servers") or []]
        elif module == "k8s_traffic":
            for key in ("strategy", "service", "action", "previous_release", "weights", "replicas", "switch_seconds",
                        "endpoints", "restored"):
                if key in data:
                    step[key] = data[key]
            if data.get("weights"):
                step["traffic"] = data["weights"]
            elif data.get("selector"):
                after = (data["selector"].get("after") or {}).get("immutable-deploy.io/release")
                if after:
                    step["traffic"] = {after: 100}
                    if data.get("service") == deploy.app:
                        deploy.live_after = after
        elif module == "docker_switch":
            target, previous = data.get("target") or {}, data.get("previous") or {}
            for rel in data.get("releases") or []:
                deploy.known(rel)
            deploy.known(target)
            deploy.known(previous)
            deploy.switch = {"to": target.get("id"), "from": previous.get("id")}
            if deploy.live_before is None:
                live = [r["id"] for r in data.get("releases") or [] if r.get("live")]
                deploy.live_before = live[0] if live else previous.get("id")
            step.update(to=target.get("id"), previous=previous.get("id"), started_stopped=data.get("started"))
            if (data.get("router") or {}).get("backend"):
                step["backend"] = data["router"]["backend"]
            if target.get("id") and status == "ok":
                step["traffic"] = {target["id"]: 100}
                deploy.live_after = target["id"]
        elif module == "release_analysis":
            for key in ("verdict", "reason", "summary", "rounds", "elapsed", "measurements"):
                if key in data:
                    step[key] = data[key]
            if isinstance(data.get("abort"), dict):
                abort = data["abort"]
                step["abort"] = {k: abort.get(k) for k in ("written", "reason", "latency_ms", "error") if k in abort}
        elif module == "http_check":
            for key in ("passed", "requests", "failures", "outcomes", "max_latency"):
                if key in data:
                    step[key] = data[key]
        elif module == "image_build":
            image = data.get("image") or {}
            deploy.built = {k: image.get(k) for k in ("tagged", "digest", "ref")}
            step.update(image=image.get("tagged"), digest=image.get("digest"), built=data.get("built"),
                        pushed=data.get("pushed"))
        elif module == "image_promote":
            step.update(source=(data.get("source") or {}).get("ref"), target=(data.get("target") or {}).get("tagged"),
                        digest=data.get("digest"))
        elif module == "notify":
            step.update(event=(data.get("event") or {}).get("event"), delivered=data.get("delivered"),
                        endpoint=data.get("endpoint"), attempts=len(data.get("attempts") or []))
        elif module == "deploy_lock":
            lock = data.get("lock") or {}
            step["lock"] = {k: lock.get(k) for k in ("owner", "purpose") if k in lock} or None
        return step

    @staticmethod
    def _shares(deploy: Deploy, servers: List[Dict[str, Any]]) -> Dict[str, float]:
        """Percent of new requests per release: the weights of servers in state ready, by slot."""
        weights: Dict[str, int] = {}
        for srv in servers:
            if srv.get("state") == "ready" and (srv.get("weight") or 0) > 0 and srv.get("address"):
                slot = _slot_of(srv.get("name", ""))
                weights[slot] = weights.get(slot, 0) + int(srv["weight"])
        total = sum(weights.values())
        if not total:
            return {}
        names = deploy.slots()
        return {names.get(slot, slot): round(100.0 * w / total, 1) for slot, w in sorted(weights.items())}

    # -- the report -----------------------------------------------------------------
    def _ran_by(self) -> Dict[str, Any]:
        ci = {k: v for k, v in _ci().items() if v}
        awx = {k[4:]: v for k, v in self._extra_vars.items() if v not in (None, "")}
        try:
            local_user = getpass.getuser()
        except Exception:  # pylint: disable=broad-except
            local_user = None
        cli = context.CLIARGS
        return {"user": awx.get("user_name") or ci.get("actor") or local_user, "local_user": local_user,
                "controller": socket.gethostname(), "pid": os.getpid(), "ansible_core": ansible_version,
                "playbook": self._playbook, "check_mode": bool(cli.get("check")) if cli else False,
                "awx": awx or None, "ci": ci or None}

    @staticmethod
    def _from_to(deploy: Deploy, outcome: Dict[str, Any], result: str):
        """Release ids the deploy went from and to, from the role's outcome fact when it published one,
        else from what the modules reported (the release started, the switch, the live one read first)."""
        switch = deploy.switch or {}
        if deploy.strategy == "canary" and outcome:
            if outcome.get("outcome") == "promoted":
                return outcome.get("previous") or deploy.live_before, outcome.get("canary")
            return outcome.get("stable"), outcome.get("canary")
        to_id = outcome.get("live") or switch.get("to") or deploy.started_release
        if result == "noop":
            return to_id, to_id
        return (outcome.get("previous") if outcome else None) or switch.get("from") or deploy.live_before, to_id

    def _deploy_result(self, deploy: Deploy, failed_hosts: Dict[str, int]) -> Dict[str, Any]:
        outcome = deploy.outcome or {}
        failed = bool(deploy.failures) and failed_hosts.get(deploy.host, 0) > 0
        reason = deploy.failures[-1]["reason"] if deploy.failures else None
        if outcome.get("outcome") == "aborted":
            result, reason = "aborted", outcome.get("reason") or reason
        elif failed:
            result = "failed"
        elif outcome.get("outcome") in ("paused", "noop"):
            result = outcome["outcome"]
            reason = outcome.get("reason") if result == "paused" else None
        elif deploy.outcome is not None and outcome.get("changed") in (False, "False", "false"):
            result, reason = "noop", None
        else:
            result, reason = "success", None
        from_id, to_id = self._from_to(deploy, outcome, result)
        record: Dict[str, Any] = {
            "host": deploy.host, "app": deploy.app, "strategy": deploy.strategy, "target": deploy.target,
            "from": deploy.release(from_id), "to": deploy.release(to_id), "result": result, "reason": reason,
            "live_after": deploy.live_after if deploy.live_after is not None else (to_id if result == "success" else None),
            "started": _utc(deploy.started), "finished": _utc(deploy.finished),
            "seconds": round((deploy.finished or 0) - (deploy.started or 0), 3) if deploy.started else None,
            "outcome": {k: v for k, v in outcome.items() if k != "_fact"} or None, "steps": deploy.steps,
        }
        if deploy.built:
            record["image"] = deploy.built
        return record

    def _report(self, stats: Any) -> Dict[str, Any]:
        failed_hosts = {h: stats.failures.get(h, 0) + stats.dark.get(h, 0) for h in stats.processed}
        deploys = [self._deploy_result(d, failed_hosts) for d in self._deploys]
        results = [d["result"] for d in deploys]
        if any(failed_hosts.values()):
            overall = "aborted" if "aborted" in results and "failed" not in results else "failed"
        elif results and all(r == "noop" for r in results):
            overall = "noop"
        elif "paused" in results:
            overall = "paused"
        else:
            overall = "success"
        finished = time.time()
        # what set_stats handed on: the next AWX workflow node's extra variables, or a CI job's outputs
        handover = (getattr(stats, "custom", None) or {}).get("_run") or {}
        return {"schema": SCHEMA, "result": overall, "started": _utc(self._started), "finished": _utc(finished),
                "seconds": round(finished - self._started, 3), "ran_by": self._ran_by(), "deploys": deploys,
                "handover": handover, "failures": self._failures,
                "hosts": {h: {k: getattr(stats, k).get(h, 0) for k in COUNTS} for h in sorted(stats.processed)}}

    def _write(self, report: Dict[str, Any]) -> None:
        out = self.get_option("output_dir")
        name = self.get_option("file_name")
        if not name:
            stem = os.path.splitext(os.path.basename(self._playbook or "run"))[0]
            name = "%s-%s-%d" % (stem, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._started)), os.getpid())
        os.makedirs(out, exist_ok=True)
        markdown = render_markdown(report)
        base = os.path.join(out, name)
        with open(base + ".json", "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=False, default=str)
            handle.write("\n")
        with open(base + ".md", "w", encoding="utf-8") as handle:
            handle.write(markdown)
        summary = self.get_option("summary_file")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(markdown)
        self._display.display("Deploy report: %s.json, %s.md" % (base, base), color=C.COLOR_VERBOSE)


def _digest(rel: Optional[Dict[str, Any]]) -> str:
    if not rel:
        return "-"
    text = rel.get("id") or "?"
    if rel.get("digest"):
        text += " `%s`" % rel["digest"][:19]
    return text


def _step_note(step: Dict[str, Any]) -> str:
    notes = []
    if step.get("traffic"):
        shares = ", ".join("%s %s%%" % (k, v) for k, v in step["traffic"].items())
        notes.append("%s: %s" % (step["backend"], shares) if step.get("backend") else shares)
    if "verdict" in step:
        notes.append("verdict **%s**" % step["verdict"])
        if step.get("reason"):
            notes.append(step["reason"])
    if "passed" in step:
        notes.append("%s of %s requests failed" % (step.get("failures"), step.get("requests")))
    if step.get("release") and step["module"] in ("docker_release", "k8s_release"):
        rel = step["release"]
        notes.append("%s %s" % (rel.get("id"), rel.get("state")))
    if step.get("event"):
        notes.append("%s %s" % (step["event"], "delivered" if step.get("delivered") else "not delivered"))
    if step["status"] == "failed" and step.get("reason") and "verdict" not in step:
        notes.append(step["reason"])
    return "; ".join(str(n) for n in notes).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Dict[str, Any]) -> str:
    """A few lines for a CI job summary: one row per deploy, the reason of a failure, the notable steps."""
    ran = report["ran_by"]
    title = os.path.basename(ran.get("playbook") or "run")
    lines = ["### %s Deploy report: %s: %s" % (ICON.get(report["result"], ""), title, report["result"]), ""]
    if report["deploys"]:
        lines += ["| Host | App | Strategy | From | To | Result | Took |", "|---|---|---|---|---|---|---|"]
        for dep in report["deploys"]:
            strategy = dep["strategy"] or "-"
            if dep.get("target"):
                strategy += " (%s)" % dep["target"]
            lines.append("| %s | %s | %s | %s | %s | %s %s | %.1f s |" % (
                dep["host"], dep["app"] or "-", strategy, _digest(dep["from"]), _digest(dep["to"]),
                ICON.get(dep["result"], ""), dep["result"], dep["seconds"] or 0))
        lines.append("")
    for dep in report["deploys"]:
        if dep.get("reason"):
            lines += ["**%s on %s**: %s" % (dep["app"], dep["host"], str(dep["reason"]).replace("\n", " ")), ""]
    if not report["deploys"]:
        for failure in report["failures"]:
            lines += ["**%s** (%s): %s" % (failure["host"], failure["task"], failure["reason"].replace("\n", " ")), ""]
    for dep in report["deploys"]:
        notable = [s for s in dep["steps"] if s["module"] in NOTABLE or s["status"] == "failed"]
        if not notable:
            continue
        lines += ["<details><summary>Steps of %s on %s</summary>" % (dep["app"], dep["host"]), "",
                  "| Step | Took | Result |", "|---|---|---|"]
        for step in notable:
            lines.append("| %s | %.1f s | %s%s |" % (step["name"].replace("|", "\\|"), step["seconds"],
                                                     "" if step["status"] == "ok" else "**%s** " % step["status"],
                                                     _step_note(step)))
        lines += ["", "</details>", ""]
    if report.get("handover", {}).get("deploy_image"):
        lines += ["Next: `deploy_image=%s`" % report["handover"]["deploy_image"], ""]
    who = ran.get("user") or "?"
    via = []
    if ran.get("awx"):
        awx = ran["awx"]
        via.append("AWX job %s%s" % (awx.get("job_id", "?"),
                                     " (%s)" % awx["job_template_name"] if awx.get("job_template_name") else ""))
    if ran.get("ci"):
        ci = ran["ci"]
        via.append("%s %s" % (ci.get("system"), ci.get("url") or ci.get("job") or ""))
        if ci.get("commit"):
            via.append("commit %s" % ci["commit"][:12])
    via.append("ansible-core %s on %s" % (ran.get("ansible_core"), ran.get("controller")))
    lines += ["Ran by %s via %s, %s UTC%s." % (who, ", ".join(via), report["started"][:19].replace("T", " "),
                                               " (check mode)" if ran.get("check_mode") else ""), ""]
    return "\n".join(lines)
