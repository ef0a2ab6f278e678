"""A Docker engine of the test's own, so a test can stop and start it like a host's engine
restart without disturbing the shared engine the other tests run on.

dockerd with its own data root, exec root, socket and bridge; no iptables rules (the shared
engine owns them), so published ports go through docker-proxy on 127.0.0.1. Images come from
the local registry. Everything it made is removed afterwards.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from typing import Any, Dict, List, Optional, Tuple

import docker

from net import Load

STATE = os.environ.get("IMMUTABLE_DEPLOY_STATE", "/var/tmp/immutable-deploy")


class PrivateEngine:
    def __init__(self, live_restore: bool = False) -> None:
        self.live_restore = live_restore
        uid = uuid.uuid4().hex[:8]
        self.bridge = "idt%s" % uid
        self.root = os.path.join(STATE, "engines", uid)
        self.exec_root = "/run/idt-%s" % uid  # short: containerd's socket paths live under it
        self.socket = os.path.join(self.root, "docker.sock")
        self.url = "unix://" + self.socket
        self.pidfile = os.path.join(self.root, "dockerd.pid")
        self.log = os.path.join(self.root, "dockerd.log")
        self.subnet = "10.231.%d" % random.randint(1, 250)
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 60) -> None:
        if not os.path.exists("/sys/class/net/" + self.bridge):
            subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", self.subnet + ".1/24", "dev", self.bridge], check=True)
            subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        os.makedirs(self.root, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["/usr/sbin/dockerd", "--storage-driver", "overlay2", "--data-root", os.path.join(self.root, "data"),
                 "--exec-root", self.exec_root, "--pidfile", self.pidfile, "-H", self.url,
                 "--bridge", self.bridge, "--iptables=false", "--ip-masq=false"]
                + (["--live-restore"] if self.live_restore else []),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited (%s); log %s" % (self.proc.returncode, self.log))
            try:
                docker.APIClient(base_url=self.url, version="auto", timeout=5).ping()
                return
            except Exception:  # pylint: disable=broad-except
                time.sleep(0.2)
        raise RuntimeError("dockerd did not answer within %ss; log %s" % (timeout, self.log))

    def stop(self, timeout: float = 60) -> None:
        """What a package upgrade or a shutdown does: SIGTERM, dockerd stops its containers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="auto", timeout=60)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                client = self.client()
                for container in client.containers.list(all=True):
                    container.remove(force=True)
            except Exception:  # pylint: disable=broad-except
                pass
            self.stop()
        subprocess.run(["ip", "link", "del", self.bridge], check=False, stderr=subprocess.DEVNULL)
        # dockerd unmounts its layers on a clean stop; anything left would keep rmtree from finishing.
        with open("/proc/mounts", encoding="utf-8") as mounts:
            left = [line.split()[1] for line in mounts if line.split()[1].startswith((self.root, self.exec_root))]
        for mount in sorted(left, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)


class Timeline(Load):
    """Load that keeps (time, version or None) for every outcome."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.events: List[Tuple[float, Optional[str]]] = []

    def _answer(self, sent: float, now: float, status: int, body: str) -> None:
        super()._answer(sent, now, status, body)
        self.events.append((now, body if status == 200 else None))

    def _failure(self, sent: float, now: float, error: str) -> None:
        super()._failure(sent, now, error)
        self.events.append((now, None))


def restart_under_load(engine: PrivateEngine, port: int, live: str) -> Dict[str, Any]:
    """Stop and start the engine while a load runs on the router; figures and answers per version."""
    with Timeline(port) as load:
        time.sleep(1)
        stopped_at = time.monotonic()
        engine.stop()
        engine.start()
        started_at = time.monotonic()
        deadline = started_at + 60
        while load.last_seen.get(live, 0) < started_at and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)
    last_before = max(t for t, v in load.events if v and t < stopped_at)
    first_after = min((t for t, v in load.events if v and t > started_at), default=None)
    return {"engine_down_s": round(started_at - stopped_at, 2),
            "no_answer_s": round(first_after - last_before, 2) if first_after else None,
            "live_again_after_engine_start_s": round(first_after - started_at, 2) if first_after else None,
            "failed_requests": sum(load.errors.values()), "answers": dict(load.versions)}
