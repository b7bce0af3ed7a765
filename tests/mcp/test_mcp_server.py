"""`spendwall mcp` driven by the official Python MCP client (the `mcp` package from PyPI) over
stdio, against a real daemon, with the real Python SDK making calls to the fake provider."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, List

import jsonschema
import openai
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

import spendwall
import spendwall.openai
from tests.conftest import REPO, Daemon, Fake

BINARY = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
CAPS = """
[[cap]]
name = "coder-daily"
scope = { agent = "coder" }
window = "1d"
limit_usd = 1.00

[[cap]]
name = "everyone"
scope = { global = true }
window = "1d"
limit_usd = 10.00
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon(files={"caps.toml": CAPS})
    yield d
    d.cleanup()


def with_server(env: Dict[str, str], body: Callable[[ClientSession], Awaitable[Any]], *args: str) -> Any:
    """Starts `spendwall mcp ARGS` as the MCP client's subprocess and runs `body` in a session."""
    async def run() -> Any:
        params = StdioServerParameters(command=BINARY, args=["mcp", *args], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await body(session)
    return asyncio.run(run())


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_tools_are_listed_with_valid_schemas(daemon: Daemon) -> None:
    async def body(session: ClientSession) -> Any:
        return (await session.list_tools()).tools
    tools = with_server(daemon.env, body, "--agent", "coder")
    names = {t.name for t in tools}
    assert names == {"get_remaining_budget", "estimate_cost", "request_preapproval", "release_preapproval",
                     "list_recent_spend"}
    for tool in tools:
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["type"] == "object"
        assert len(tool.description or "") > 40, tool.name


def test_budget_and_estimates_match_the_daemon(daemon: Daemon) -> None:
    async def body(session: ClientSession) -> Any:
        budget = await session.call_tool("get_remaining_budget", {})
        estimate = await session.call_tool("estimate_cost", {"model": "gpt-4o", "input_tokens": 1000,
                                                             "max_output_tokens": 100})
        by_request = await session.call_tool("estimate_cost", {"model": "gpt-4o", "request": {
            "messages": [{"role": "user", "content": "hello"}], "max_tokens": 50}})
        return budget, estimate, by_request
    budget, estimate, by_request = with_server(daemon.env, body, "--agent", "coder")
    assert not budget.is_error, text(budget)
    caps = {c["name"]: c for c in budget.structured_content["caps"]}
    assert set(caps) == {"coder-daily", "everyone"}
    snapshot = daemon.call("GET", "/v1/policy/snapshot")[1]
    assert caps["coder-daily"]["limit_nanousd"] == 1_000_000_000
    assert caps["everyone"]["remaining_nanousd"] == next(
        c for c in snapshot["caps"] if c["name"] == "everyone")["keys"][0]["remaining_nanousd"]
    assert "coder-daily" in text(budget) and "$1.00" in text(budget)
    # gpt-4o: $2.50 / $10 per MTok.
    assert estimate.structured_content["min_cost_nanousd"] == 2_500_000
    assert estimate.structured_content["max_cost_nanousd"] == 3_500_000
    assert by_request.structured_content["max_output_tokens"] == 50
    assert by_request.structured_content["input_tokens"] > 0


def test_bad_arguments_are_tool_errors(daemon: Daemon) -> None:
    cases = [
        ("estimate_cost", {"model": "gpt-9-imaginary", "input_tokens": 10}, "unknown model"),
        ("estimate_cost", {"model": "gpt-4o"}, "request"),
        ("estimate_cost", {"model": "gpt-4o", "input_tokens": -5}, "input_tokens"),
        ("request_preapproval", {"amount_usd": -1, "reason": "x"}, "more than zero"),
        ("request_preapproval", {"amount_usd": 1}, "reason"),
        ("request_preapproval", {"reason": "no amount"}, "amount_usd"),
        ("release_preapproval", {"preapproval_id": "pa_nothing"}, "no open pre-approval"),
        ("list_recent_spend", {"limit": 0}, "limit"),
    ]

    async def body(session: ClientSession) -> List[Any]:
        return [await session.call_tool(name, args) for name, args, _ in cases]
    results = with_server(daemon.env, body, "--agent", "coder")
    for (name, args, fragment), result in zip(cases, results):
        assert result.is_error, (name, args, text(result))
        assert fragment in text(result), (name, text(result))
    assert daemon.call("GET", "/v1/health")[0] == 200


def test_a_preapproval_is_drawn_down_by_sdk_calls(daemon: Daemon, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDWALL_SOCKET", daemon.socket)
    monkeypatch.setenv("SPENDWALL_DATA_DIR", daemon.data_dir)
    monkeypatch.setenv("SPENDWALL_CONFIG_DIR", daemon.config_dir)
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent="coder")

    async def grant(session: ClientSession) -> Any:
        return await session.call_tool("request_preapproval", {"amount_usd": 0.5, "reason": "refactor the parser"})
    granted = with_server(daemon.env, grant, "--agent", "coder")
    assert not granted.is_error, text(granted)
    preapproval = granted.structured_content["preapproval"]
    assert granted.structured_content["decision"] == "granted" and preapproval["amount_nanousd"] == 500_000_000

    costs = []
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", max_tokens=50,
                                       messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-fake-usage": "1000,200"})
        spendwall.flush()
    rows = [r for r in daemon.rows() if r["agent"] == "coder" and r["outcome"] == "ok"]
    costs = [r["cost_nanousd"] for r in rows]
    assert len(costs) == 3 and all(c == 1000 * 2500 + 200 * 10_000 for c in costs)

    async def check(session: ClientSession) -> Any:
        budget = await session.call_tool("get_remaining_budget", {})
        spend = await session.call_tool("list_recent_spend", {"limit": 10})
        return budget, spend
    budget, spend = with_server(daemon.env, check, "--agent", "coder")
    [open_one] = budget.structured_content["preapprovals"]
    assert open_one["id"] == preapproval["id"] and open_one["calls"] == 3
    assert open_one["remaining_nanousd"] == 500_000_000 - sum(costs)
    coder = next(c for c in budget.structured_content["caps"] if c["name"] == "coder-daily")
    assert coder["spent_nanousd"] == sum(costs)
    assert coder["reserved_nanousd"] == 500_000_000 - sum(costs)  # only the pre-approval's remainder
    assert spend.structured_content["total_cost_nanousd"] >= sum(costs) and "gpt-4o" in text(spend)

    async def release(session: ClientSession) -> Any:
        return await session.call_tool("release_preapproval", {"preapproval_id": preapproval["id"]})
    released = with_server(daemon.env, release, "--agent", "coder")
    assert not released.is_error, text(released)
    snapshot = daemon.call("GET", "/v1/policy/snapshot")[1]
    coder_key = next(c for c in snapshot["caps"] if c["name"] == "coder-daily")["keys"][0]
    assert coder_key["reserved_nanousd"] == 0


def test_an_expired_preapproval_releases_its_remainder(daemon: Daemon) -> None:
    async def grant(session: ClientSession) -> Any:
        return await session.call_tool("request_preapproval", {"amount_usd": 0.25, "reason": "short job",
                                                               "ttl": "1s"})
    granted = with_server(daemon.env, grant, "--agent", "coder")
    assert granted.structured_content["decision"] == "granted", text(granted)

    def reserved() -> int:
        snapshot = daemon.call("GET", "/v1/policy/snapshot")[1]
        return next(c for c in snapshot["caps"] if c["name"] == "coder-daily")["keys"][0]["reserved_nanousd"]
    assert reserved() == 250_000_000
    deadline = time.monotonic() + 30
    while reserved() != 0:
        assert time.monotonic() < deadline, "the expired pre-approval still holds its remainder"
        time.sleep(0.1)
    assert daemon.call("GET", "/v1/preapprovals?agent=coder")[1]["preapprovals"] == []


def test_a_preapproval_over_the_cap_is_denied(daemon: Daemon) -> None:
    async def grant(session: ClientSession) -> Any:
        return await session.call_tool("request_preapproval", {"amount_usd": 5, "reason": "too much"})
    denied = with_server(daemon.env, grant, "--agent", "coder")
    assert denied.structured_content["decision"] == "denied"
    assert "coder-daily" in text(denied)


def test_a_daemon_that_is_down_is_a_clear_tool_error(daemon: Daemon, tmp_path: Any) -> None:
    env = dict(daemon.env, SPENDWALL_SOCKET=str(tmp_path / "nobody-here.sock"))

    async def body(session: ClientSession) -> Any:
        return await session.call_tool("get_remaining_budget", {})
    result = with_server(env, body, "--agent", "coder")
    assert result.is_error and "not running" in text(result)
