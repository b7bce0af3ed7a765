"""Crash: `kill -9` the daemon under sustained load from the Python SDK (threads, the real
`openai` package), from raw socket-API clients and through the proxy; restart it. Every report
the daemon acknowledged is in the ledger, the SDK's spool replays the rest, no call is
recorded twice, and the caps' windows equal a recount from the ledger file."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Dict, Iterator, List

import openai
import pytest

import spendwall
import spendwall.openai
from rel import (MSG, Daemon, Fake, Load, Socket, assert_windows_match_ledger, drain_spool, fake_requests_with,
                 kill9, ledger_rows, use_sdk, wait_for)

CAPS = """
[[cap]]
name = "all"
scope = { global = true }
window = "1d"
limit_usd = 100000
action = "block"

[[cap]]
name = "sdk-agent"
scope = { agent = "rel-sdk" }
window = "1d"
limit_usd = 100000
action = "block"

[[cap]]
name = "raw-agent"
scope = { agent = "rel-raw" }
window = "1d"
limit_usd = 100000
action = "block"

[[cap]]
name = "proxy-agent"
scope = { agent = "rel-proxy" }
window = "1d"
limit_usd = 100000
action = "block"

[[cap]]
name = "acme"
scope = { tag = { customer = "acme" } }
window = "1d"
limit_usd = 100000
action = "block"
"""

SDK_THREADS, RAW_THREADS, PROXY_THREADS = 4, 3, 3


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


def test_kill9_under_load_loses_no_acknowledged_report(fake: Fake, tmp_path: Any) -> None:
    daemon = Daemon(files={"caps.toml": CAPS},
                    env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    try:
        use_sdk(daemon, str(tmp_path / "sdk"))
        sdk = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                    agent="rel-sdk", tags={"customer": "acme"})
        lock = threading.Lock()
        sdk_done: List[int] = []
        acked: Dict[str, int] = {}  # reservation id → cost the daemon acknowledged
        proxy_done: List[int] = []
        proxy_base: List[str] = [f"http://{daemon.address}/agent/rel-proxy/v1"]

        def sdk_call(i: int) -> None:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=50,
                                        extra_headers={"x-rel-path": "sdk", "x-fake-usage": "20,9,0,0,0"})
            with lock:
                sdk_done.append(i)

        sockets = [Socket(daemon.socket, timeout=5) for _ in range(RAW_THREADS)]

        def raw_call(i: int) -> None:
            s = sockets[i - SDK_THREADS]
            status, answer = s.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o-mini",
                                                          "agent": "rel-raw", "tags": {"customer": "acme"},
                                                          "request": {"max_tokens": 50, "messages": MSG}})
            if status != 200 or answer.get("decision") != "allow":
                return
            rid = answer["reservation_id"]
            status, settled = s.call("POST", "/v1/report", {"reservation_id": rid, "status": 200, "outcome": "ok",
                                                             "usage": {"input_tokens": 30, "output_tokens": 11}})
            if status == 200:  # acknowledged: the daemon says the row is committed
                with lock:
                    acked[rid] = settled["cost_nanousd"]

        def proxy_call(i: int) -> None:
            client = openai.OpenAI(api_key="sk-fake", base_url=proxy_base[0], max_retries=0, timeout=10)
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG, max_tokens=50,
                                               extra_headers={"x-rel-path": "proxy", "x-fake-usage": "40,13,0,0,0"})
                with lock:
                    proxy_done.append(i)
            finally:
                client.close()

        load = Load()
        load.spawn(SDK_THREADS, sdk_call)
        load.spawn(RAW_THREADS, raw_call)
        load.spawn(PROXY_THREADS, proxy_call)
        wait_for(lambda: len(sdk_done) >= 60 and len(acked) >= 60 and len(proxy_done) >= 30, "load before the crash")

        kill9(daemon)
        before = len(sdk_done)
        # fail-open: the SDK's calls keep completing while the daemon is dead
        wait_for(lambda: len(sdk_done) >= before + 40, "SDK calls while the daemon is down")
        daemon.start()  # same config, data dir and socket; a new proxy port
        proxy_base[0] = f"http://{daemon.address}/agent/rel-proxy/v1"
        acked_at_restart = len(acked)
        wait_for(lambda: len(acked) >= acked_at_restart + 30 and len(sdk_done) >= before + 80, "load after restart")
        load.finish()
        proxy_completed = len(proxy_done)
        drain_spool(daemon)

        rows = ledger_rows(daemon)
        ids = [r["request_id"] for r in rows]
        assert len(ids) == len(set(ids)), "a request id is recorded twice"
        by_id = {r["request_id"]: r for r in rows}

        # 1. every report the daemon acknowledged is in the ledger, at the acknowledged cost
        missing = [rid for rid in acked if rid not in by_id]
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged reports are not in the ledger"
        assert all(by_id[rid]["cost_nanousd"] == cost for rid, cost in acked.items())

        # 2. every SDK call that completed is recorded exactly once, live or replayed from the spool
        #    (the 40+ calls made while the daemon was dead can only have come from the spool)
        sdk_rows = [r for r in rows if r["agent"] == "rel-sdk"]
        assert len(fake_requests_with(fake, "x-rel-path", "sdk")) == len(sdk_done)
        assert len(sdk_rows) == len(sdk_done), f"{len(sdk_rows)} SDK rows for {len(sdk_done)} calls"
        assert Counter(r["outcome"] for r in sdk_rows) == {"ok": len(sdk_done)}
        assert all((r["input_tokens"], r["output_tokens"]) == (20, 9) for r in sdk_rows)

        # 3. the proxy: no phantom or doubled rows; a kill -9 can only lose the rows of calls whose
        #    answer was being sent at that moment (the proxy commits its row after the answer),
        #    at most one per proxy thread
        proxy_rows = [r for r in rows if r["agent"] == "rel-proxy"]
        reached = len(fake_requests_with(fake, "x-rel-path", "proxy"))
        assert len(proxy_rows) <= reached
        assert proxy_completed - PROXY_THREADS <= len([r for r in proxy_rows if r["outcome"] == "ok"])

        # 4. the windows rebuilt at restart plus what followed equal a recount from the ledger file
        sums = assert_windows_match_ledger(daemon, {
            "all": lambda r: True,
            "sdk-agent": lambda r: r["agent"] == "rel-sdk",
            "raw-agent": lambda r: r["agent"] == "rel-raw",
            "proxy-agent": lambda r: r["agent"] == "rel-proxy",
            "acme": lambda r: r["tags"].get("customer") == "acme",
        })
        assert sums["all"] > 0 and sums["acme"] > 0
    finally:
        spendwall.flush(timeout=10)
        daemon.cleanup()
