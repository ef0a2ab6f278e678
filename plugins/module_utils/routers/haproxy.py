# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy runtime API client (stats socket, unix path or tcp:host:port).

Every change goes through the runtime API, never a reload, so no connection is
dropped. One short connection per command (HAProxy's non-interactive mode): the
answer ends when HAProxy closes the socket.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError
from ansible_collections.immutable.deploy.plugins.module_utils.plan import slot_servers
from ansible_collections.immutable.deploy.plugins.module_utils.routers.base import (
    Endpoint, Router, Switch, endpoint_key)

STATES = ("ready", "drain", "maint")
MAX_WEIGHT = 256

# srv_admin_state bits (HAProxy include/haproxy/server-t.h). CMAINT (0x04, "disabled"
# in the config) stays set after 'state ready', so only these masks decide the state.
_ADMF_MAINT = 0x01 | 0x02 | 0x20  # forced, inherited, resolution maintenance
_ADMF_DRAIN = 0x08 | 0x10  # forced, inherited drain
_OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}

# Answers HAProxy gives to a refused command (2.4 to 2.8 wording). Successful 'set'
# commands answer nothing, or "IP changed from ..." / "no need to change ...".
_ERROR_RE = re.compile(
    r"^(No such|Can't|Cannot|Unknown|Permission denied|Require|Invalid|Absolute weight|Relative weight"
    r"|'set server|Missing|Update for the current server address family|Error|Wrong|Unexpected|.*\bexpects\b)",
    re.IGNORECASE)

# Per-server counters from 'show stat' kept for analysis (cumulative since start).
_STAT_INT_FIELDS = ("scur", "smax", "stot", "qcur", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx",
                    "hrsp_5xx", "hrsp_other", "req_tot", "qtime", "ctime", "rtime", "ttime",
                    "econ", "eresp", "wretr", "wredis", "chkfail", "lbtot")


def parse_address(address: str) -> Tuple[int, Any]:
    """'tcp:host:port' -> (AF_INET, (host, port)); anything else (optionally 'unix:') is a socket path."""
    if address.startswith("tcp:"):
        host, sep, port = address[4:].rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DeployError("Invalid value for option 'socket': %r. Accepted: a unix socket path or "
                              "tcp:HOST:PORT." % address, option="socket")
        return socket.AF_INET, (host.strip("[]"), int(port))
    path = address[5:] if address.startswith("unix:") else address
    if not path:
        raise DeployError("Invalid value for option 'socket': %r. Accepted: a unix socket path or "
                          "tcp:HOST:PORT." % address, option="socket")
    return socket.AF_UNIX, path


def _int(value: str) -> Optional[int]:
    return int(value) if value not in ("", "-") and value.lstrip("-").isdigit() else None


def parse_servers_state(text: str) -> List[Dict[str, Any]]:
    """Parse 'show servers state' (format version 1) into dicts keyed by the header names."""
    lines = [line for line in text.splitlines() if line.strip()]
    header: List[str] = []
    rows = []
    for line in lines:
        if line.startswith("#"):
            header = line.lstrip("# ").split()
        elif header:
            rows.append(dict(zip(header, line.split())))
    return rows


def parse_stat(text: str) -> List[Dict[str, str]]:
    """Parse 'show stat' CSV into dicts."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#"):
        raise DeployError("Unexpected answer to 'show stat': %r" % text[:200])
    header = lines[0].lstrip("# ").rstrip(",").split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:] if line.strip()]


def admin_to_state(admin: int) -> str:
    if admin & _ADMF_MAINT:
        return "maint"
    if admin & _ADMF_DRAIN:
        return "drain"
    return "ready"


def server_view(state_row: Dict[str, Any], stat_row: Optional[Dict[str, str]]) -> Dict[str, Any]:
    """One server as reported to users: config-ish fields first, then live stats."""
    admin = _int(state_row.get("srv_admin_state", "0")) or 0
    addr = state_row.get("srv_addr", "-")
    view: Dict[str, Any] = {
        "name": state_row["srv_name"],
        "address": None if addr == "-" else addr,
        "port": _int(state_row.get("srv_port", "")),
        "weight": _int(state_row.get("srv_uweight", "")),
        "state": admin_to_state(admin),
        "op_state": _OP_STATES.get(_int(state_row.get("srv_op_state", "")) or 0, "unknown"),
        "health": None,
        "check_status": None,
    }
    stat = stat_row or {}
    view["health"] = stat.get("status") or None
    view["check_status"] = stat.get("check_status") or None
    for field in _STAT_INT_FIELDS:
        view[field] = _int(stat.get(field, "")) or 0
    return view


class Runtime:
    """Runtime API of one HAProxy process."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self._family, self._target = parse_address(address)

    def raw(self, cmd: str) -> str:
        """Send one command and return the whole answer, without interpreting it."""
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self._target)
            except OSError as exc:
                raise DeployError("Cannot reach the HAProxy runtime API at %r (option 'socket'): %s. Is HAProxy "
                                  "running with 'stats socket ... level admin'?" % (self.address, exc),
                                  option="socket") from exc
            sock.sendall(cmd.encode("utf-8") + b"\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout as exc:
            raise DeployError("HAProxy runtime API at %r did not answer %r within %ss" % (self.address, cmd, self.timeout),
                              command=cmd) from exc
        finally:
            sock.close()
        return b"".join(chunks).decode("utf-8", "replace")

    def command(self, cmd: str) -> str:
        """Send one command; raise DeployError when HAProxy refuses it."""
        answer = self.raw(cmd)
        first = answer.strip().splitlines()[0] if answer.strip() else ""
        if _ERROR_RE.match(first):
            raise DeployError("HAProxy refused %r: %s" % (cmd, answer.strip()), command=cmd, answer=answer.strip())
        return answer

    def batch(self, cmds: List[str]) -> str:
        """Send the commands in one write (HAProxy runs them back to back); raise when any is refused."""
        answer = self.raw(";".join(cmds))
        bad = [line for line in answer.splitlines() if _ERROR_RE.match(line.strip())]
        if bad:
            raise DeployError("HAProxy refused part of %r: %s" % (";".join(cmds), "; ".join(bad)),
                              commands=cmds, answer=answer.strip())
        return answer

    def backends(self) -> List[str]:
        return [line.strip() for line in self.command("show backend").splitlines()
                if line.strip() and not line.startswith("#")]

    def servers_state_text(self, backend: Optional[str] = None) -> str:
        return self.raw("show servers state" + (" %s" % backend if backend else ""))

    def servers(self, backend: str) -> List[Dict[str, Any]]:
        """Servers of a backend with address, port, weight, state and live counters."""
        text = self.servers_state_text(backend)
        if not text.lstrip().startswith("1"):  # format version line; else an error such as "Can't find backend."
            known = self.backends()
            raise DeployError("Unknown backend %r (option 'backend'). Known backends: %s."
                              % (backend, ", ".join(known) or "none"), option="backend", known=known)
        stats = {row.get("svname"): row for row in parse_stat(self.command("show stat"))
                 if row.get("pxname") == backend}
        return [server_view(row, stats.get(row["srv_name"])) for row in parse_servers_state(text)
                if row.get("be_name") == backend]

    def wait_drained(self, backend: str, names: List[str], timeout: float, interval: float = 0.5) -> Dict[str, int]:
        """Wait until the named servers have no current session; raise on timeout with what remains."""
        deadline = time.monotonic() + timeout
        while True:
            busy = {srv["name"]: srv["scur"] for srv in self.servers(backend) if srv["name"] in names and srv["scur"]}
            if not busy:
                return {}
            if time.monotonic() >= deadline:
                raise DeployError("Servers of backend %r still have sessions after drain_timeout=%ss: %s"
                                  % (backend, timeout, ", ".join("%s=%d" % kv for kv in sorted(busy.items()))),
                                  sessions=busy)
            time.sleep(interval)

    def wait_up(self, backend: str, names: List[str], timeout: float, interval: float = 0.2) -> Dict[str, str]:
        """Wait until the named servers pass their health check; raise on timeout with their health."""
        deadline = time.monotonic() + timeout
        while True:
            down = {srv["name"]: srv["health"] or "?" for srv in self.servers(backend)
                    if srv["name"] in names and not str(srv["health"]).startswith(("UP", "no check"))}
            if not down:
                return {}
            if time.monotonic() >= deadline:
                raise DeployError("Servers of backend %r are not UP after up_timeout=%ss: %s; nothing was taken "
                                  "out of service." % (backend, timeout, ", ".join("%s=%s" % kv for kv in sorted(down.items()))),
                                  health=down)
            time.sleep(interval)

    def save_state(self, path: str) -> None:
        """Dump 'show servers state' atomically to the global server-state-file.

        HAProxy reads it at start (load-server-state-from-file global), restoring
        address, port, weight and admin state, so a restart keeps the live state.
        """
        text = self.servers_state_text()
        if not text.lstrip().startswith("1"):
            raise DeployError("Unexpected answer to 'show servers state': %r" % text[:200])
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".server-state.", dir=directory)
        except OSError as exc:
            raise DeployError("Cannot write the server state file %r (option 'state_file'): %s" % (path, exc),
                              option="state_file") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


# Planning: pure functions from (current servers, request) to changes, unit-tested.
FIELDS = ("address", "port", "weight", "state")


def _accepted(option: str, given: Any, accepted: str) -> DeployError:
    return DeployError("Invalid value for option '%s': %r. Accepted: %s." % (option, given, accepted), option=option)


def plan(backend: str, current: List[Dict[str, Any]], requested: List[Dict[str, Any]],
         exclusive: bool) -> List[Dict[str, Any]]:
    """Validate the whole request first (so an error changes nothing), then return
    [{name, before, after}] for every server whose address, port, weight or state differs."""
    by_name = {srv["name"]: srv for srv in current}
    seen = set()
    for index, req in enumerate(requested):
        opt = "servers[%d]" % index
        name = req.get("name")
        if name not in by_name:
            raise DeployError("Unknown server %r in backend %r (option '%s.name'). Known servers: %s."
                              % (name, backend, opt, ", ".join(sorted(by_name)) or "none"),
                              option="servers", known=sorted(by_name))
        if name in seen:
            raise _accepted(opt + ".name", name, "each server listed once")
        seen.add(name)
        weight = req.get("weight")
        if weight is not None and not 0 <= weight <= MAX_WEIGHT:
            raise _accepted(opt + ".weight", weight, "an integer from 0 to %d" % MAX_WEIGHT)
        port = req.get("port")
        if port is not None and not 0 < port < 65536:
            raise _accepted(opt + ".port", port, "an integer from 1 to 65535")
        if req.get("state") is not None and req["state"] not in STATES:
            raise _accepted(opt + ".state", req["state"], ", ".join(STATES))
        if req.get("address") is not None and not str(req["address"]).strip():
            raise _accepted(opt + ".address", req["address"], "an IP address")
        if port is not None and req.get("address") is None and by_name[name]["address"] is None:
            raise _accepted(opt + ".address", None, "an IP address, required with port while the server has none")

    wanted = {req["name"]: req for req in requested}
    changes = []
    for srv in current:
        before = {key: srv[key] for key in FIELDS}
        if srv["name"] in wanted:
            req = wanted[srv["name"]]
            after = {key: before[key] if req.get(key) is None else req[key] for key in FIELDS}
        elif exclusive:
            after = dict(before, weight=0, state="maint")
        else:
            continue
        if after != before:
            changes.append({"name": srv["name"], "before": before, "after": after})
    return changes


def takes_traffic(server: Dict[str, Any]) -> bool:
    return server["state"] == "ready" and bool(server["weight"])


def commands(backend: str, changes: List[Dict[str, Any]]) -> List[str]:
    """Runtime commands, ordered so the backend never loses capacity midway:
    servers gaining traffic first (address, weight, then ready), then the ones
    losing it (state first, so no new request reaches them, then weight, address)."""
    rising = [c for c in changes if takes_traffic(c["after"])]
    falling = [c for c in changes if not takes_traffic(c["after"])]
    out: List[str] = []
    for change in rising + falling:
        before, after, target = change["before"], change["after"], "%s/%s" % (backend, change["name"])
        addr = []
        if (after["address"], after["port"]) != (before["address"], before["port"]):
            addr = ["set server %s addr %s" % (target, after["address"])
                    + (" port %d" % after["port"] if after["port"] is not None else "")]
        weight = ["set server %s weight %d" % (target, after["weight"])] if after["weight"] != before["weight"] else []
        state = ["set server %s state %s" % (target, after["state"])] if after["state"] != before["state"] else []
        out += addr + weight + state if takes_traffic(after) else state + weight + addr
    return out


def drain_targets(current: List[Dict[str, Any]], requested: List[Dict[str, Any]],
                  changes: List[Dict[str, Any]]) -> List[str]:
    """Listed (or excluded) servers that will take no new traffic: those to wait for."""
    by_name = {srv["name"]: srv for srv in current}
    targets = {req["name"]: dict(by_name[req["name"]], **{k: req[k] for k in FIELDS if req.get(k) is not None})
               for req in requested}
    for change in changes:
        targets.setdefault(change["name"], change["after"])
    return sorted(name for name, target in targets.items() if not takes_traffic(target))


def _already_up(current: List[Dict[str, Any]], requested: Set[str], to_ready: List[Dict[str, Any]]) -> bool:
    """Whether every server that ends up ready is already ready, UP and keeps its address."""
    by_name = {srv["name"]: srv for srv in current}
    moved = {c["name"] for c in to_ready if (c["after"]["address"], c["after"]["port"]) != (c["before"]["address"], c["before"]["port"])}
    names = requested | {c["name"] for c in to_ready}
    return not moved and all(by_name[n]["state"] == "ready" and str(by_name[n]["health"]).startswith(("UP", "no check"))
                             for n in names if n in by_name)


def _run(runtime: Runtime, cmds: List[str], applied: List[str], batch: bool = False) -> None:
    if batch and len(cmds) > 1:
        runtime.batch(cmds)
        return
    for done, cmd in enumerate(cmds):
        try:
            runtime.command(cmd)
        except DeployError as exc:
            raise DeployError(exc.msg, applied=applied + cmds[:done], **exc.details) from exc


def apply_backend(params: Dict[str, Any], check_mode: bool) -> Dict[str, Any]:
    """The haproxy_backend module's service."""
    runtime = Runtime(params["socket"], params["timeout"])
    backend = params["backend"]
    current = runtime.servers(backend)
    changes = plan(backend, current, params["servers"] or [], params["exclusive"])
    # Servers that end up ready are changed first; with wait_up, nothing is taken out
    # of service until they pass their health checks (a switch never leaves a gap).
    to_ready = [c for c in changes if c["after"]["state"] == "ready"]
    first = commands(backend, to_ready)
    then = commands(backend, [c for c in changes if c["after"]["state"] != "ready"])
    cmds = first + then
    if not check_mode:
        leaving = {c["name"] for c in changes if c not in to_ready}
        requested = {req["name"] for req in params["servers"] or []} - leaving
        if params.get("wait_up") and not _already_up(current, requested, to_ready):
            _run(runtime, first, [])
            names = [srv["name"] for srv in runtime.servers(backend) if srv["name"] in requested and srv["state"] == "ready"]
            runtime.wait_up(backend, names, params["up_timeout"])
            _run(runtime, then, first)
        else:
            # Pre-warmed servers: one write carries the whole switch, so HAProxy applies it
            # back to back and old and new never both take traffic for more than an instant.
            _run(runtime, cmds, [], batch=True)
    drained: Dict[str, Any] = {}
    if params["wait_drained"] and not check_mode:
        names = drain_targets(current, params["servers"] or [], changes)
        started = time.monotonic()
        runtime.wait_drained(backend, names, params["drain_timeout"])
        drained = {"servers": sorted(names), "seconds": round(time.monotonic() - started, 2)}
    if params["state_file"] and not check_mode:
        # Mirrors the live state on every run (not counted as a change): a reload or
        # restart then starts from what is live, including health states.
        runtime.save_state(params["state_file"])
    if check_mode:
        after_by_name = {c["name"]: c["after"] for c in changes}
        servers = [dict(srv, **after_by_name.get(srv["name"], {})) for srv in current]
    else:
        servers = runtime.servers(backend) if cmds else current
    return {
        "changed": bool(changes),
        "backend": backend,
        "servers": servers,
        "changes": changes,
        "commands": cmds,
        "drained": drained,
        "diff": {"before": {c["name"]: c["before"] for c in changes},
                 "after": {c["name"]: c["after"] for c in changes}},
    }


class HAProxyRouter(Router):
    """Slots of servers in one backend, changed live through the runtime API."""

    def servers(self) -> Optional[List[Dict[str, Any]]]:
        try:
            return Runtime(self.ref.socket or "", self.ref.timeout).servers(self.ref.backend or self.ref.app)
        except DeployError as exc:
            raise DeployError("Reading HAProxy backend %r at router_socket %r failed: %s"
                              % (self.ref.backend, self.ref.socket, exc.msg), option="router_socket")

    def weights(self, servers: Optional[List[Dict[str, Any]]]) -> Dict[Endpoint, int]:
        weights: Dict[Endpoint, int] = {}
        for s in servers or []:
            if s.get("state") == "ready" and s.get("port") is not None:
                key = endpoint_key(s.get("address"), s["port"])
                weights[key] = weights.get(key, 0) + int(s.get("weight") or 0)
        return weights

    def switch(self, request: Switch, check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
        target, previous, limit = request.target, request.previous, self.ref.max_replicas
        servers = slot_servers(target["endpoints"], target["slot"], request.weight, "ready", limit)
        if previous and previous["slot"] != target["slot"]:
            # The release left stays health-checked in drain: switching back is again one write.
            servers += slot_servers(previous["endpoints"], previous["slot"], 0, "drain", limit)
        # Other slots' servers that point at the wrong containers: re-pointed, weight and state kept.
        written = {s["name"] for s in servers}
        servers += [r for r in request.repairs if r["name"] not in written]
        result = apply_backend(dict(socket=self.ref.socket, timeout=self.ref.timeout, backend=self.ref.backend,
                                    servers=servers, exclusive=False, wait_up=True, up_timeout=request.up_timeout,
                                    wait_drained=bool(previous) and request.drain,
                                    drain_timeout=request.drain_timeout, state_file=self.ref.state_file), check_mode)
        return dict({k: result[k] for k in ("backend", "changes", "commands", "drained")}, changed=result["changed"])
