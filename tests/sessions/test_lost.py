"""A `spendwall run` killed outright (SIGKILL) cannot end its session: the daemon notices its
process is gone and ends the session as `lost`, removing its budget cap."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any, Dict, Iterator

import pytest
from conftest import REPO, Daemon, wait_until

BINARY = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon()
    yield d
    d.cleanup()


def sessions(daemon: Daemon) -> Dict[str, Any]:
    status, body = daemon.call("GET", "/v1/sessions")
    assert status == 200, body
    return {s["id"]: s for s in body["sessions"]}


def test_a_session_whose_run_was_killed_outright_ends_as_lost(daemon: Daemon) -> None:
    before = set(sessions(daemon))
    # stdin not a terminal: pipes; the program outlives nothing (it exits after a few seconds).
    run = subprocess.Popen([BINARY, "run", "--budget-usd", "1", "--", "sleep", "5"], env=daemon.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: set(sessions(daemon)) - before, "the session to be registered")
        [sid] = set(sessions(daemon)) - before
        assert sessions(daemon)[sid]["status"] == "running"
        caps = daemon.call("GET", "/v1/policy/snapshot")[1]["caps"]
        assert any(c["name"] == f"session:{sid}" for c in caps)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        wait_until(lambda: sessions(daemon)[sid]["status"] == "ended", "the lost session to be ended")
        ended = sessions(daemon)[sid]
        assert ended["stop_reason"] == "lost" and "exit_code" not in ended
        caps = daemon.call("GET", "/v1/policy/snapshot")[1]["caps"]
        assert not any(c["name"] == f"session:{sid}" for c in caps)
    finally:
        if run.poll() is None:
            run.kill()
