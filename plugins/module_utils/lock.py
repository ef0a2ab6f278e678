# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A per-app deploy lock on the target: a file created atomically (O_EXCL).

The lock lives on the target, not the controller, so two operators (or two AWX
jobs) see the same lock. A lock left by a killed run is never broken silently:
the message says who holds it since when, and break_lock takes it on purpose.
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
from typing import Any, Callable, Dict, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _path(directory: str, name: str) -> str:
    if not _NAME_RE.match(name or ""):
        raise DeployError("Option 'name': %r is not a valid lock name (lowercase letters, digits, "
                          "'_', '.', '-', at most 63)." % (name,), option="name")
    return os.path.join(directory, name + ".lock")


def read(directory: str, name: str) -> Optional[Dict[str, Any]]:
    try:
        with open(_path(directory, name), encoding="utf-8") as handle:
            holder = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        holder = {"owner": "unknown (unreadable lock file)"}
    holder["age"] = round(time.time() - float(holder.get("since", time.time())), 1)
    return holder


def acquire(directory: str, name: str, owner: str, purpose: str, break_lock: bool,
            check_mode: bool) -> Dict[str, Any]:
    path = _path(directory, name)
    holder = read(directory, name)
    if holder and holder.get("owner") == owner:
        return {"changed": False, "lock": holder, "broken": None}
    if holder and not break_lock:
        raise DeployError(
            "Deploy of %r is locked by %s (%s) since %s, %.0f s ago (%s). Another deploy is running; "
            "if it died, re-run with break_lock=true (role variable <role>_break_lock) to take the lock."
            % (name, holder.get("owner"), holder.get("purpose", "?"),
               time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(holder.get("since", 0)))),
               holder["age"], path), lock=holder, path=path)
    record = {"owner": owner, "purpose": purpose, "since": time.time(), "host": socket.gethostname(),
              "pid": os.getppid()}
    if check_mode:
        return {"changed": True, "lock": record, "broken": holder}
    os.makedirs(directory, mode=0o750, exist_ok=True)
    if holder:
        os.unlink(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        raise DeployError("Deploy of %r was locked by another run a moment ago (%s)." % (name, path),
                          lock=read(directory, name), path=path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    return {"changed": True, "lock": record, "broken": holder}


def release(directory: str, name: str, owner: str, break_lock: bool, check_mode: bool) -> Dict[str, Any]:
    holder = read(directory, name)
    if holder is None:
        return {"changed": False, "lock": None, "broken": None}
    if holder.get("owner") != owner and not break_lock:
        raise DeployError("Lock of %r is held by %s, not %s; not released. Use break_lock=true to remove it."
                          % (name, holder.get("owner"), owner), lock=holder)
    if not check_mode:
        os.unlink(_path(directory, name))
    return {"changed": True, "lock": None, "broken": holder if holder.get("owner") != owner else None}


# Suboptions of a router module's `lock` option (doc fragment immutable.deploy.lock).
LOCK_OPTION: Dict[str, Any] = dict(type="dict", options=dict(
    name=dict(type="str", required=True),
    owner=dict(type="str", required=True),
    directory=dict(type="path", default="/var/lib/immutable-deploy/locks"),
    purpose=dict(type="str", default="router change"),
    break_lock=dict(type="bool", default=False),
))


def guarded(lock: Optional[Dict[str, Any]], check_mode: bool, change: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Run change() holding the app's deploy lock, taken and released in this same process.

    A rollback to a warm release is one router write: taking the lock here spares the
    two module runs of separate lock tasks. A lock this owner already holds (the
    caller's own, around a whole deploy) is used as is and left in place.
    """
    if not lock:
        return change()
    taken = acquire(lock["directory"], lock["name"], lock["owner"], lock["purpose"], lock["break_lock"],
                    check_mode)
    try:
        return change()
    finally:
        if taken["changed"] and not check_mode:
            release(lock["directory"], lock["name"], lock["owner"], False, False)
