"""notify: body, signature and delivery against a real receiver on 127.0.0.1 (no Ansible run)."""
from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.immutable.deploy.plugins.module_utils import notify
from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from webhook_receiver import SIGNATURE_HEADER, Receiver


def params(url: str, **extra):
    values = {"url": url, "format": "generic", "event": "success", "app": "web", "strategy": "blue_green",
              "target": "docker", "release": "2.0.0", "previous": "1.0.0", "image": "r/web:2.0.0@sha256:" + "a" * 64,
              "reason": None, "run_id": "run1", "host": "web1", "details": {"changed": True}, "secret": None,
              "signature_header": SIGNATURE_HEADER, "headers": {}, "timeout": 5.0, "retries": 3, "backoff": 0.01,
              "required": True, "validate_certs": True, "ca_path": None, "client_cert": None, "client_key": None,
              "use_proxy": False, "http_agent": None}
    values.update(extra)
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_signed_event_is_verified_by_the_receiver_and_is_never_a_change():
    with Receiver(secret="s3cret") as rx:
        result = notify.notify(params(rx.url, secret="s3cret"), check_mode=False)
    assert result["delivered"] and result["status"] == 200 and result["changed"] is False and result["signed"]
    (req,) = rx.requests
    assert req["signature_ok"] is True and req["path"] == "/hooks/deploy"
    assert req["headers"]["x-immutable-deploy-event"] == "success"
    assert req["headers"]["x-immutable-deploy-delivery"] == result["delivery"]
    assert req["json"] == result["event"] and req["json"]["schema"] == "immutable.deploy/event/v1"
    assert req["json"]["release"] == "2.0.0" and req["json"]["previous"] == "1.0.0" and req["json"]["host"] == "web1"
    assert result["endpoint"] == "http://127.0.0.1:%d" % rx.port  # never the path (tokens live there)


def test_a_wrong_secret_is_refused_by_the_receiver_and_not_retried():
    with Receiver(secret="right") as rx:
        with pytest.raises(DeployError) as err:
            notify.notify(params(rx.url, secret="wrong"), check_mode=False)
    assert len(rx.requests) == 1 and rx.requests[0]["signature_ok"] is False
    assert "after 1 attempt(s): HTTP 401" in err.value.msg and "/hooks" not in err.value.msg


def test_503_for_the_first_attempts_then_delivered_with_backoff():
    waits = []
    with Receiver(fail_first=2) as rx:
        result = notify.notify(params(rx.url, backoff=0.5), check_mode=False, sleep=waits.append)
    assert result["delivered"] and [a["status"] for a in result["attempts"]] == [503, 503, 200]
    assert waits == [0.5, 1.0]  # doubled each time
    assert len({r["headers"]["x-immutable-deploy-delivery"] for r in rx.requests}) == 1


def test_retry_after_of_the_receiver_is_honoured():
    waits = []
    with Receiver(fail_first=1, status=429, retry_after="2") as rx:
        result = notify.notify(params(rx.url), check_mode=False, sleep=waits.append)
    assert result["delivered"] and waits == [2.0]


def test_receiver_down_at_first_then_up():
    rx = Receiver(port=free_port())
    waits = []

    def sleep(seconds):  # the receiver comes up while we wait before the first retry
        waits.append(seconds)
        if rx._server is None:
            rx.start()

    try:
        result = notify.notify(params(rx.url), check_mode=False, sleep=sleep)
    finally:
        rx.stop()
    assert result["delivered"] and len(result["attempts"]) == 2 and waits == [0.01]
    assert result["attempts"][0]["status"] is None and "refused" in result["attempts"][0]["error"].lower()


def test_down_for_good_fails_when_required_and_warns_when_not():
    url = "http://127.0.0.1:%d/x" % free_port()
    with pytest.raises(DeployError) as err:
        notify.notify(params(url, retries=2), check_mode=False, sleep=lambda s: None)
    assert "'success' of web to http://127.0.0.1:" in err.value.msg and "after 3 attempt(s)" in err.value.msg
    assert len(err.value.details["attempts"]) == 3
    result = notify.notify(params(url, retries=1, required=False), check_mode=False, sleep=lambda s: None)
    assert result["delivered"] is False and "not delivered after 2 attempt(s)" in result["error"]


def test_check_mode_sends_nothing():
    with Receiver() as rx:
        result = notify.notify(params(rx.url), check_mode=True)
    assert rx.requests == [] and result["delivered"] is False and result["attempts"] == []
    assert result["event"]["app"] == "web"


def test_slack_message_has_text_and_fields():
    with Receiver() as rx:
        notify.notify(params(rx.url, format="slack", event="failure", reason="release 2.0.0 never got healthy"),
                      check_mode=False)
    message = rx.requests[0]["json"]
    assert set(message) == {"text", "blocks"}
    assert "failure: blue-green of web to 2.0.0 (from 1.0.0) on web1: release 2.0.0 never got healthy" in message["text"]
    fields = message["blocks"][1]["fields"]
    assert {"type": "mrkdwn", "text": "*Release*\n2.0.0"} in fields


@pytest.mark.parametrize("change,fragment", [
    ({"url": "ftp://x/y"}, "Option 'url': not an http(s) URL"),
    ({"retries": -1}, "Invalid value for option 'retries'"),
    ({"event": "deployed"}, "Option 'event': 'deployed'"),
])
def test_bad_options_fail_clearly(change, fragment):
    values = dict(params("http://127.0.0.1:9/x"), **change)
    with pytest.raises(DeployError) as err:
        notify.notify(values, check_mode=True)
    assert fragment in err.value.msg


def test_body_is_compact_sorted_json_so_a_signature_is_reproducible():
    event = notify.build_event(params("http://x/"), now=0)
    assert notify.body(event, "generic") == json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    assert event["timestamp"] == "1970-01-01T00:00:00Z"
