"""The deploy_report callback, ansible-core's junit callback and the roles' notify hooks, on real
deploys behind a real HAProxy: a good blue-green, a release whose health check fails, a canary the
analysis aborts, and rollbacks, each told to a real webhook receiver on 127.0.0.1."""
from __future__ import annotations

import glob
import json
import os
import socket
import xml.etree.ElementTree as ET

import pytest

from conftest import REGISTRY, run_playbook
from images import remove_repos, sample_context
from net import Load
from test_blue_green import bg_vars, env  # noqa: F401 pylint: disable=unused-import
from test_canary import BAD_CGI, FLAKY, GOOD_CGI
from webhook_receiver import Receiver

SECRET = "webhook-test-secret"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """1.0.0 and 2.0.0 (good), 6.6.6 (half its /cgi-bin/flaky answers are 500), 9.9.9 (no /health)."""
    tmp = tmp_path_factory.mktemp("report-images")
    repo = "%s/it-report-%s/app" % (REGISTRY, os.urandom(4).hex())
    tasks = []
    for version in ("1.0.0", "2.0.0", "6.6.6", "9.9.9"):
        context = sample_context(tmp / version, version)
        script = os.path.join(context, "www", "cgi-bin", "flaky")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(BAD_CGI if version == "6.6.6" else GOOD_CGI)
        os.chmod(script, 0o755)
        if version == "9.9.9":
            os.remove(os.path.join(context, "www", "health"))
        tasks.append({"name": version, "immutable.deploy.image_build": {"name": repo, "version": version,
                                                                        "path": context, "push": True}})
    run = run_playbook(tasks, tmp)
    assert run.rc == 0, run.stdout[-3000:]
    digests = {v: run.result(v)["image"]["digest"] for v in ("1.0.0", "2.0.0", "6.6.6", "9.9.9")}
    yield {"digest": digests, **{v: "%s:%s@%s" % (repo, v, d) for v, d in digests.items()}}
    remove_repos([repo])


def reporting(tmp_path, name):
    """Environment that enables the report (fixed file name) and ansible-core's junit callback."""
    out = tmp_path / "reports"
    return {"ANSIBLE_CALLBACKS_ENABLED": "record_results,immutable.deploy.deploy_report,ansible.builtin.junit",
            "IMMUTABLE_DEPLOY_REPORT_DIR": str(out), "IMMUTABLE_DEPLOY_REPORT_NAME": name,
            "IMMUTABLE_DEPLOY_REPORT_SUMMARY": str(out / "summary.md"),
            "JUNIT_OUTPUT_DIR": str(out / "junit"), "JUNIT_HIDE_TASK_ARGUMENTS": "true"}


def read_report(tmp_path, name):
    with open(tmp_path / "reports" / (name + ".json"), encoding="utf-8") as handle:
        report = json.load(handle)
    with open(tmp_path / "reports" / (name + ".md"), encoding="utf-8") as handle:
        markdown = handle.read()
    return report, markdown


def junit_failures(tmp_path):
    """(case name, message) of every case that did not pass. ansible-core 2.19 records a failed task as
    <error> (every failure carries an exception summary there), 2.16 as <failure>: CI systems count both."""
    (path,) = glob.glob(str(tmp_path / "reports" / "junit" / "*.xml"))
    cases = ET.parse(path).getroot().iter("testcase")
    return [(case.get("name"), bad.get("message")) for case in cases for bad in case if bad.tag in ("failure", "error")]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def role_run(play, tmp_path, role, values, name):
    run = play([{"name": role, "ansible.builtin.include_role": {"name": "immutable.deploy." + role}, "vars": values}],
               env=reporting(tmp_path, name))
    # an exception in a callback is only a warning: neither the report nor junit may have one
    assert "Failure using method" not in run.stdout and "no report written" not in run.stdout, run.stdout[-3000:]
    return run


def steps(deploy, module):
    return [s for s in deploy["steps"] if s["module"] == module]


def live_traffic(deploy, app):
    """Traffic shares set on the app's live backend, by whichever module set them (haproxy_backend, docker_switch)."""
    return [s["traffic"] for s in deploy["steps"] if s.get("traffic") and s.get("backend") == app]


def test_successful_deploy_report_and_signed_notifications(play, env, images, tmp_path):
    assert play([{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
                  "vars": bg_vars(env, images["1.0.0"])}]).rc == 0
    down = "http://127.0.0.1:%d/hooks/x" % closed_port()
    with Receiver(secret=SECRET, fail_first=1) as rx:  # the first attempt gets a 503
        run = role_run(play, tmp_path, "blue_green", bg_vars(env, images["2.0.0"], blue_green_notify=[
            {"url": rx.url, "secret": SECRET, "backoff": 0.2},
            {"url": down, "format": "slack", "retries": 1, "backoff": 0.1, "timeout": 2}]), "ok")
    assert run.rc == 0, run.stdout[-4000:]
    # a webhook that stayed down is a warning, never a failed deploy
    assert "not delivered after 2 attempt(s)" in run.stdout
    assert SECRET not in run.stdout and down not in run.stdout
    lock_rows = [r for r in run.rows if r["action"] == "immutable.deploy.deploy_lock"]
    assert len(lock_rows) == 2 and not any(r["result"]["changed"] for r in lock_rows)

    events = rx.events()
    assert [e["event"] for e in events] == ["start", "success"], rx.requests
    assert all(r["signature_ok"] for r in rx.requests) and [r["status"] for r in rx.requests] == [503, 200, 200]
    assert events[0]["run_id"] == events[1]["run_id"] and events[1]["details"]["live"] == "2.0.0"
    assert events[1]["release"] == "2.0.0" and events[1]["previous"] == "1.0.0" and events[1]["app"] == env["app"]

    report, markdown = read_report(tmp_path, "ok")
    assert report["result"] == "success" and report["ran_by"]["user"] and report["ran_by"]["ansible_core"]
    (deploy,) = report["deploys"]
    assert deploy["app"] == env["app"]
    assert (deploy["strategy"], deploy["target"], deploy["result"]) == ("blue_green", "docker", "success")
    assert deploy["from"] == {"id": "1.0.0", "digest": images["digest"]["1.0.0"], "image": deploy["from"]["image"],
                              "slot": deploy["from"]["slot"]}
    assert deploy["to"]["id"] == "2.0.0" and deploy["to"]["digest"] == images["digest"]["2.0.0"]
    assert deploy["live_after"] == "2.0.0" and deploy["seconds"] > 0
    started = [s for s in steps(deploy, "docker_release") if s["release"]["state"] == "running"]
    assert started and started[0]["release"]["id"] == "2.0.0" and started[0]["seconds"] > 0
    assert live_traffic(deploy, env["app"])[-1] == {"2.0.0": 100.0}, deploy["steps"]
    assert all(s["passed"] for s in steps(deploy, "http_check"))
    assert [s["delivered"] for s in steps(deploy, "notify")] == [True, False, True, False]
    assert "| %s | blue_green (docker) | 1.0.0 `%s` | 2.0.0 `" % (env["app"], images["digest"]["1.0.0"][:19]) in markdown
    assert "success" in markdown.splitlines()[0]
    with open(tmp_path / "reports" / "summary.md", encoding="utf-8") as handle:
        assert handle.read() == markdown
    assert junit_failures(tmp_path) == []


def test_failed_health_check_is_reported_and_is_a_failed_junit_case(play, env, images, tmp_path):
    assert play([{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
                  "vars": bg_vars(env, images["1.0.0"])}]).rc == 0
    with Receiver(secret=SECRET) as rx:
        run = role_run(play, tmp_path, "blue_green", bg_vars(env, images["9.9.9"], blue_green_wait_timeout=15,
                                                             blue_green_notify=[{"url": rx.url, "secret": SECRET}]),
                       "bad")
    assert run.rc != 0
    report, markdown = read_report(tmp_path, "bad")
    assert report["result"] == "failed"
    (deploy,) = report["deploys"]
    assert deploy["result"] == "failed" and deploy["from"]["id"] == "1.0.0"
    assert deploy["to"]["id"] == "9.9.9" and deploy["to"].get("digest") in (None, images["digest"]["9.9.9"])
    assert "aborted before the switch" in deploy["reason"] and "1.0.0 still serves all traffic" in deploy["reason"]
    failed = [s for s in deploy["steps"] if s["status"] == "failed"]
    assert failed and failed[0]["module"] == "docker_release" and failed[0]["reason"]
    assert "failed" in markdown.splitlines()[0] and "aborted before the switch" in markdown

    # ansible-core's junit: the deploy is a failed case whose message is the reason
    failures = junit_failures(tmp_path)
    assert any("aborted before the switch" in (message or "") for name, message in failures), failures
    assert any(failed[0]["name"] in name for name, message in failures), failures

    events = rx.events()
    assert [e["event"] for e in events] == ["start", "failure"] and all(r["signature_ok"] for r in rx.requests)
    assert events[1]["reason"] and events[1]["reason"] != "failed; see the job output", events[1]
    assert events[1]["previous"] == "1.0.0"


def test_auto_abort_of_a_bad_canary_is_reported_with_the_verdict(play, env, images, tmp_path):
    assert play([{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
                  "vars": bg_vars(env, images["1.0.0"])}]).rc == 0
    values = {"canary_app": env["app"], "canary_image": images["6.6.6"], "canary_router_state_dir": env["state_dir"],
              "canary_router_preview_bind": "127.0.0.1:%d" % env["preview"], "canary_lock_dir": env["lock_dir"],
              "canary_healthcheck": {"type": "http", "path": "/health", "interval": 1},
              "canary_steps": [{"weight": 25}, {"weight": 100}],
              "canary_analysis": {"interval": 2, "count": 1, "metrics": [
                  {"name": "error-ratio", "provider": "haproxy", "query": "error_ratio", "min_requests": 10,
                   "success": "result <= 0.01"}]}}
    with Receiver() as rx, Load(env["port"], path=FLAKY):  # paced: enough requests at 25 %
        run = role_run(play, tmp_path, "canary", dict(values, canary_notify=[{"url": rx.url}]), "abort")
    assert run.rc != 0
    report, markdown = read_report(tmp_path, "abort")
    assert report["result"] == "aborted"
    (deploy,) = report["deploys"]
    assert (deploy["strategy"], deploy["result"]) == ("canary", "aborted")
    assert deploy["from"]["id"] == "1.0.0" and deploy["from"]["digest"] == images["digest"]["1.0.0"]
    assert deploy["to"]["id"] == "6.6.6" and deploy["to"]["digest"] == images["digest"]["6.6.6"]
    assert "analysis failed at step 0 (25%)" in deploy["reason"]
    (analysis,) = steps(deploy, "release_analysis")
    assert analysis["verdict"] == "fail" and analysis["abort"]["written"] is True
    metric = analysis["measurements"][-1]["metrics"]["error-ratio"]
    assert metric["passed"] is False and metric["value"] > 0.01 and metric["requests"] >= 10
    shares = live_traffic(deploy, env["app"])
    assert {"1.0.0": 75.0, "6.6.6": 25.0} in shares and shares[-1] == {"1.0.0": 100.0}, shares
    assert deploy["live_after"] == "1.0.0"
    assert "aborted" in markdown.splitlines()[0] and "verdict **fail**" in markdown
    events = rx.events()
    assert [e["event"] for e in events] == ["start", "abort"], events
    assert "analysis failed at step 0 (25%)" in events[1]["reason"] and events[1]["previous"] == "1.0.0"


def test_rollback_notifies_and_a_required_webhook_that_is_down_fails_before_any_change(play, env, images, tmp_path):
    for version in ("1.0.0", "2.0.0"):
        assert play([{"name": "bg", "ansible.builtin.include_role": {"name": "immutable.deploy.blue_green"},
                      "vars": bg_vars(env, images[version])}]).rc == 0
    values = {"rollback_app": env["app"], "rollback_router_state_dir": env["state_dir"],
              "rollback_router_bind": "127.0.0.1:%d" % env["port"], "rollback_lock_dir": env["lock_dir"]}
    down = "http://127.0.0.1:%d/hooks/x" % closed_port()
    refused = role_run(play, tmp_path, "rollback", dict(values, rollback_notify_required=True, rollback_notify=[
        {"url": down, "retries": 0}]), "refused")
    assert refused.rc != 0 and "not delivered after 1 attempt(s)" in refused.stdout
    assert not [r for r in refused.rows if r["action"] == "immutable.deploy.docker_switch"]
    with Receiver() as rx:
        back = role_run(play, tmp_path, "rollback", dict(values, rollback_notify=[{"url": rx.url}]), "back")
    assert back.rc == 0, back.stdout[-3000:]
    events = rx.events()
    assert [e["event"] for e in events] == ["start", "rollback"]
    assert (events[1]["release"], events[1]["previous"]) == ("1.0.0", "2.0.0")
    report, dummy = read_report(tmp_path, "back")
    (deploy,) = report["deploys"]
    assert (deploy["strategy"], deploy["result"], deploy["from"]["id"], deploy["to"]["id"]) == (
        "rollback", "success", "2.0.0", "1.0.0")
    assert deploy["to"]["digest"] == images["digest"]["1.0.0"] and deploy["live_after"] == "1.0.0"
