"""Fixtures: the real spendwall daemon on a temp socket, and the shared fake provider."""
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
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
FAKE_SERVER = REPO / "tests" / "fake_provider" / "server.py"

CAPS = """
[[cap]]
name = "tiny"
scope = { agent = "capped-tiny" }
window = "1d"
limit_usd = 0.000001
action = "block"

[[cap]]
name = "conc-threads"
scope = { agent = "conc-threads" }
window = "1d"
limit_usd = 0.05
action = "block"

[[cap]]
name = "conc-tasks"
scope = { agent = "conc-tasks" }
window = "1d"
limit_usd = 0.05
action = "block"

[[cap]]
name = "helper-cap"
scope = { agent = "helper-agent" }
window = "1d"
limit_usd = 2.0
action = "block"
"""


def daemon_binary() -> Path:
    env = os.environ.get("SPENDWALL_BIN")
    path = Path(env) if env else REPO / ".build" / "debug" / "spendwall"
    if not path.exists():
        pytest.fail(f"spendwall binary not found at {path}: run `swift build` or set SPENDWALL_BIN", pytrace=False)
    return path


class _UnixConn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self._path)


class Daemon:
    """A real `spendwall daemon` with its own config, data dir and socket."""

    def __init__(self, caps: str = CAPS) -> None:
        # short path: AF_UNIX paths are limited to 108 bytes
        self.root = tempfile.mkdtemp(prefix="swpy-")
        self.config_dir = os.path.join(self.root, "config")
        self.data_dir = os.path.join(self.root, "data")
        self.socket = os.path.join(self.root, "run", "spendwall.sock")
        os.makedirs(self.config_dir)
        with open(os.path.join(self.config_dir, "caps.toml"), "w") as f:
            f.write(caps)
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.root, "daemon.log")

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(SPENDWALL_CONFIG_DIR=self.config_dir, SPENDWALL_DATA_DIR=self.data_dir,
                   SPENDWALL_SOCKET=self.socket, SPENDWALL_LOG_LEVEL="warning")
        return env

    def start(self) -> "Daemon":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(daemon_binary()), "daemon"], env=self.env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}: {open(self.log_path).read()}")
            try:
                if self.request("GET", "/v1/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("daemon did not answer /v1/health within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        conn = _UnixConn(self.socket)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def ledger(self, limit: int = 1000) -> List[Dict[str, Any]]:
        status, body = self.request("GET", f"/v1/ledger?limit={limit}")
        assert status == 200, body
        return body["rows"]

    def rows(self, agent: str, expect: Optional[int] = None, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Ledger rows of one agent, oldest first; waits up to `timeout` for `expect` rows."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [r for r in self.ledger() if r.get("agent") == agent]
            if expect is None or len(rows) >= expect or time.monotonic() > deadline:
                return list(reversed(rows))
            time.sleep(0.05)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Fake:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FAKE_SERVER), "--port", "0"], stdout=subprocess.PIPE,
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
        self._req("POST", "/_fake/reset")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def expected(usage: str, provider: str) -> Dict[str, int]:
    """The ledger usage for an x-fake-usage header (input, output, cache_read, cache_write, reasoning)."""
    i, o, cr, cw, r = (int(x) for x in usage.split(","))
    if provider == "openai":
        cw = 0  # OpenAI reports no cache writes
    return {"input_tokens": i, "output_tokens": o, "cache_read_tokens": cr, "cache_write_tokens": cw,
            "reasoning_tokens": r if provider == "openai" else 0}


def usage_of(row: Dict[str, Any]) -> Dict[str, int]:
    return {k: row.get(k, 0) for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                       "reasoning_tokens")}


@pytest.fixture(scope="session")
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    d = Daemon().start()
    yield d
    d.cleanup()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test touches the real home: every SPENDWALL_* variable points into a temp dir."""
    import spendwall._config as cfg
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPENDWALL_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SPENDWALL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPENDWALL_SOCKET", str(tmp_path / "no-daemon.sock"))
    monkeypatch.delenv("SPENDWALL_STRICT", raising=False)
    cfg.reset()
    yield
    cfg.reset()


@pytest.fixture
def use_daemon(daemon: Daemon, monkeypatch: pytest.MonkeyPatch, fake: Fake) -> Daemon:
    import spendwall._config as cfg
    monkeypatch.setenv("SPENDWALL_SOCKET", daemon.socket)
    cfg.reset()
    fake.reset()
    return daemon


@pytest.fixture
def agent() -> str:
    return "t-" + uuid.uuid4().hex[:12]
