# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deploy events to webhooks: the body (generic JSON or a Slack-compatible message), its
HMAC-SHA256 signature, and delivery with retries and exponential backoff.

HTTP goes through ansible.module_utils.urls.open_url, so proxies (use_proxy and the usual
*_proxy variables), CA bundles (ca_path) and client certificates behave as in every other
Ansible HTTP client.
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option

EVENTS = ("start", "success", "failure", "abort", "rollback", "paused")
FORMATS = ("generic", "slack")
SCHEMA = "immutable.deploy/event/v1"
# Worth another attempt: the receiver is busy, restarting or rate limiting. Any other 4xx
# (a wrong URL, a refused signature) would fail the same way again.
RETRY_STATUS = frozenset((408, 425, 429, 500, 502, 503, 504))
MAX_DELAY = 60.0
# open_url's TLS and proxy options, passed through as every Ansible HTTP client does
HTTP_OPTIONS = ("validate_certs", "use_proxy", "ca_path", "client_cert", "client_key")
_ICON = {"start": ":arrow_forward:", "success": ":white_check_mark:", "failure": ":x:",
         "abort": ":no_entry:", "rollback": ":rewind:", "paused": ":pause_button:"}


def build_event(params: Dict[str, Any], now: Optional[float] = None) -> Dict[str, Any]:
    """The deploy event, the same for every format (the generic body is this dict)."""
    if params["event"] not in EVENTS:
        raise DeployError("Option 'event': %r; accepted: %s." % (params["event"], ", ".join(EVENTS)), option="event")
    stamp = time.time() if now is None else now
    event: Dict[str, Any] = {
        "schema": SCHEMA,
        "event": params["event"],
        "app": params["app"],
        "strategy": params.get("strategy"),
        "target": params.get("target"),
        "release": params.get("release"),
        "previous": params.get("previous"),
        "image": params.get("image"),
        "reason": params.get("reason"),
        "run_id": params.get("run_id"),
        "host": params.get("host") or socket.gethostname(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)),
        "details": params.get("details") or {},
    }
    return event


def summary_line(event: Dict[str, Any]) -> str:
    """One human line, for chat messages and logs."""
    what = "%s of %s" % ((event.get("strategy") or "deploy").replace("_", "-"), event["app"])
    if event.get("release"):
        what += " to %s" % event["release"]
    if event.get("previous"):
        what += " (from %s)" % event["previous"]
    line = "%s: %s on %s" % (event["event"], what, event["host"])
    if event.get("reason"):
        line += ": %s" % event["reason"]
    return line


def slack_message(event: Dict[str, Any]) -> Dict[str, Any]:
    """A Slack incoming-webhook message (also accepted by Mattermost and Rocket.Chat)."""
    text = "%s %s" % (_ICON.get(event["event"], ""), summary_line(event))
    fields = [("App", event["app"]), ("Event", event["event"]), ("Release", event.get("release")),
              ("Previous", event.get("previous")), ("Image", event.get("image")), ("Host", event["host"])]
    return {
        "text": text.strip(),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text.strip()}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*%s*\n%s" % (k, v)} for k, v in fields if v]},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": "run %s at %s" % (event.get("run_id") or "-", event["timestamp"])}]},
        ],
    }


def body(event: Dict[str, Any], fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise DeployError("Option 'format': %r; accepted: %s." % (fmt, ", ".join(FORMATS)), option="format")
    payload = slack_message(event) if fmt == "slack" else event
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature(secret: str, data: bytes) -> str:
    """GitHub-style C(sha256=<hex>) of the exact bytes sent; the receiver recomputes it."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def endpoint(url: str) -> str:
    """scheme://host[:port] only: webhook paths and queries often carry a token."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeployError("Option 'url': not an http(s) URL (scheme %r)." % (parts.scheme,), option="url")
    host = parts.hostname if parts.port is None else "%s:%d" % (parts.hostname, parts.port)
    return "%s://%s" % (parts.scheme, host)


def _retry_after(exc: HTTPError) -> Optional[float]:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def deliver(url: str, data: bytes, headers: Dict[str, str], retries: int, backoff: float, timeout: float,
            http_options: Dict[str, Any], sleep: Callable[[float], None] = time.sleep,
            opener: Callable[..., Any] = open_url) -> Tuple[bool, Optional[int], List[Dict[str, Any]]]:
    """POST data, retrying connection errors, timeouts, 408/425/429 and 5xx up to `retries` more
    times, waiting backoff * 2**n (or the receiver's Retry-After) before each retry.

    Returns (delivered, last status, attempts); never raises for delivery failures.
    """
    attempts: List[Dict[str, Any]] = []
    for number in range(1, retries + 2):
        started = time.monotonic()
        record: Dict[str, Any] = {"attempt": number, "status": None, "error": None}
        delay: Optional[float] = None
        retry = False
        try:
            resp = opener(url, data=data, headers=headers, method="POST", timeout=timeout,
                          follow_redirects="none", **http_options)
            try:
                resp.read()
            finally:
                resp.close()
            record["status"] = resp.getcode()
        except HTTPError as exc:
            record["status"], record["error"] = exc.code, "HTTP %d %s" % (exc.code, exc.reason)
            retry = exc.code in RETRY_STATUS
            delay = _retry_after(exc)
        except (URLError, OSError, http.client.HTTPException, UrlsConnectionError) as exc:
            # refused, reset, timed out, TLS failures: the receiver may be back in a moment
            reason = getattr(exc, "reason", exc)
            record["error"] = "%s: %s" % (type(exc).__name__, reason)
            retry = True
        record["seconds"] = round(time.monotonic() - started, 3)
        attempts.append(record)
        if record["error"] is None:
            return True, record["status"], attempts
        if not retry or number > retries:
            break
        wait = min(MAX_DELAY, delay if delay is not None else backoff * (2 ** (number - 1)))
        record["retry_in"] = round(wait, 3)
        sleep(wait)
    return False, attempts[-1]["status"], attempts


def notify(params: Dict[str, Any], check_mode: bool, sleep: Callable[[float], None] = time.sleep,
           opener: Callable[..., Any] = open_url) -> Dict[str, Any]:
    """Build, sign and send one event. A delivery failure raises DeployError when params['required'],
    else comes back as delivered=false with the reason in 'error' (the caller warns)."""
    site = endpoint(params["url"])
    for option, low in (("retries", 0), ("backoff", 0), ("timeout", 0.001)):
        if params[option] < low:
            raise invalid_option(option, params[option], "a number >= %s" % low)
    event = build_event(params)
    data = body(event, params["format"])
    delivery = str(uuid.uuid4())
    headers = {"Content-Type": "application/json", "User-Agent": params.get("http_agent") or "immutable.deploy-notify",
               "X-Immutable-Deploy-Event": event["event"], "X-Immutable-Deploy-Delivery": delivery}
    headers.update(params.get("headers") or {})
    if params.get("secret"):
        headers[params["signature_header"]] = signature(params["secret"], data)
    result: Dict[str, Any] = {"changed": False, "event": event, "format": params["format"], "endpoint": site,
                              "delivery": delivery, "signed": bool(params.get("secret")), "delivered": False,
                              "status": None, "attempts": []}
    if check_mode:
        return result  # check mode sends nothing
    http_options = {key: params.get(key) for key in HTTP_OPTIONS}
    delivered, status, attempts = deliver(params["url"], data, headers, params["retries"], params["backoff"],
                                          params["timeout"], http_options, sleep=sleep, opener=opener)
    result.update(delivered=delivered, status=status, attempts=attempts)
    if not delivered:
        msg = "Notification %r of %s to %s not delivered after %d attempt(s): %s" % (
            event["event"], event["app"], site, len(attempts), attempts[-1]["error"])
        if params.get("required", True):
            raise DeployError(msg, **{k: v for k, v in result.items() if k != "changed"})
        result["error"] = msg
    return result
