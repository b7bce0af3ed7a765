"""A real local HTTP server standing in for Slack and webhook receivers: records every POST
(path, headers, body) and answers from a per-path script of statuses (then 200), optionally
stalling a request to provoke the daemon's delivery timeout."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: List[Dict[str, Any]] = []
        self.script: Dict[str, List[int]] = {}
        self.stall: Dict[str, float] = {}
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    script = receiver.script.get(self.path) or []
                    status = script.pop(0) if script else 200
                    stall = receiver.stall.get(self.path)
                    receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                              "body": body, "status": status, "stalled": bool(stall)})
                if stall:
                    # Held until the test ends or the stall passes: the daemon's timeout fires first.
                    receiver.release.wait(stall)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str, status: Optional[int] = None) -> List[Dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path and (status is None or r["status"] == status)]

    def json(self, path: str, status: int = 200) -> List[Dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received(path, status)]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
