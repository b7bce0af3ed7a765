"""Outage: the daemon stopped for a while (SPENDWALL_OUTAGE_SECONDS, default 30) under SDK load.
Fail-open: every call completes and every one is in the ledger after the restart (the spool
replays what the daemon missed). Fail-closed: no call reaches the provider while it is down."""
from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any, Iterator, List

import openai
import pytest

import spendwall
import spendwall.openai
from rel import (MSG, Daemon, Fake, Load, assert_windows_match_ledger, drain_spool, fake_requests_with, ledger_rows,
                 use_sdk, wait_for)

OUTAGE_SECONDS = float(os.environ.get("SPENDWALL_OUTAGE_SECONDS", "30"))
THREADS = 4

CAPS = """
[[cap]]
name = "outage-agent"
scope = { agent = "rel-outage" }
window = "1d"
limit_usd = 100000
action = "block"
"""


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


def client(fake: Fake) -> Any:
    return spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                 agent="rel-outage")


def test_fail_open_outage_loses_nothing(fake: Fake, tmp_path: Any) -> None:
    daemon = Daemon(files={"caps.toml": CAPS})
    try:
        use_sdk(daemon, str(tmp_path / "sdk"))
        sdk = client(fake)
        lock = threading.Lock()
        done: List[bool] = []  # one entry per completed call: was the daemon down when it finished?
        down = threading.Event()

        def call(i: int) -> None:
            sdk.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=20,
                                        extra_headers={"x-rel-path": "sdk", "x-fake-usage": "15,5,0,0,0"})
            with lock:
                done.append(down.is_set())

        load = Load()
        load.spawn(THREADS, call, pause=0.05)  # a steady agent, not a flood: ~80 calls a second
        wait_for(lambda: len(done) >= 40, "calls before the outage")
        daemon.stop()
        down.set()
        end = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < end:  # the outage itself: a span of time, not a wait for a condition
            time.sleep(0.2)
        during = sum(done)
        daemon.start()
        down.clear()
        after = len(done)
        wait_for(lambda: len(done) >= after + 40, "calls after the restart")
        load.finish()
        assert not load.errors, f"fail-open calls raised: {load.errors[:3]}"
        assert during >= THREADS, "no call completed while the daemon was down"
        drain_spool(daemon)

        rows = [r for r in ledger_rows(daemon) if r["agent"] == "rel-outage"]
        assert len(fake_requests_with(fake, "x-rel-path", "sdk")) == len(done)
        assert len(rows) == len(done), f"{len(rows)} rows for {len(done)} calls ({during} during the outage)"
        assert len({r["request_id"] for r in rows}) == len(rows)
        assert Counter(r["outcome"] for r in rows) == {"ok": len(done)}
        assert_windows_match_ledger(daemon, {"outage-agent": lambda r: r["agent"] == "rel-outage"})
    finally:
        spendwall.flush(timeout=10)
        daemon.cleanup()


@pytest.mark.parametrize("how", ["fail_mode", "strict"])
def test_fail_closed_outage_sends_nothing_upstream(fake: Fake, tmp_path: Any, how: str) -> None:
    files = {"caps.toml": CAPS}
    if how == "fail_mode":
        files["spendwall.toml"] = '[policy]\nfail_mode = "closed"\n'
    daemon = Daemon(files=files)
    try:
        use_sdk(daemon, str(tmp_path / "sdk"), strict=(how == "strict") or None)
        sdk = client(fake)
        lock = threading.Lock()
        outcomes: List[str] = []
        down = threading.Event()

        def call(i: int) -> None:
            was_down = down.is_set()
            try:
                sdk.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=20,
                                            extra_headers={"x-rel-path": "sdk"})
                result = "ok"
            except spendwall.DaemonUnavailable:
                result = "unavailable"
            with lock:
                outcomes.append(("down-" if was_down and down.is_set() else "") + result)

        load = Load()
        load.spawn(THREADS, call, pause=0.02)
        wait_for(lambda: outcomes.count("ok") >= 20, "calls before the outage")
        daemon.stop()
        down.set()
        wait_for(lambda: outcomes.count("down-unavailable") >= 40, "refused calls during the outage")
        reached_during = len(fake_requests_with(fake, "x-rel-path", "sdk"))
        refused = outcomes.count("down-unavailable")
        # a few more refusals, then compare again: nothing reached the provider meanwhile
        wait_for(lambda: outcomes.count("down-unavailable") >= refused + 40, "more refused calls")
        assert len(fake_requests_with(fake, "x-rel-path", "sdk")) == reached_during
        assert outcomes.count("down-ok") == 0, "a call went upstream while the daemon was down"
        daemon.start()
        down.clear()
        oks = outcomes.count("ok")
        wait_for(lambda: outcomes.count("ok") >= oks + 20, "calls after the restart")
        load.finish()
        assert not load.errors, f"unexpected errors: {load.errors[:3]}"
        assert spendwall.flush(timeout=30)
        # every call that reached the provider was checked and is in the ledger; the spool is empty
        rows = [r for r in ledger_rows(daemon) if r["agent"] == "rel-outage"]
        assert len(rows) == len(fake_requests_with(fake, "x-rel-path", "sdk")) == outcomes.count("ok") \
            + outcomes.count("down-ok")
        assert spendwall.replay_spool() == {"recorded": 0, "duplicate": 0, "rejected": 0, "pending": 0}
    finally:
        spendwall.flush(timeout=10)
        daemon.cleanup()
