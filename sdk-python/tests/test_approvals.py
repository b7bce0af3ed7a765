"""Approvals against the real daemon: a check held for a person's decision.

They also prove the asyncio path never blocks its event loop: the held check is released only
by another coroutine on the same loop (listing and resolving the approval through the socket
API), which can run only while the wrapped call's check is awaiting, not blocking."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Dict, List, Optional

import anthropic
import openai
import pytest

import spendwall
import spendwall.anthropic
import spendwall.openai
from conftest import Daemon, Fake, wait_until
from spendwall._client import AsyncUnixTransport

AGENT = "ask-first"  # caps.toml in conftest: every call of this agent needs an approval
MSG = [{"role": "user", "content": "Say hello."}]


def _pending(body: Dict[str, Any], known: set) -> List[Dict[str, Any]]:
    return [a for a in body.get("approvals") or [] if a.get("agent") == AGENT and a["id"] not in known]


async def _decide(at: AsyncUnixTransport, call: "asyncio.Task[Any]", decision: str, known: set) -> str:
    """Waits, on the caller's loop, for the call's approval to be pending, then resolves it."""
    while True:
        if call.done():  # the check was answered without anyone deciding: the loop was blocked
            pytest.fail(f"the call finished before its approval was decided: {call.exception() or call.result()!r}")
        status, body = await at.request("GET", "/v1/approvals")
        assert status == 200, body
        pending = _pending(body, known)
        if pending:
            break
        await asyncio.sleep(0.01)
    [approval] = pending
    known.add(approval["id"])
    status, body = await at.request("POST", f"/v1/approvals/{approval['id']}/resolve",
                                    {"decision": decision, "reason": f"{decision} by the test"})
    assert status == 200, body
    return approval["id"]


def test_async_check_held_for_approval_leaves_the_loop_free(use_daemon: Daemon, fake: Fake) -> None:
    known = {a["id"] for a in use_daemon.request("GET", "/v1/approvals?status=all")[1]["approvals"]}
    ledger_before = len(use_daemon.rows(AGENT))

    async def main() -> None:
        at = AsyncUnixTransport(use_daemon.socket)
        client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1",
                                                          max_retries=0), agent=AGENT)
        call = asyncio.ensure_future(client.chat.completions.create(model="gpt-4o", messages=MSG,
                                                                    extra_headers={"x-fake-usage": "9,4,0,0,0"}))
        await _decide(at, call, "approve", known)
        res = await call
        assert isinstance(res, openai.types.chat.ChatCompletion)

        aclient = spendwall.anthropic.wrap(anthropic.AsyncAnthropic(api_key="sk-ant-fake", base_url=fake.url,
                                                                    max_retries=0), agent=AGENT)

        async def streamed() -> str:
            async with aclient.messages.stream(model="claude-sonnet-4-5", max_tokens=16, messages=MSG) as s:
                return "".join([t async for t in s.text_stream])

        call = asyncio.ensure_future(streamed())
        await _decide(at, call, "deny", known)
        with pytest.raises(spendwall.ApprovalDenied) as info:
            await call
        assert isinstance(info.value, spendwall.SpendwallError) and info.value.code == "approval_denied"
        assert "deny by the test" in str(info.value)
        await client.close()
        await aclient.close()

    asyncio.run(main())
    # the approved call went upstream once; the denied one never did
    assert [r["path"] for r in fake.requests()] == ["/v1/chat/completions"]
    rows = use_daemon.rows(AGENT, ledger_before + 1)[ledger_before:]
    assert [(r["provider"], r["outcome"], r["input_tokens"], r["output_tokens"]) for r in rows
            if r["outcome"] == "ok"] == [("openai", "ok", 9, 4)]


def test_sync_approval_denied_raises_before_upstream(use_daemon: Daemon, fake: Fake) -> None:
    known = {a["id"] for a in use_daemon.request("GET", "/v1/approvals?status=all")[1]["approvals"]}
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent=AGENT)
    outcome: List[BaseException] = []

    def call() -> None:
        try:
            client.chat.completions.create(model="gpt-4o", messages=MSG)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    t = threading.Thread(target=call)
    t.start()
    pending: Optional[List[Dict[str, Any]]] = None

    def listed() -> bool:
        nonlocal pending
        pending = _pending(use_daemon.request("GET", "/v1/approvals")[1], known)
        return bool(pending) or not t.is_alive()

    wait_until(listed, "the call's approval to be pending")
    assert pending, f"the call ended before its approval was pending: {outcome}"
    status, body = use_daemon.request("POST", f"/v1/approvals/{pending[0]['id']}/resolve", {"decision": "deny"})
    assert status == 200, body
    t.join(30)
    [err] = outcome
    assert type(err) is spendwall.ApprovalDenied
    assert fake.requests() == []
