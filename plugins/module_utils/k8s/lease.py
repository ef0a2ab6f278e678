# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An app's deploy lock in the cluster: one coordination.k8s.io Lease per app.

The Lease is the whole record, so two controllers (two operators, two AWX nodes) see the
same lock: holderIdentity is the run's token, acquireTime when it took the lock,
renewTime + leaseDurationSeconds when it expires, and two annotations say why and from
where. A run renews it while it lives: every module of the run that is given the lock
renews it when it starts and from a thread while it works, so leaseDurationSeconds only
has to cover the gap between two tasks. A killed run stops renewing; once its lease has
expired the next run takes it over without break_lock.

Taking is a merge patch with the resourceVersion that was read (409 when another run
wrote first); renewing and releasing test holderIdentity in the same JSON patch (422 when
the lock is no longer ours). Expiry is judged against the holder's renewTime on the
reader's clock: controllers need synchronised clocks (NTP), as with any Lease-based lock.
"""
from __future__ import annotations

import _thread
import os
import re
import socket
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.k8s import naming as kn
from ansible_collections.immutable.deploy.plugins.module_utils.k8s.client import Client

SUFFIX = "-deploy-lock"
ANN_PURPOSE = kn.PREFIX + "lock-purpose"
ANN_HOST = kn.PREFIX + "lock-host"
DEFAULT_SECONDS = 30
MIN_SECONDS = 3
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_RACES = (409, 422)  # another writer came first (resourceVersion precondition, failed test op)

# Suboptions of the k8s modules' `lock` option (doc fragment immutable.deploy.k8s.lease).
LEASE_OPTION: Dict[str, Any] = dict(type="dict", options=dict(
    name=dict(type="str", required=True),
    owner=dict(type="str", required=True),
    purpose=dict(type="str", default="deploy"),
    break_lock=dict(type="bool", default=False),
    lease_seconds=dict(type="int", default=DEFAULT_SECONDS),
))


def lease_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) + len(SUFFIX) > 63:
        raise DeployError("Option 'name': %r is not a valid lock name on Kubernetes (lowercase letters, digits and "
                          "'-', at most %d characters: the Lease is <name>%s)." % (name, 63 - len(SUFFIX), SUFFIX),
                          option="name")
    return name + SUFFIX


def check_seconds(seconds: Any, option: str = "lease_seconds") -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < MIN_SECONDS:
        raise DeployError("Option '%s': %r. Accepted: whole seconds, at least %d (the lock expires that long after "
                          "the last renewal of a run that died)." % (option, seconds, MIN_SECONDS), option=option)
    return seconds


def format_time(epoch: float) -> str:
    """A MicroTime as the API wants it: RFC 3339 UTC with microseconds."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: Any) -> Optional[float]:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def holder(lease: Optional[Dict[str, Any]], now: float) -> Optional[Dict[str, Any]]:
    """Who holds the lock and until when; None when nobody does (no Lease, or released)."""
    spec = (lease or {}).get("spec") or {}
    owner = spec.get("holderIdentity")
    if not owner:
        return None
    ann = ((lease or {}).get("metadata") or {}).get("annotations") or {}
    duration = kn.as_int(spec.get("leaseDurationSeconds"), DEFAULT_SECONDS)
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    since = parse_time(spec.get("acquireTime")) or renewed
    expires_in = round(renewed + duration - now, 1) if renewed is not None else 0.0
    return {"owner": owner, "purpose": ann.get(ANN_PURPOSE), "host": ann.get(ANN_HOST),
            "since": spec.get("acquireTime"), "renewed": spec.get("renewTime"), "lease_seconds": duration,
            "age": round(now - since, 1) if since is not None else None,
            "expires_in": max(expires_in, 0.0), "expired": expires_in <= 0}


def locked_message(name: str, view: Dict[str, Any], where: str, now: float) -> str:
    renewed = parse_time(view.get("renewed"))
    return ("Deploy of %r is locked by %s%s (%s) since %s, %s s ago; last renewed %s; the lock expires in %.0f s "
            "unless that run renews it (Lease %s). Another deploy or rollback is running; a run that died is taken "
            "over once its lock has expired, or at once with break_lock=true (role variable <role>_break_lock)."
            % (name, view["owner"], " on %s" % view["host"] if view.get("host") else "", view.get("purpose") or "?",
               view.get("since") or "?", view.get("age"),
               "%.1f s ago" % (now - renewed) if renewed is not None else "never", view["expires_in"], where))


def _host() -> str:
    return "%s pid %d" % (socket.gethostname(), os.getppid())


class LeaseLock:
    """Take, renew and release one app's Lease through the one client."""

    def __init__(self, client: Client, name: str, owner: str, purpose: str = "deploy",
                 seconds: int = DEFAULT_SECONDS, clock: Callable[[], float] = time.time) -> None:
        if not owner:
            raise DeployError("Option 'owner' must be a non-empty token of this run.", option="owner")
        self.client, self.name, self.owner, self.purpose = client, name, owner, purpose
        self.lease = lease_name(name)
        self.seconds = check_seconds(seconds)
        self.clock = clock
        self.where = "%s/%s" % (client.ns, self.lease)

    def read(self) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]]]:
        lease = self.client.get("Lease", self.lease)
        return lease, holder(lease, self.clock())

    def _body(self, now: str) -> Dict[str, Any]:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.lease,
                             "labels": {kn.LABEL_APP: self.name, kn.LABEL_MANAGED: kn.MANAGED_BY},
                             "annotations": {ANN_PURPOSE: self.purpose, ANN_HOST: _host()}},
                "spec": {"holderIdentity": self.owner, "leaseDurationSeconds": self.seconds,
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}

    def acquire(self, break_lock: bool = False, check_mode: bool = False) -> Dict[str, Any]:
        """{changed, taken (this call took it), lock, broken (the other holder's record), expired_holder}.

        The run's own lock is renewed (a lease of ours that expired while nobody took it
        is still ours). Another holder's live lock fails at once unless break_lock.
        """
        for dummy in range(3):
            lease, view = self.read()
            now = format_time(self.clock())
            if view is not None and view["owner"] == self.owner:
                return {"changed": False, "taken": False, "lock": self._renew(check_mode), "broken": None,
                        "expired_holder": None, "lease": self.where}
            if view is not None and not view["expired"] and not break_lock:
                raise DeployError(locked_message(self.name, view, self.where, self.clock()), lock=view, lease=self.where)
            taken = {"changed": True, "taken": True, "broken": view if view and not view["expired"] else None,
                     "expired_holder": view if view and view["expired"] else None, "lease": self.where}
            if lease is None:
                if check_mode:
                    return dict(taken, lock=holder(self._body(now), self.clock()))
                created = self.client.create("Lease", self._body(now), exists_ok=True)
                if created is None:  # created by another run a moment ago: look again
                    continue
                return dict(taken, lock=holder(created, self.clock()))
            spec = lease.get("spec") or {}
            body = self._body(now)
            body["metadata"] = {"resourceVersion": lease["metadata"]["resourceVersion"],
                                "annotations": body["metadata"]["annotations"]}
            body["spec"]["leaseTransitions"] = kn.as_int(spec.get("leaseTransitions")) + (1 if view else 0)
            del body["apiVersion"], body["kind"]
            if check_mode:
                return dict(taken, lock=holder({"metadata": body["metadata"], "spec": body["spec"]}, self.clock()))
            try:
                done = self.client.patch("Lease", self.lease, body, merge=True,
                                         what="Taking the deploy lock %s" % self.where)
            except DeployError as exc:
                if exc.details.get("status") in _RACES:
                    continue
                raise
            return dict(taken, lock=holder(done, self.clock()))
        lease, view = self.read()
        if view is not None:
            raise DeployError(locked_message(self.name, view, self.where, self.clock()), lock=view, lease=self.where)
        raise DeployError("Could not take the deploy lock %s: other runs kept changing it. Try again." % self.where,
                          lease=self.where)

    def _renew(self, check_mode: bool = False) -> Dict[str, Any]:
        now = format_time(self.clock())
        patch = [{"op": "test", "path": "/spec/holderIdentity", "value": self.owner},
                 {"op": "add", "path": "/spec/renewTime", "value": now},
                 {"op": "add", "path": "/spec/leaseDurationSeconds", "value": self.seconds}]
        try:
            done = self.client.patch("Lease", self.lease, patch, dry_run=check_mode,
                                     what="Renewing the deploy lock %s" % self.where)
        except DeployError as exc:
            if exc.details.get("status") not in _RACES + (404,):
                raise
            lease, view = self.read()
            if view:
                now = "now held by %s (%s) since %s" % (view["owner"], view.get("purpose"), view.get("since"))
            else:
                now = "it was released or removed by someone else (Lease %s)" % self.where
            raise DeployError("The deploy lock of %r was lost: %s. This run stops before its next change."
                              % (self.name, now), lock=view, lease=self.where, lost=True)
        return holder(done, self.clock()) or {}

    def renew(self) -> Dict[str, Any]:
        """Extend our lease by its duration from now; DeployError(lost=True) when it is no longer ours."""
        return self._renew()

    def release(self, break_lock: bool = False, check_mode: bool = False) -> Dict[str, Any]:
        lease, view = self.read()
        if view is None:
            return {"changed": False, "lock": None, "broken": None, "lease": self.where}
        if view["owner"] != self.owner and not break_lock:
            raise DeployError("Deploy lock of %r is held by %s, not %s; not released. Use break_lock=true to remove it."
                              % (self.name, view["owner"], self.owner), lock=view, lease=self.where)
        if check_mode:
            pass
        elif view["owner"] == self.owner:
            try:
                self.client.patch("Lease", self.lease, [{"op": "test", "path": "/spec/holderIdentity", "value": self.owner},
                                                        {"op": "remove", "path": "/spec/holderIdentity"}],
                                  what="Releasing the deploy lock %s" % self.where)
            except DeployError as exc:
                if exc.details.get("status") not in _RACES:
                    raise
                return {"changed": False, "lock": self.read()[1], "broken": None, "lease": self.where}
        else:
            version = ((lease or {}).get("metadata") or {}).get("resourceVersion")
            self.client.patch("Lease", self.lease, {"metadata": {"resourceVersion": version},
                                                    "spec": {"holderIdentity": None}}, merge=True,
                              what="Breaking the deploy lock %s" % self.where)
        return {"changed": True, "lock": None, "broken": view if view["owner"] != self.owner else None,
                "lease": self.where}


def _parent_of(pid: int) -> Optional[int]:
    """The parent pid from /proc (None when the process is gone or there is no /proc)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
        return int(data[data.rindex(b")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def lineage(depth: int = 8) -> List[Tuple[int, int]]:
    """(pid, parent) from this process up to the first session leader, included.

    Ansible runs a module as a child of a shell of a worker that is its own session leader
    and a child of ansible-playbook. When ansible-playbook dies (SIGKILL, the controller's
    container gone) the worker is re-parented and this module would run, and renew the
    lock, until its own timeout. Where there is no /proc the list is empty (no check).
    """
    chain: List[Tuple[int, int]] = []
    pid = os.getpid()
    for dummy in range(depth):
        parent = _parent_of(pid)
        if parent is None or parent <= 1:
            break
        chain.append((pid, parent))
        try:
            if os.getsid(pid) == pid:
                break
        except OSError:
            break
        pid = parent
    return chain


def orphaned(chain: List[Tuple[int, int]]) -> bool:
    return any(_parent_of(pid) != parent for pid, parent in chain)


class Renewer:
    """Renews a lease from a thread every third of its duration while a module works.

    A renewal that finds the lock taken by another run records why; the module's client then
    refuses every further write (Client.fence). A renewal that fails for another reason (the API
    unreachable a moment) is retried at the next tick: the lease is still ours until it expires.
    When the run that started the module is gone (see lineage) renewing stops and the module is
    interrupted, so a killed run's lock expires lease_seconds later, not after the module's timeout.
    """

    TICK = 0.5

    def __init__(self, lock: LeaseLock, interrupt: Callable[[], None] = _thread.interrupt_main) -> None:
        self.lock = lock
        self.lost: Optional[DeployError] = None
        self.chain = lineage()
        self._interrupt = interrupt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)

    def _run(self) -> None:
        due = time.monotonic() + self.lock.seconds / 3.0
        while not self._stop.wait(self.TICK):
            if self.chain and orphaned(self.chain):
                self.lost = DeployError("The run that started this module is gone; the deploy lock of %r is no longer "
                                        "renewed and expires by itself." % self.lock.name, lost=True, orphaned=True)
                self._interrupt()
                return
            if time.monotonic() < due:
                continue
            due = time.monotonic() + self.lock.seconds / 3.0
            try:
                self.lock.renew()
            except DeployError as exc:
                if exc.details.get("lost"):
                    self.lost = exc
                    return

    def start(self) -> "Renewer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.lock.client.timeout + 1)

    def fence(self) -> None:
        if self.lost is not None:
            raise DeployError(self.lost.msg, **self.lost.details)


@contextmanager
def holding(p: Dict[str, Any], lock: Optional[Dict[str, Any]], check_mode: bool,
            client: Optional[Client] = None) -> Iterator[Optional[Dict[str, Any]]]:
    """Hold the app's deploy lock around a module's work; yields what acquire said (None without lock).

    A lock the run already holds (taken by an earlier task) is renewed and left held, renewed
    once more at the end, so the gap to the next task starts then; a lock this call took is
    released at the end. While the work runs a thread renews it, and `client` (the work's own)
    refuses to write once it is lost. The lock gets its own API client: exec streams swap a
    client's transport and must not share it with the thread.
    """
    if not lock:
        yield None
        return
    lease = LeaseLock(Client(p), lock["name"], lock["owner"], lock.get("purpose") or "deploy",
                      lock.get("lease_seconds") or DEFAULT_SECONDS)
    got = lease.acquire(bool(lock.get("break_lock")), check_mode)
    if check_mode:
        yield got
        return
    renewer = Renewer(lease).start()
    if client is not None:
        client.fence = renewer.fence
    failed = False
    try:
        yield got
    except BaseException:
        failed = True
        raise
    finally:
        renewer.stop()
        if client is not None:
            client.fence = None
        if renewer.lost is None:
            if got["taken"]:
                lease.release()
            else:
                try:
                    lease.renew()
                except DeployError:
                    if not failed:
                        raise
        elif not failed:
            raise DeployError(renewer.lost.msg, **renewer.lost.details)
