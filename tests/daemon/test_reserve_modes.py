"""`reserve = "expected"` through the real daemon: it learns from reports, reserves the learned
p99 instead of max_tokens, and relearns from the ledger after a restart."""
from __future__ import annotations

from tests.conftest import Daemon

CAPS = """
[[cap]]
name = "coder"
scope = { agent = "coder" }
window = "1d"
limit_usd = 100
reserve = "expected"
"""
# gpt-4o: $2.50 in / $10 out per MTok. No request body: input 0, max_tokens = default 4096.
WORST = 4096 * 10_000


def reserved(daemon: Daemon) -> int:
    status, snapshot = daemon.call("GET", "/v1/policy/snapshot")
    assert status == 200, snapshot
    cap = snapshot["caps"][0]
    assert cap["reserve"] == "expected" and cap["reserve_percentile"] == 0.99
    return sum(k["reserved_nanousd"] for k in cap["keys"])


def check(daemon: Daemon) -> str:
    status, answer = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o", "agent": "coder"})
    assert status == 200 and answer["decision"] == "allow", answer
    return answer["reservation_id"]


def report(daemon: Daemon, reservation: str, output: int) -> None:
    status, body = daemon.call("POST", "/v1/report", {"reservation_id": reservation, "outcome": "ok",
                                                      "usage": {"output_tokens": output}})
    assert status == 200, body


def test_expected_reservations_learn_and_survive_a_restart() -> None:
    daemon = Daemon(files={"caps.toml": CAPS})
    try:
        first = check(daemon)
        assert reserved(daemon) == WORST  # nothing learned yet: the worst case
        report(daemon, first, 300)
        for output in range(100, 119):  # 20 reports in all: enough to trust the history
            report(daemon, check(daemon), output)
        held = check(daemon)
        assert reserved(daemon) == 300 * 10_000  # p99 of 100..118 and 300 is 300
        report(daemon, held, 100)
        daemon.rows(expect=21)
        daemon.stop()
        daemon.start()
        check(daemon)
        assert reserved(daemon) == 300 * 10_000  # relearned from the ledger
    finally:
        daemon.cleanup()
