"""Loopback networking helpers shared by the integration tests and benchmarks."""
from __future__ import annotations

import http.client
import random
import socket
import threading
import time
from collections import Counter
from typing import Dict, List, Optional, Tuple


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range (32768+).

    Port 0 hands out an ephemeral port, which Docker's own published-port allocation and
    outgoing connections also draw from: between this call and the bind in HAProxy, nginx or
    a container, another xdist worker could take it. 27000-29999 is docker_release's default
    host_port_range, where releases get their fixed host ports.
    """
    low, high = 20000, 26999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            high = min(high, int(handle.read().split()[0]) - 1)
    except (OSError, ValueError, IndexError):
        pass
    for dummy in range(200):
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in %d-%d on %s" % (low, high, host))


def get(port: int, path: str = "/version", timeout: float = 10) -> Tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace").strip()
    finally:
        conn.close()


class Load:
    """Continuous GETs from a few threads over keep-alive connections; counts every outcome.

    versions[v] counts 200 answers whose body is v; last_seen[v] is the monotonic time of
    the last such answer, so a test can tell when the old version stopped answering.
    """

    def __init__(self, port: int, path: str = "/version", threads: int = 4) -> None:
        self.port, self.path, self.threads = port, path, threads
        self.versions: Counter = Counter()
        self.errors: Counter = Counter()
        self.last_seen: Dict[str, float] = {}
        self.first_seen: Dict[str, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: List[threading.Thread] = []

    # A new connection per request instead (a subclass sets it): see test_blue_green_nginx.FreshLoad.
    keep_alive = True
    # Seconds each thread waits between requests. Tests share two cores with three xdist workers:
    # unpaced, one Load takes most of the machine. Paced, 4 threads still send ~300 requests/s,
    # a request every ~3 ms, far finer than any gap a switch could open. Benchmarks set 0.
    pause = 0.01

    def _answer(self, sent: float, now: float, status: int, body: str) -> None:
        """One answer, called under the lock; subclasses record more and call this."""
        if status == 200:
            self.versions[body] += 1
            self.last_seen[body] = now
            self.first_seen.setdefault(body, now)
        else:
            self.errors["status %d" % status] += 1

    def _failure(self, sent: float, now: float, error: str) -> None:
        """One request that got no answer (error is the exception's name), called under the lock."""
        self.errors[error] += 1

    def _run(self) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read().decode("utf-8", "replace").strip()
                with self._lock:
                    self._answer(sent, time.monotonic(), resp.status, body)
                if resp.will_close or not self.keep_alive:
                    conn.close()
                    conn = None
                if self.pause:
                    self._stop.wait(self.pause)
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self._failure(sent, time.monotonic(), type(exc).__name__)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
        if conn is not None:
            conn.close()

    def __enter__(self) -> "Load":
        for dummy in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)

    @property
    def total(self) -> int:
        return sum(self.versions.values()) + sum(self.errors.values())

    def snapshot(self) -> Dict[str, object]:
        with self._lock:
            return {"requests": self.total, "versions": dict(self.versions), "errors": dict(self.errors)}


class FullLoad(Load):
    """As many requests as the machine gives (benchmarks): no pause between requests."""

    pause = 0.0
