"""Concurrency: 256 concurrent callers (threads), half through the Python SDK and half through
the proxy, against caps on the global, agent, app and tag scopes. With every admitted call held
in flight at the provider, the admitted worst-case reservations never exceed any cap; after a
seeded randomized run, every window equals a recount from the ledger file."""
from __future__ import annotations

import random
import threading
from typing import Any, Callable, Dict, Iterator, List

import openai
import pytest

import spendwall
import spendwall.openai
from rel import MSG, Daemon, Fake, assert_windows_match_ledger, fake_requests_with, ledger_rows, snapshot_keys, \
    use_sdk, wait_for

CALLERS = 256
SEED = 20261203
NANO = 1_000_000_000

CAPS = """
[[cap]]
name = "global"
scope = { global = true }
window = "1d"
limit_usd = 0.30
action = "block"

[[cap]]
name = "agent-a1"
scope = { agent = "rel-a1" }
window = "1d"
limit_usd = 0.05
action = "block"

[[cap]]
name = "app-python"
scope = { app = "python" }
window = "1d"
limit_usd = 0.25
action = "block"

[[cap]]
name = "tag-acme"
scope = { tag = { customer = "acme" } }
window = "1d"
limit_usd = 0.08
action = "block"
"""

LIMITS = {"global": 0.30, "agent-a1": 0.05, "app-python": 0.25, "tag-acme": 0.08}
COVERS: Dict[str, Callable[[Dict[str, Any]], bool]] = {
    "global": lambda r: True,
    "agent-a1": lambda r: r["agent"] == "rel-a1",
    "app-python": lambda r: r["app"] == "python",
    "tag-acme": lambda r: r["tags"].get("customer") == "acme",
}


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


def test_256_callers_never_pass_a_cap(fake: Fake, tmp_path: Any) -> None:
    daemon = Daemon(files={"caps.toml": CAPS},
                    env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    try:
        use_sdk(daemon, str(tmp_path / "sdk"))
        sdk = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0,
                                                  timeout=120))
        proxy = openai.OpenAI(api_key="sk-fake", base_url=f"http://{daemon.address}/v1", max_retries=0, timeout=120)
        lock = threading.Lock()
        results: List[str] = []

        def call(i: int, rng: random.Random, gate: str) -> None:
            agent = "rel-a1" if rng.random() < 0.5 else "rel-a2"
            customer = "acme" if rng.random() < 0.4 else "beta"
            max_tokens = rng.choice([100, 200, 400])
            usage = f"{rng.randint(1, 50)},{rng.randint(1, max_tokens)},0,0,0"
            headers = {"x-rel-conc": "1", "x-fake-usage": usage}
            if gate:
                headers["x-fake-gate"] = gate
            try:
                if i % 2 == 0:
                    sdk.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=max_tokens,
                                                extra_headers=headers,
                                                spendwall={"agent": agent, "tags": {"customer": customer}})
                else:
                    headers.update({"x-spendwall-agent": agent, "x-spendwall-tags": f"customer={customer}"})
                    proxy.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=max_tokens,
                                                  extra_headers=headers)
                result = "ok"
            except spendwall.BudgetExceeded:
                result = "blocked"
            except openai.APIStatusError as e:
                result = "blocked" if e.status_code == 402 else f"error {e.status_code}"
            except Exception as e:  # noqa: BLE001 (recorded and asserted on)
                result = f"error {e!r}"
            with lock:
                results.append(result)

        def run_round(gate: str, seed: int, calls_each: int) -> List[threading.Thread]:
            threads = []
            for i in range(CALLERS):
                rng = random.Random(seed * 1000 + i)
                t = threading.Thread(target=lambda i=i, rng=rng: [call(i, rng, gate) for _ in range(calls_each)],
                                     daemon=True)
                threads.append(t)
            for t in threads:
                t.start()
            return threads

        # Round 1: every admitted call is held at the provider, so nothing settles: the caps must
        # have refused everything beyond their limits while all 256 were deciding at once.
        threads = run_round("conc", SEED, 1)
        wait_for(lambda: results.count("blocked") + len(fake_requests_with(fake, "x-rel-conc", "1")) == CALLERS,
                 "every caller to be admitted (held at the provider) or refused", timeout=120)
        held = len(fake_requests_with(fake, "x-rel-conc", "1"))
        keys = snapshot_keys(daemon)
        for (name, key), k in keys.items():
            assert k["spent_nanousd"] + k["reserved_nanousd"] <= k["limit_nanousd"], (name, key, k)
        fake.release("conc")
        for t in threads:
            t.join(120)
        assert not [r for r in results if r.startswith("error")], results
        assert results.count("ok") == held and results.count("blocked") == CALLERS - held
        assert held > 0 and CALLERS - held > 0, f"the caps did not bind: {held} admitted of {CALLERS}"
        assert spendwall.flush(timeout=60)
        wait_for(lambda: sum(r["outcome"] == "ok" for r in ledger_rows(daemon)) == held, "the admitted calls' rows")
        rows = ledger_rows(daemon)
        for name, covers in COVERS.items():
            admitted = sum(r["reserved_nanousd"] for r in rows if r["outcome"] == "ok" and covers(r))
            assert admitted <= round(LIMITS[name] * NANO), f"cap {name}: admitted {admitted} reserved"
        assert sum(r["outcome"] == "blocked" for r in rows) == CALLERS - held

        # Round 2: a seeded randomized run, nothing held: reports settle below the reservations,
        # freeing room for more calls, while all 256 keep calling.
        results.clear()
        for t in run_round("", SEED + 1, 4):
            t.join(180)
        assert not [r for r in results if r.startswith("error")], results[:5]
        assert spendwall.flush(timeout=60)
        total_ok = held + results.count("ok")
        wait_for(lambda: sum(r["outcome"] == "ok" for r in ledger_rows(daemon)) == total_ok, "every row")
        sums = assert_windows_match_ledger(daemon, COVERS)
        for name, spent in sums.items():
            assert spent <= round(LIMITS[name] * NANO), f"cap {name} spent {spent}"
        rows = ledger_rows(daemon)
        assert len({r["request_id"] for r in rows}) == len(rows)
        assert len(fake_requests_with(fake, "x-rel-conc", "1")) == total_ok
        proxy.close()
    finally:
        spendwall.flush(timeout=10)
        daemon.cleanup()
