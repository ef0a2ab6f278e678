# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx router: render an upstream file, validate it with `nginx -t`, reload gracefully.

The file on disk and the running nginx never disagree for long: a rendering that
nginx rejects (at `nginx -t` or at reload) is rolled back to the previous bytes.
"""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, cast

from ansible_collections.immutable.deploy.plugins.module_utils.errors import DeployError, invalid_option
from ansible_collections.immutable.deploy.plugins.module_utils.routers.base import (
    Endpoint, Router, Switch, endpoint_key)
from ansible_collections.immutable.deploy.plugins.module_utils.waiting import wait_until

WEIGHT_MIN, WEIGHT_MAX = 1, 1000
# Listed in the file when allow_empty and no server is given: nginx refuses an
# upstream without a non-backup server, and a `down` one fails requests at once (502).
PLACEHOLDER = "server 127.0.0.1:9 down;  # placeholder: no server given (allow_empty)"
HEADER = "# Managed by immutable.deploy.nginx_upstream: do not edit, the next deploy replaces it.\n"
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
_PID_RE = re.compile(r"^\s*pid\s+([^;\s]+)\s*;", re.MULTILINE)


@dataclass(frozen=True)
class Server:
    address: str
    port: int
    weight: int = 1
    backup: bool = False
    down: bool = False

    def line(self) -> str:
        host = "[%s]" % self.address if ":" in self.address else self.address
        parts = ["server", "%s:%d" % (host, self.port), "weight=%d" % self.weight]
        parts += ["backup"] * self.backup + ["down"] * self.down
        return " ".join(parts) + ";"

    def as_dict(self) -> Dict[str, Any]:
        return dict(address=self.address, port=self.port, weight=self.weight, backup=self.backup, down=self.down)


def _address(value: Any, option: str) -> str:
    text = str(value or "").strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    # Only hostnames and IP literals: anything else could smuggle nginx syntax (; { } #) into the file.
    if not _HOST_RE.match(text):
        raise invalid_option(option, value, "an IPv4 or IPv6 address or a DNS hostname")
    return text.lower()


def parse_servers(raw: List[Dict[str, Any]], allow_empty: bool = False) -> List[Server]:
    """Validate and normalise the servers, sorted so that input order never shows as a change."""
    servers: Dict[Tuple[str, int], Server] = {}
    for index, item in enumerate(raw or []):
        opt = "servers[%d]" % index
        port, weight = item.get("port"), item.get("weight", 1)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise invalid_option(opt + ".port", port, "an integer from 1 to 65535")
        if weight is None:
            weight = 1
        if not isinstance(weight, int) or isinstance(weight, bool) or not WEIGHT_MIN <= weight <= WEIGHT_MAX:
            raise invalid_option(opt + ".weight", weight, "an integer from %d to %d" % (WEIGHT_MIN, WEIGHT_MAX))
        server = Server(_address(item.get("address"), opt + ".address"), port, weight,
                        bool(item.get("backup")), bool(item.get("down")))
        key = (server.address, server.port)
        if key in servers:
            raise invalid_option(opt, "%s:%d" % key, "each address and port once (it is listed twice)")
        servers[key] = server
    if not servers and not allow_empty:
        raise invalid_option("servers", raw, "at least one server: an upstream without servers fails every "
                                             "request (set allow_empty=true to accept that on purpose)")
    if servers and all(s.backup for s in servers.values()):
        raise invalid_option("servers", [s.as_dict() for s in servers.values()],
                             "at least one server with backup=false (nginx refuses an upstream of backups only)")
    return [servers[k] for k in sorted(servers)]


def render(name: str, servers: List[Server]) -> str:
    if not _NAME_RE.match(name or ""):
        raise invalid_option("name", name, "letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    lines = [s.line() for s in servers] or [PLACEHOLDER]
    return HEADER + "upstream %s {\n%s}\n" % (name, "".join("    %s\n" % line for line in lines))


# -- reading an upstream file back (what docker_release_info needs to tell the live release) --
_UPSTREAM_RE = re.compile(r"^upstream\s+(\S+)\s*\{$")
_SERVER_RE = re.compile(r"^server\s+(\[[^\]]+\]|[^\s\[\];#]+):(\d+)((?:\s+[^\s;#]+)*)\s*;$")


def parse_upstream(text: str, option: str = "path") -> Tuple[str, List[Server]]:
    """(name, servers) of one upstream block as render() writes it; the placeholder means no server.

    Other parameters of a hand-edited server (max_fails=..., ...) and other directives of the block
    (keepalive ...) are ignored: only address, port, weight, backup and down decide where traffic goes.
    Anything else that cannot be read fails, so a caller never acts on half a file.
    """
    name: Optional[str] = None
    servers: List[Server] = []
    closed = False
    for number, raw in enumerate(text.splitlines(), 1):
        if raw.strip() == PLACEHOLDER:
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = "line %d (%r)" % (number, raw.strip())
        if name is None or closed:
            match = _UPSTREAM_RE.match(line)
            if not match or closed:
                raise DeployError("Option '%s': %s is not an upstream file as nginx_upstream renders it (one "
                                  "'upstream NAME {' block of 'server ADDRESS:PORT ...;' lines)." % (option, where),
                                  option=option)
            name = match.group(1)
        elif line == "}":
            closed = True
        elif line.split(None, 1)[0] == "server":
            match = _SERVER_RE.match(line)
            if not match:
                raise DeployError("Option '%s': cannot read the server at %s; accepted: 'server ADDRESS:PORT "
                                  "[weight=N] [backup] [down];'." % (option, where), option=option)
            servers.append(_server_from(match, option, where))
        # Any other directive inside the block (keepalive, zone, ...) does not route.
    if name is None or not closed:
        raise DeployError("Option '%s': no complete 'upstream NAME { ... }' block found." % option, option=option)
    return name, servers


def _server_from(match: "re.Match[str]", option: str, where: str) -> Server:
    weight, backup, down = 1, False, False
    for param in match.group(3).split():
        if param.startswith("weight="):
            if not param[7:].isdigit():
                raise DeployError("Option '%s': bad weight at %s." % (option, where), option=option)
            weight = int(param[7:])
        elif param in ("backup", "down"):
            backup, down = backup or param == "backup", down or param == "down"
        elif "=" not in param and param not in ("resolve",):
            raise DeployError("Option '%s': unknown server parameter %r at %s." % (option, param, where),
                              option=option)
    return Server(_address(match.group(1), option), int(match.group(2)), weight, backup, down)


def read_upstream(path: str, option: str = "path") -> Tuple[str, List[Server]]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise DeployError("Option '%s': cannot read the upstream file %s: %s." % (option, path, exc.strerror or exc),
                          option=option) from exc
    return parse_upstream(text, option)


def active_weights(servers: List[Server]) -> Dict[Tuple[str, int], int]:
    """(address, port) -> weight of the servers that take traffic (neither down nor backup)."""
    return {(s.address, s.port): s.weight for s in servers if not s.down and not s.backup and s.weight > 0}


def find_binary(binary: str) -> str:
    """Resolve the nginx binary like Ansible's get_bin_path: PATH, then the sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", "")] + list(SBIN_DIRS))
    found = shutil.which(binary, path=path)
    if not found:
        raise invalid_option("nginx_binary", binary, "an nginx executable, by name on PATH (or %s) or by full path"
                             % ", ".join(SBIN_DIRS))
    return found


def _run(argv: List[str]) -> Tuple[int, str]:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return proc.returncode, proc.stdout.strip()


def check_config(binary: str, conf: str) -> Tuple[bool, str]:
    """`nginx -t -c conf`: (accepted, nginx's own output)."""
    rc, out = _run([binary, "-t", "-q", "-c", conf])
    return rc == 0, out


def pid_file_for(binary: str, conf: str) -> Optional[str]:
    """The pid file named in the config (absolute), else nginx's compiled-in default."""
    try:
        with open(conf, encoding="utf-8") as handle:
            match = _PID_RE.search(handle.read())
    except OSError:
        match = None
    if match:
        # A relative pid path depends on the -p prefix nginx was started with, which is unknowable here.
        return match.group(1) if os.path.isabs(match.group(1)) else None
    _rc, out = _run([binary, "-V"])
    found = re.search(r"--pid-path=(\S+)", out)
    return found.group(1) if found else None


def _cmdline(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def master_pid(pid_file: Optional[str]) -> Optional[int]:
    """The running master's pid, or None (no pid file, stale pid, or a pid reused by another program)."""
    if not pid_file:
        return None
    try:
        with open(pid_file, encoding="utf-8") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return pid if _cmdline(pid).startswith("nginx: master process") else None


def workers(master: int, state: str = "") -> List[int]:
    """Worker pids of a master: live ones, or with state 'is shutting down' the old ones finishing requests."""
    wanted = "nginx: worker process" + (" " + state if state else "")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, encoding="utf-8") as handle:
                # The ppid follows the ")" that closes the command name.
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == master and _cmdline(int(entry)) == wanted:
            found.append(int(entry))
    return sorted(found)


def reload(master: int, timeout: float) -> List[int]:
    """SIGHUP the master (no -p prefix to get wrong) and wait for workers it had not before.

    nginx starts new workers only once it has accepted the new configuration; the old
    ones finish their in-flight requests first, so no request is dropped.
    """
    before = set(workers(master))
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [pid for pid in workers(master) if pid not in before]
        if fresh:
            return fresh
        if not _cmdline(master):
            break
        time.sleep(0.05)
    return []


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DeployError("Option 'path': cannot read %s: %s." % (path, exc), option="path") from exc


def _write(path: str, content: Optional[str]) -> None:
    """Replace path atomically (temp file in the same directory, then rename); None removes it."""
    if content is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _rollback(path: str, before: Optional[str], msg: str, **details: Any) -> DeployError:
    _write(path, before)
    return DeployError(msg + " %s was restored to its previous content%s." % (
        path, "" if before is not None else " (removed: there was none)"), rolled_back=True, path=path, **details)


def apply(p: Dict[str, Any], check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
    path, conf = p["path"], p["nginx_conf"]
    servers = parse_servers(p["servers"], p["allow_empty"])
    content = render(p["name"], servers)
    # In check mode an earlier task of the play (which did not run) may be the one creating it.
    if not check_mode and not os.path.isdir(os.path.dirname(path) or "."):
        raise invalid_option("path", path, "a file in an existing directory")
    binary = find_binary(p["nginx_binary"]) if p["validate"] or p["reload"] else None
    if p["validate"] and not os.path.isfile(conf):
        raise invalid_option("nginx_conf", conf, "an existing nginx main configuration that includes 'path' "
                                                 "(or validate=false before it exists)")
    pid_file = p["pid_file"] or (pid_file_for(binary, conf) if binary else None)
    if p["reload"] and not pid_file:
        raise invalid_option("pid_file", None, "the nginx pid file: it could not be read from a 'pid' directive "
                                               "with an absolute path in %s" % conf)

    before = _read(path)
    master = master_pid(pid_file)
    result: Dict[str, Any] = dict(changed=before != content, name=p["name"], path=path,
                                  servers=[s.as_dict() for s in servers], validated=False, reloaded=False,
                                  running=master is not None, master_pid=master, workers=[])
    if diff_mode:
        result["diff"] = dict(before=before or "", after=content, after_header=path,
                              before_header=path if before is not None else "%s (absent)" % path)
    if not result["changed"] or check_mode:
        return result

    _write(path, content)
    if p["validate"]:
        ok, output = check_config(cast(str, binary), conf)  # looked up above when validating
        if not ok:
            raise _rollback(path, before, "nginx -t rejected the configuration with upstream %r: %s."
                            % (p["name"], output), nginx_output=output)
        result.update(validated=True, nginx_output=output)
    if p["reload"] and master is not None:
        try:
            fresh = reload(master, p["reload_timeout"])
        except OSError as exc:  # typically not allowed to signal a master owned by another user
            raise _rollback(path, before, "Cannot signal the nginx master (pid %d) to reload: %s." % (master, exc),
                            master_pid=master) from exc
        if not fresh:
            raise _rollback(path, before, "nginx (master pid %d) did not start new workers within %ss of the "
                            "reload signal, so it still runs the previous configuration; see its error log."
                            % (master, p["reload_timeout"]), master_pid=master)
        result.update(reloaded=True, workers=fresh)
    return result


class NginxRouter(Router):
    """One upstream file per app: rendered, validated with nginx -t, then a graceful reload."""

    def servers(self) -> Optional[List[Dict[str, Any]]]:
        return None  # nginx routes endpoints, not slots

    def weights(self, servers: Optional[List[Dict[str, Any]]]) -> Dict[Endpoint, int]:
        dummy, upstream = read_upstream(self.ref.upstream_file or "", "router_upstream_file")
        weights: Dict[Endpoint, int] = {}
        for key, weight in active_weights(upstream).items():
            weights[endpoint_key(*key)] = weights.get(endpoint_key(*key), 0) + weight
        return weights

    def switch(self, request: Switch, check_mode: bool, diff_mode: bool) -> Dict[str, Any]:
        target = request.target
        result = apply(dict(name=self.ref.app, path=self.ref.upstream_file, allow_empty=False,
                            servers=[dict(e, weight=request.weight) for e in target["endpoints"]],
                            nginx_conf=self.ref.nginx_conf, nginx_binary=self.ref.nginx_binary,
                            pid_file=self.ref.nginx_pid_file, validate=True, reload=True,
                            reload_timeout=self.ref.reload_timeout), check_mode, diff_mode)
        if not result["running"] and not check_mode:
            raise DeployError("No nginx master runs for %s (pid file %s): the upstream file now names %s but "
                              "nothing serves it; apply immutable.deploy.router with router_kind=nginx."
                              % (self.ref.app, self.ref.nginx_pid_file or "from nginx_conf", target["id"]),
                              option="nginx_pid_file")
        out = dict({k: result.get(k) for k in ("path", "servers", "reloaded", "master_pid")},
                   changed=result["changed"], drained={})
        if request.drain and result.get("reloaded") and result.get("master_pid") and not check_mode:
            # Old workers exit once their last request to the release left is answered.
            started = time.monotonic()
            done, dummy = wait_until(lambda: (not workers(result["master_pid"], "is shutting down"), None),
                                     request.drain_timeout, 0.2)
            out["drained"] = {"done": done, "seconds": round(time.monotonic() - started, 2)}
        return out
