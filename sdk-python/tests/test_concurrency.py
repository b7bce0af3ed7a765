"""32 threads and 32 asyncio tasks against a $0.05 cap never admit more than the cap."""
from __future__ import annotations

import asyncio
import threading
from typing import List

import openai

import spendwall
import spendwall.openai
from conftest import Daemon, Fake

LIMIT_NANOUSD = 50_000_000  # caps.toml in conftest: limit_usd = 0.05
N = 32
# every call reserves max_tokens x gpt-4o's output price (~$0.01) plus its input: ~4 fit at once;
# the fake holds each admitted call 600 ms, so all 32 checks race for the same budget
HEADERS = {"x-fake-delay-ms": "600", "x-fake-usage": "10,5,0,0,0"}


def _check_ledger(daemon: Daemon, fake: Fake, agent: str, admitted: int, blocked: int) -> None:
    print(f"{agent}: admitted {admitted}, blocked {blocked}")
    assert admitted + blocked == N
    assert 1 <= admitted < N and blocked >= 1
    rows = daemon.rows(agent, N)
    ok = [r for r in rows if r["outcome"] == "ok"]
    assert len(ok) == admitted
    assert len([r for r in rows if r["outcome"] == "blocked"]) == blocked
    # what was admitted at once (worst cases held together) stayed within the cap
    assert sum(r["reserved_nanousd"] for r in ok) <= LIMIT_NANOUSD
    assert sum(r["cost_nanousd"] for r in rows) <= LIMIT_NANOUSD
    assert all(r["input_tokens"] == 10 and r["output_tokens"] == 5 for r in ok)
    # blocked calls never reached the provider
    assert len([r for r in fake.requests() if r["path"].endswith("/chat/completions")]) == admitted


def test_32_threads_never_exceed_cap(use_daemon: Daemon, fake: Fake) -> None:
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent="conc-threads")
    barrier = threading.Barrier(N)
    results: List[str] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                           max_tokens=1000, extra_headers=HEADERS)
            r = "ok"
        except spendwall.BudgetExceeded:
            r = "blocked"
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    _check_ledger(use_daemon, fake, "conc-threads", results.count("ok"), results.count("blocked"))


def test_32_tasks_never_exceed_cap(use_daemon: Daemon, fake: Fake) -> None:
    async def main() -> List[str]:
        client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                       agent="conc-tasks")

        async def one() -> str:
            try:
                await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                                     max_tokens=1000, extra_headers=HEADERS)
                return "ok"
            except spendwall.BudgetExceeded:
                return "blocked"

        out = await asyncio.gather(*(one() for _ in range(N)))
        await client.close()
        return list(out)

    results = asyncio.run(main())
    _check_ledger(use_daemon, fake, "conc-tasks", results.count("ok"), results.count("blocked"))
