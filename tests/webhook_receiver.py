"""A real webhook receiver on 127.0.0.1 for notify tests: records every request, verifies the
HMAC-SHA256 signature, and can answer 503 (or not listen at all) for the first attempts."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

SIGNATURE_HEADER = "X-Immutable-Deploy-Signature-256"


class Receiver:
    """with Receiver(secret=..., fail_first=2) as rx: POST to rx.url; rx.requests lists what came.

    Each request: path, headers, body (bytes), json, status answered and signature_ok (None
    without a secret). port=<n> binds that port (start() later to be "down" before it)."""

    def __init__(self, secret: Optional[str] = None, fail_first: int = 0, status: int = 503,
                 port: int = 0, retry_after: Optional[str] = None) -> None:
        self.secret, self.fail_first, self.status, self.retry_after = secret, fail_first, status, retry_after
        self.port = port
        self.requests: List[Dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/hooks/deploy" % self.port

    def events(self) -> List[Dict[str, Any]]:
        """Bodies of the requests that were accepted (200)."""
        return [r["json"] for r in self.requests if r["status"] == 200]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        data = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        signature_ok = None
        if self.secret is not None:
            want = "sha256=" + hmac.new(self.secret.encode(), data, hashlib.sha256).hexdigest()
            signature_ok = hmac.compare_digest(headers.get(SIGNATURE_HEADER.lower(), ""), want)
        with self._lock:
            status = self.status if len(self.requests) < self.fail_first else 200
            if signature_ok is False:
                status = 401
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
            self.requests.append({"path": handler.path, "headers": headers, "body": data, "json": parsed,
                                  "status": status, "signature_ok": signature_ok})
        handler.send_response(status)
        if status != 200 and self.retry_after is not None:
            handler.send_header("Retry-After", self.retry_after)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
