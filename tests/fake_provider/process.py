"""The shared fake provider run as a subprocess, with its record of every request and
response: what the repository's Python suites (tests/ and sdk-python/tests) start."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

SERVER = Path(__file__).resolve().parent / "server.py"


class Fake:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _req(self, method: str, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def requests(self) -> List[Dict[str, Any]]:
        return self._req("GET", "/_fake/requests")

    def reset(self) -> None:
        """Clears the record and opens every gate."""
        self._req("POST", "/_fake/reset")

    def defaults(self, **headers: str) -> None:
        """Control headers for requests that do not send their own: defaults(usage="5,1")."""
        query = "&".join(f"x-fake-{k.replace('_', '-')}={v}" for k, v in headers.items())
        self._req("POST", f"/_fake/defaults?{query}")

    def release(self, gate: str) -> None:
        """Answers the calls held by `x-fake-gate: <gate>` (and lets later ones through)."""
        self._req("POST", f"/_fake/release?gate={gate}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
