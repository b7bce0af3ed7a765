"""32 threads and 32 asyncio tasks against a $0.05 cap never admit more than the cap."""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Dict, List

import openai

import spendwall
import spendwall.openai
from conftest import Daemon, Fake, wait_until

LIMIT_NANOUSD = 50_000_000  # caps.toml in conftest: limit_usd = 0.05
N = 32
# every call reserves max_tokens x gpt-4o's output price (~$0.01) plus its input: ~4 fit at once.
# Admitted calls are held at the fake provider (x-fake-gate) until every one of the 32 checks
# has been decided, so no reservation is settled while another check is still racing for the
# budget: what was admitted was all held at once, whatever the machine's speed.


def _headers(gate: str) -> Dict[str, str]:
    return {"x-fake-gate": gate, "x-fake-usage": "10,5,0,0,0"}


def _chat_calls(fake: Fake) -> int:
    return len([r for r in fake.requests() if r["path"].endswith("/chat/completions")])


def _check_ledger(daemon: Daemon, fake: Fake, agent: str, admitted: int, blocked: int) -> None:
    print(f"{agent}: admitted {admitted}, blocked {blocked}")
    assert admitted + blocked == N
    assert 1 <= admitted < N and blocked >= 1
    rows = daemon.rows(agent, N)
    ok = [r for r in rows if r["outcome"] == "ok"]
    assert len(ok) == admitted
    assert len([r for r in rows if r["outcome"] == "blocked"]) == blocked
    # what was admitted was held at once (worst cases reserved together): within the cap
    assert sum(r["reserved_nanousd"] for r in ok) <= LIMIT_NANOUSD
    assert sum(r["cost_nanousd"] for r in rows) <= LIMIT_NANOUSD
    assert all(r["input_tokens"] == 10 and r["output_tokens"] == 5 for r in ok)
    # blocked calls never reached the provider
    assert _chat_calls(fake) == admitted


def test_32_threads_never_exceed_cap(use_daemon: Daemon, fake: Fake) -> None:
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent="conc-threads")
    gate = "threads-" + uuid.uuid4().hex[:8]
    barrier = threading.Barrier(N)
    results: List[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                           max_tokens=1000, extra_headers=_headers(gate))
            r = "ok"
        except spendwall.BudgetExceeded:
            r = "blocked"
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(N)]
    for t in threads:
        t.start()
    try:
        # every check decided: each blocked call has returned, each admitted one reached the fake
        wait_until(lambda: results.count("blocked") + _chat_calls(fake) == N, "all 32 checks to be decided")
        assert "ok" not in results  # nothing admitted has finished (nor settled) yet
    finally:
        fake.release(gate)
    for t in threads:
        t.join(60)
    _check_ledger(use_daemon, fake, "conc-threads", results.count("ok"), results.count("blocked"))


def test_32_tasks_never_exceed_cap(use_daemon: Daemon, fake: Fake) -> None:
    gate = "tasks-" + uuid.uuid4().hex[:8]

    async def main() -> List[str]:
        client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                       agent="conc-tasks")

        async def one() -> str:
            try:
                await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                                     max_tokens=1000, extra_headers=_headers(gate))
                return "ok"
            except spendwall.BudgetExceeded:
                return "blocked"

        tasks = [asyncio.ensure_future(one()) for _ in range(N)]
        try:
            # the fake is asked from a thread: a blocking call here would stall the tasks' loop
            deadline = time.monotonic() + 30  # a guard against hanging only
            while sum(1 for t in tasks if t.done()) + await asyncio.to_thread(_chat_calls, fake) < N:
                assert time.monotonic() < deadline, "timed out waiting for all 32 checks to be decided"
                await asyncio.sleep(0.01)
            assert all(t.result() == "blocked" for t in tasks if t.done())
        finally:
            await asyncio.to_thread(fake.release, gate)
        out = await asyncio.gather(*tasks)
        await client.close()
        return list(out)

    results = asyncio.run(main())
    _check_ledger(use_daemon, fake, "conc-tasks", results.count("ok"), results.count("blocked"))
