# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP probes: a smoke test (until it passes) and a watch window (must keep passing)."""
from __future__ import annotations

import time
import urllib.request
from typing import Any, Dict, List, Optional, Tuple
from urllib.error import HTTPError, URLError

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def probe(url: str, timeout: float, expect_status: List[int], contains: Optional[str]) -> Tuple[bool, str, float]:
    """One request: (ok, what happened, seconds)."""
    start = time.monotonic()
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"Connection": "close"}), timeout=timeout) as resp:
            status, body = resp.status, resp.read(65536).decode("utf-8", "replace")
    except HTTPError as exc:
        status, body = exc.code, ""
    except (URLError, OSError) as exc:
        return False, "error: %s" % getattr(exc, "reason", exc), time.monotonic() - start
    elapsed = time.monotonic() - start
    if status not in expect_status:
        return False, "status %d" % status, elapsed
    if contains and contains not in body:
        return False, "status %d without %r in the body" % (status, contains), elapsed
    return True, "status %d" % status, elapsed


def check(p: Dict[str, Any]) -> Dict[str, Any]:
    if p["interval"] <= 0 or p["duration"] < 0:
        raise DeployError("Options 'interval' (> 0) and 'duration' (>= 0) got %r and %r."
                          % (p["interval"], p["duration"]), option="interval")
    stats: Dict[str, Any] = {"requests": 0, "failures": 0, "outcomes": {}, "max_latency": 0.0}
    deadline = time.monotonic() + p["duration"]
    while True:
        ok, outcome, elapsed = probe(p["url"], p["timeout"], p["expect_status"], p["body_contains"])
        stats["requests"] += 1
        stats["failures"] += 0 if ok else 1
        stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1
        stats["max_latency"] = round(max(stats["max_latency"], elapsed), 4)
        stats["last"] = outcome
        if p["mode"] == "until_ok" and ok:
            return {"changed": False, "passed": True, **stats}
        if p["mode"] == "watch" and stats["failures"] > p["max_failures"]:
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(p["interval"])
    passed = p["mode"] == "watch" and stats["failures"] <= p["max_failures"]
    if passed:
        return {"changed": False, "passed": True, **stats}
    what = ("did not pass within %ss" % p["duration"] if p["mode"] == "until_ok"
            else "failed %d of %d requests (allowed %d)" % (stats["failures"], stats["requests"], p["max_failures"]))
    raise DeployError("HTTP check of %s %s; last: %s; outcomes: %s" % (p["url"], what, stats["last"], stats["outcomes"]),
                      passed=False, **stats)
