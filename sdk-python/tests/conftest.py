"""Fixtures: the real spendwall daemon on a temp socket, and the shared fake provider."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from tests.fake_provider.process import Fake  # noqa: E402  (the shared fake, re-exported to the suites)

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

[[cap]]
name = "ask-first"
scope = { agent = "ask-first" }
window = "1d"
limit_usd = 0.000001
action = "approve"
"""

# a check held for approval is denied after this long when nobody decides
SETTINGS = """
[policy]
approval_timeout = "20s"
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

    def __init__(self, caps: str = CAPS, settings: str = SETTINGS) -> None:
        # short path: AF_UNIX paths are limited to 108 bytes
        self.root = tempfile.mkdtemp(prefix="swpy-")
        self.config_dir = os.path.join(self.root, "config")
        self.data_dir = os.path.join(self.root, "data")
        self.socket = os.path.join(self.root, "run", "spendwall.sock")
        os.makedirs(self.config_dir)
        with open(os.path.join(self.config_dir, "caps.toml"), "w") as f:
            f.write(caps)
        with open(os.path.join(self.config_dir, "spendwall.toml"), "w") as f:
            f.write(settings)
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.root, "daemon.log")

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        # the loopback listener (proxy, /metrics) on a free port: never the shared default 8787
        env.update(SPENDWALL_CONFIG_DIR=self.config_dir, SPENDWALL_DATA_DIR=self.data_dir,
                   SPENDWALL_SOCKET=self.socket, SPENDWALL_LOG_LEVEL="warning", SPENDWALL_PROXY_ADDR="127.0.0.1:0")
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


class FakeDaemon:
    """A stand-in daemon on a Unix socket: allows every check, takes every report, and serves
    GET /v1/events with `events` (a function of the connection number that writes to the
    socket), or 404 when it is None — a daemon from before the event stream."""

    def __init__(self, root: str, events: Optional[Callable[[int, socket.socket], None]] = None) -> None:
        self.path = os.path.join(root, "fake-daemon.sock")
        self.events = events
        self.requests: List[Tuple[str, str, Any]] = []
        self.event_connections = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    method, target = line.decode().split(" ")[:2]
                    length = 0
                    while True:
                        h = self.rfile.readline()
                        if h in (b"\r\n", b"\n", b""):
                            break
                        if h.lower().startswith(b"content-length:"):
                            length = int(h.split(b":")[1])
                    raw = self.rfile.read(length) if length else b""
                    body = json.loads(raw) if raw else None
                    outer.requests.append((method, target, body))
                    if target.startswith("/v1/events") and outer.events is not None:
                        outer.event_connections += 1
                        self.wfile.flush()
                        outer.events(outer.event_connections, self.connection)
                        return
                    status, answer = outer.answer(method, target.split("?")[0], body)
                    payload = json.dumps(answer).encode()
                    self.wfile.write(f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                                     f"content-length: {len(payload)}\r\n\r\n".encode() + payload)
                    self.wfile.flush()

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(self.path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, body: Any) -> Tuple[int, Dict[str, Any]]:
        if path == "/v1/check":
            return 200, {"decision": "allow", "reservation_id": "r_" + uuid.uuid4().hex, "reserved_nanousd": 1}
        if path == "/v1/report":
            return 200, {"request_id": body["reservation_id"], "cost_nanousd": 1, "duplicate": False}
        if path == "/v1/kill" and self.events is not None:
            return 200, {"on": [], "flips": []}
        return 404, {"error": {"code": "not_found", "message": f"no {path}"}}

    def reports(self) -> List[Dict[str, Any]]:
        return [b for m, p, b in self.requests if p == "/v1/report"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Polls `condition` until it holds; fails naming `what` if it has not after `timeout` (a
    guard against hanging, far above the few milliseconds the conditions normally take)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


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
def root(tmp_path: Any) -> Iterator[str]:
    # short: AF_UNIX paths are limited to 108 bytes
    d = tempfile.mkdtemp(prefix="swpk-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def agent() -> str:
    return "t-" + uuid.uuid4().hex[:12]
