"""Helpers of the reliability suite: a raw socket-API client that records what the daemon
acknowledged, the Python SDK pointed at a test daemon, and recounts straight from the ledger
file (SQLite, read-only) to compare with the policy engine's in-memory windows."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from conftest import Daemon, Fake  # noqa: E402

import spendwall  # noqa: E402
import spendwall._config as sdk_config  # noqa: E402

MSG = [{"role": "user", "content": "hello"}]


class Socket:
    """One keep-alive connection to the daemon's Unix socket, reconnected after any error."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout
        self.conn: Optional[http.client.HTTPConnection] = None

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection("localhost", timeout=self.timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        conn.sock = sock
        return conn

    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None) -> Tuple[int, Any]:
        """(status, parsed JSON body); raises OSError / http.client errors when the daemon is gone."""
        try:
            if self.conn is None:
                self.conn = self._connect()
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            self.conn.request(method, path, body=data, headers={"content-type": "application/json"})
            response = self.conn.getresponse()
            payload = response.read()
            if response.getheader("connection", "").lower() == "close":
                self.close()
            return response.status, json.loads(payload or b"{}")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def kill9(daemon: Daemon) -> None:
    """SIGKILL: no graceful stop, nothing flushed, open reservations not saved."""
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=30)
    daemon.log.close()


def use_sdk(daemon: Daemon, data_dir: str, **options: Any) -> None:
    """Points the process's SDK at `daemon` (its socket and its spendwall.toml), spooling to data_dir."""
    sdk_config.reset()
    spendwall.configure(socket_path=daemon.socket, config_dir=daemon.config_dir, data_dir=data_dir,
                        connect_timeout=0.5, timeout=15.0, **options)


def drain_spool(daemon: Daemon, timeout: float = 60.0) -> None:
    """Flushes the SDK's queue and replays its spool until nothing is pending."""
    assert spendwall.flush(timeout=timeout), "the SDK could not flush its report queue"
    deadline = time.monotonic() + timeout
    while True:
        counts = spendwall.replay_spool()
        if counts.get("pending", 0) == 0:
            return
        assert time.monotonic() < deadline, f"the spool did not drain: {counts}"
        time.sleep(0.05)


def ledger_rows(daemon: Daemon) -> List[Dict[str, Any]]:
    """Every spend_events row, read from the ledger file itself (the daemon keeps running)."""
    path = os.path.join(daemon.data_dir, "spendwall.db")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in db.execute("SELECT * FROM spend_events ORDER BY id")]
    finally:
        db.close()
    for r in rows:
        r["tags"] = json.loads(r["tags"] or "{}")
    return rows


def snapshot_keys(daemon: Daemon) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """The policy engine's in-memory windows: (cap name, scope key) → cap object."""
    status, body = daemon.call("GET", "/v1/policy/snapshot")
    assert status == 200, body
    return {(k["name"], k["key"]): k for cap in body["caps"] for k in cap["keys"]}


def assert_windows_match_ledger(daemon: Daemon, caps: Dict[str, Callable[[Dict[str, Any]], bool]]) -> Dict[str, int]:
    """For each cap (name → which ledger rows it covers), the window's spent equals the sum of
    the covered rows' cost in the ledger file, and nothing is left reserved. Returns the sums."""
    rows = ledger_rows(daemon)
    keys = snapshot_keys(daemon)
    sums = {}
    for name, covers in caps.items():
        matching = [k for (n, _), k in keys.items() if n == name]
        assert matching, f"cap {name} is not in the snapshot: {sorted(keys)}"
        spent = sum(k["spent_nanousd"] for k in matching)
        recount = sum(r["cost_nanousd"] for r in rows if covers(r))
        assert spent == recount, f"cap {name}: window spent {spent} != ledger recount {recount}"
        assert all(k["reserved_nanousd"] == 0 for k in matching), f"cap {name} still holds reservations: {matching}"
        sums[name] = recount
    return sums


def fake_requests_with(fake: Fake, header: str, value: str) -> List[Dict[str, Any]]:
    out = []
    for r in fake.requests():
        headers = {k.lower(): v for k, v in (r.get("headers") or {}).items()}
        if headers.get(header) == value:
            out.append(r)
    return out


class Load:
    """Threads that each run `step(i)` in a loop until stopped; counts completions."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: List[threading.Thread] = []
        self.errors: List[BaseException] = []
        self.lock = threading.Lock()

    def spawn(self, count: int, step: Callable[[int], None], pause: float = 0.0) -> None:
        def run(i: int) -> None:
            while not self.stop.is_set():
                try:
                    step(i)
                except BaseException as e:  # recorded: the test decides what is acceptable
                    with self.lock:
                        self.errors.append(e)
                if pause:
                    self.stop.wait(pause)

        for _ in range(count):
            t = threading.Thread(target=run, args=(len(self.threads),), daemon=True)
            self.threads.append(t)
            t.start()

    def finish(self, timeout: float = 60.0) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self.threads), "a load thread hung"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def grep_bytes(paths: List[str], secrets: List[str]) -> List[str]:
    """Which (path, secret) pairs occur in the raw bytes of the files that exist."""
    found = []
    for p in paths:
        if not os.path.exists(p):
            continue
        data = open(p, "rb").read()
        for s in secrets:
            if s.encode() in data:
                found.append(f"{s!r} in {p}")
    return found


def run_as(user: str, code: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", code], capture_output=True, text=True,
                          timeout=timeout)
