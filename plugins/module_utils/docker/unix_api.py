# Copyright: immutable.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine calls of reading and switching releases, over the local unix socket with the
standard library only.

Importing the docker SDK (and requests with it) costs about 0.1 s of every module run, more
on a loaded host, and a rollback is the run users time in an emergency. Reads, start, stop,
remove and logs are plain HTTP requests; the SDK stays for what needs its helpers (create,
pull, build, push) and for TCP/TLS/SSH engines.
"""
from __future__ import annotations

import http.client
import json
import socket
import struct
from typing import Any, Dict, List, Optional, Tuple, cast
from urllib.parse import quote, urlencode


class ApiError(Exception):
    """The engine answered with an error status (404 included); status and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.explanation = status, message


class _Connection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def socket_path(url: str) -> Optional[str]:
    """The socket of a unix:// engine URL; None for any other kind of engine."""
    if url.startswith("unix://"):
        return url[len("unix://"):] or None
    return None


def demux(data: bytes) -> str:
    """A container's log stream without the 8-byte frame headers (no TTY: stdout/stderr multiplexed)."""
    out, offset = [], 0
    while offset + 8 <= len(data) and data[offset] in (0, 1, 2) and data[offset + 1:offset + 4] == b"\0\0\0":
        size = struct.unpack(">I", data[offset + 4:offset + 8])[0]
        out.append(data[offset + 8:offset + 8 + size])
        offset += 8 + size
    raw = b"".join(out) if out else data
    return raw.decode("utf-8", "replace")


class UnixAPI:
    """Unversioned Docker Engine API requests: the engine answers them in its own newest version."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path, self.timeout = path, timeout

    def request(self, method: str, path: str, query: Optional[Dict[str, Any]] = None) -> Tuple[int, bytes]:
        conn = _Connection(self.path, self.timeout)
        try:
            conn.request(method, path + ("?" + urlencode(query) if query else ""))
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _json(self, method: str, path: str, query: Optional[Dict[str, Any]] = None) -> Any:
        """The decoded answer: its shape is the one the Engine API documents for the path (callers cast)."""
        status, body = self.request(method, path, query)
        if status >= 400:
            try:
                message = json.loads(body or b"{}").get("message") or body.decode("utf-8", "replace")
            except ValueError:
                message = body.decode("utf-8", "replace")
            raise ApiError(status, message.strip())
        return json.loads(body) if body else None

    def ping(self) -> None:
        status, body = self.request("GET", "/_ping")
        if status != 200:
            raise ApiError(status, body.decode("utf-8", "replace"))

    def containers(self, all: bool = True, filters: Optional[Dict[str, List[str]]] = None) -> List[Dict[str, Any]]:
        query: Dict[str, Any] = {"all": "1" if all else "0"}
        if filters:
            query["filters"] = json.dumps(filters)
        return cast(List[Dict[str, Any]], self._json("GET", "/containers/json", query))

    def inspect_container(self, ref: str) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._json("GET", "/containers/%s/json" % quote(ref, safe="")))

    def inspect_image(self, ref: str) -> Dict[str, Any]:
        return cast(Dict[str, Any], self._json("GET", "/images/%s/json" % quote(ref, safe="/:@")))

    def start(self, ref: str) -> None:
        self._json("POST", "/containers/%s/start" % quote(ref, safe=""))

    def stop(self, ref: str, timeout: int) -> None:
        self._json("POST", "/containers/%s/stop" % quote(ref, safe=""), {"t": str(timeout)})

    def remove_container(self, ref: str, force: bool = True, v: bool = True) -> None:
        self._json("DELETE", "/containers/%s" % quote(ref, safe=""),
                   {"force": "1" if force else "0", "v": "1" if v else "0"})

    def logs(self, ref: str, tail: int) -> str:
        status, body = self.request("GET", "/containers/%s/logs" % quote(ref, safe=""),
                                    {"stdout": "1", "stderr": "1", "tail": str(tail)})
        if status >= 400:
            raise ApiError(status, body.decode("utf-8", "replace"))
        return demux(body)
