"""Test hosts for integration tests: systemd machines from tests/hosts/hosts.sh.

Each machine boots a cached Debian 12 image (systemd, sshd, sudo, python3, haproxy, nginx,
busybox) with systemd-nspawn in its own network namespace; its ports are published on
127.0.0.1 only. The controller reaches it over SSH as the unprivileged user `deploy` with
passwordless sudo and the machine's own /usr/bin/python3.
"""
from __future__ import annotations

import os
import subprocess
import time
from typing import Any, Dict, List, Optional

from ansible_collections.immutable.deploy.plugins.module_utils.routers.haproxy import parse_servers_state, server_view

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HOSTS_SH = os.path.join(ROOT, "tests", "hosts", "hosts.sh")


def nspawn_unavailable() -> Optional[str]:
    """Why systemd machines cannot run here, or None. Only what the kernel or the user forbids
    counts: missing packages are installed by the harness, and later failures are failures."""
    if os.geteuid() != 0:
        return "test hosts need root (systemd-nspawn, overlay mounts, network namespaces)"
    proc = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "true"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        return "this machine does not allow mount, network and pid namespaces (%s)" % proc.stderr.strip()
    with open("/proc/filesystems", encoding="ascii") as handle:
        if "overlay" not in handle.read():
            return "the kernel has no overlay file system for the machines' root trees"
    return None


class Machines:
    """Machines PREFIX-1..N started by hosts.sh; stop() deletes them and everything they wrote."""

    def __init__(self, prefix: str, ports: List[int]) -> None:
        self.prefix = prefix
        self.env = dict(os.environ, HOSTS_PREFIX=prefix, HOSTS_PORTS=" ".join(str(p) for p in ports))
        self.names: List[str] = []
        self.timings: Dict[str, Any] = {}  # figures a test reports (image build, start)

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([HOSTS_SH, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, check=check)

    def build(self) -> float:
        """Build the image unless cached; seconds taken."""
        started = time.monotonic()
        self.run("build", timeout=1800)
        return time.monotonic() - started

    def start(self, count: int) -> None:
        self.names = ["%s-%d" % (self.prefix, i) for i in range(1, count + 1)]
        try:
            self.run("start", str(count), timeout=300)
        except subprocess.CalledProcessError as exc:
            self.stop()
            raise AssertionError("hosts.sh start failed: %s" % exc.stderr[-2000:]) from exc

    def stop(self) -> None:
        if self.names:
            self.run("stop", *self.names, timeout=120, check=False)

    def port(self, name: str, port: int) -> int:
        """The 127.0.0.1 port publishing PORT of machine NAME."""
        return int(self.run("port", name, str(port)).stdout)

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 60) -> str:
        proc = self.run("ssh", name, command, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s: %r failed (%d): %s" % (name, command, proc.returncode, proc.stderr[-2000:]))
        return proc.stdout

    def inventory(self, path: str) -> str:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.run("inventory").stdout)
        return path

    def machine_dir(self, name: str) -> str:
        state = os.environ.get("IMMUTABLE_DEPLOY_STATE", "/var/tmp/immutable-deploy")
        return os.path.join(state, "hosts", "machines", name)

    def image_dir(self, name: str) -> str:
        with open(os.path.join(self.machine_dir(name), "image"), encoding="utf-8") as handle:
            return handle.read().strip()

    def boots(self, name: str) -> List[float]:
        """Wall-clock times at which the machine's boots started."""
        with open(os.path.join(self.machine_dir(name), "boots"), encoding="ascii") as handle:
            return [float(line) for line in handle if line.strip()]

    def servers_state(self, name: str, socket_path: str, backend: str) -> Dict[str, Dict[str, Any]]:
        """BACKEND's servers as haproxy_backend reports them (name -> address, port, weight, state, ...),
        from `show servers state` read inside the machine through its runtime API (no Ansible run)."""
        out = self.ssh(name, "echo 'show servers state %s' | sudo socat -t 5 - UNIX-CONNECT:%s" % (backend, socket_path))
        return {row["srv_name"]: server_view(row, None) for row in parse_servers_state(out)}
