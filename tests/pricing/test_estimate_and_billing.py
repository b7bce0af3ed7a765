"""`spendwall estimate`, `/v1/estimate`, `spendwall pricing`, and the richer billing rules
(1-hour cache writes, long-context tiers, batch share) end to end against the real daemon."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Iterator

import pytest

from tests.conftest import Daemon

BINARY = os.environ.get("SPENDWALL_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", ".build", "debug",
                                                          "spendwall")
PRICING = """
[models."house-model"]
input = 2
output = 8
long_context = { above_tokens = 1000, input = 4, output = 16 }
batch_percent = 40
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon(files={"pricing.toml": PRICING})
    yield d
    d.cleanup()


def cli(daemon: Daemon, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, *args], input=stdin, env=daemon.env, capture_output=True, text=True, timeout=30)


def test_estimate_reads_the_model_from_the_request(daemon: Daemon) -> None:
    request = {"model": "gpt-4o-2024-08-06", "max_tokens": 100,
               "messages": [{"role": "user", "content": "a" * 400}]}
    done = cli(daemon, "estimate", "--json", stdin=json.dumps(request))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model"] == "gpt-4o-2024-08-06" and answer["price_entry"] == "gpt-4o"
    assert answer["max_output_tokens"] == 100
    # $2.50 in, $10 out per MTok: the range is input alone to input + 100 output tokens.
    assert answer["max_cost_nanousd"] - answer["min_cost_nanousd"] == 100 * 10_000
    text = cli(daemon, "estimate", stdin=json.dumps(request))
    assert "priced as gpt-4o" in text.stdout and " to " in text.stdout


def test_batch_and_flex_are_priced_at_the_batch_share(daemon: Daemon) -> None:
    request = {"model": "house-model", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    full = daemon.call("POST", "/v1/estimate", {"request": request})[1]
    batch = daemon.call("POST", "/v1/estimate", {"request": request, "batch": True})[1]
    flex = daemon.call("POST", "/v1/estimate", {"request": {**request, "service_tier": "flex"}})[1]
    assert batch["batch"] and flex["batch"] and not full["batch"]
    assert batch["max_cost_nanousd"] == flex["max_cost_nanousd"] == -(-full["max_cost_nanousd"] * 40 // 100)


def test_reports_are_billed_by_tier_and_cache_lifetime(daemon: Daemon) -> None:
    def charged(model: str, usage: dict) -> int:
        status, check = daemon.call("POST", "/v1/check", {"provider": "anthropic", "model": model})
        assert status == 200 and check["decision"] == "allow", check
        status, report = daemon.call("POST", "/v1/report", {"reservation_id": check["reservation_id"],
                                                            "usage": usage, "outcome": "ok"})
        assert status == 200, report
        return report["cost_nanousd"]

    # house-model: $2 / $8 per MTok up to 1,000 prompt tokens, $4 / $16 for every token above.
    assert charged("house-model", {"input_tokens": 1000, "output_tokens": 100}) == 1000 * 2000 + 100 * 8000
    assert charged("house-model", {"input_tokens": 1001, "output_tokens": 100}) == 1001 * 4000 + 100 * 16000
    # claude-sonnet-4-5: 5-minute writes $3.75, 1-hour writes $6 per MTok.
    assert charged("claude-sonnet-4-5", {"cache_write_tokens": 1000, "cache_write_1h_tokens": 400}) \
        == 600 * 3750 + 400 * 6000
    rows = daemon.rows()
    assert rows[-1]["cache_write_1h_tokens"] == 400


def test_bad_estimates_are_refused_clearly(daemon: Daemon) -> None:
    status, body = daemon.call("POST", "/v1/estimate", {"request": {"messages": []}})
    assert status == 400 and "model is required" in body["error"]["message"]
    status, body = daemon.call("POST", "/v1/report", {"reservation_id": "r_x", "usage": {
        "cache_write_tokens": 1, "cache_write_1h_tokens": 2}})
    assert status == 400 and "cache_write_1h_tokens" in body["error"]["message"]
    done = cli(daemon, "estimate", stdin="not json")
    assert done.returncode == 2 and "not JSON" in done.stderr
    done = cli(daemon, "estimate", stdin="[1]")
    assert done.returncode == 2 and "JSON object" in done.stderr
    assert daemon.call("GET", "/v1/health")[0] == 200


def test_pricing_shows_the_effective_table(daemon: Daemon) -> None:
    listed = json.loads(cli(daemon, "pricing", "ls", "--json").stdout)
    house = next(e for e in listed if e["entry"] == "house-model")
    assert house["source"] == "pricing.toml" and house["batch_percent"] == 40
    assert house["long_context"]["above_tokens"] == 1000
    shown = json.loads(cli(daemon, "pricing", "show", "--json", "claude-sonnet-4-5-20250929").stdout)
    assert shown["entry"] == "claude-sonnet-4-5" and shown["source"] == "built-in" and shown["as_of"]
    unknown = cli(daemon, "pricing", "show", "gpt-9-imaginary")
    assert unknown.returncode == 0 and "fallback" in unknown.stdout
    retired = json.loads(cli(daemon, "pricing", "show", "--json", "gpt-4-0613").stdout)
    assert retired["priced"] and retired.get("retired")
