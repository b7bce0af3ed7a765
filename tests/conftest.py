"""Shared fixtures of the repository-level Python suites (tests/daemon, tests/proxy): the real
spendwall daemon binary on a temporary socket and a free loopback port, and the shared fake
provider (tests/fake_provider/server.py) as a subprocess."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.fake_provider.process import Fake  # noqa: E402  (the shared fake, re-exported to the suites)


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self._path)


class Daemon:
    """A real `spendwall daemon` with its own config, data dir, socket and loopback port."""

    def __init__(self, files: Optional[Dict[str, str]] = None, env: Optional[Dict[str, str]] = None) -> None:
        self.root = tempfile.mkdtemp(prefix="swt-")
        self.config_dir = os.path.join(self.root, "config")
        self.data_dir = os.path.join(self.root, "data")
        self.socket = os.path.join(self.root, "run", "s.sock")
        os.makedirs(self.config_dir)
        for name, text in (files or {}).items():
            with open(os.path.join(self.config_dir, name), "w") as f:
                f.write(text)
        self.env = dict(os.environ)
        self.env.update(SPENDWALL_CONFIG_DIR=self.config_dir, SPENDWALL_DATA_DIR=self.data_dir,
                        SPENDWALL_SOCKET=self.socket, SPENDWALL_PROXY_ADDR="127.0.0.1:0",
                        SPENDWALL_LOG_LEVEL="info")
        self.env.update(env or {})
        self.log_path = os.path.join(self.root, "daemon.log")
        self.start()

    def start(self) -> None:
        """Starts the daemon (again, after `stop`, on the same directories)."""
        binary = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "daemon"], env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: {open(self.log_path).read()}")
            try:
                if self.call("GET", "/v1/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not answer /v1/health")
            time.sleep(0.05)
        self.address = self.call("GET", "/v1/health")[1].get("loopback")

    def call(self, method: str, path: str, body: Any = None) -> "tuple[int, Dict[str, Any]]":
        conn = _Unix(self.socket)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"content-type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def rows(self, expect: Optional[int] = None, timeout: float = 30.0) -> List[Dict[str, Any]]:
        """Ledger rows, oldest first; waits until there are at least `expect`."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.call("GET", "/v1/ledger?limit=1000")
            assert status == 200, body
            rows = list(reversed(body["rows"]))
            if expect is None or len(rows) >= expect or time.monotonic() > deadline:
                return rows
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Polls until `condition` holds; the timeout only guards against hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()
