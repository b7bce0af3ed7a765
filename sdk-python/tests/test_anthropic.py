"""spendwall.anthropic.wrap against the real daemon, the real `anthropic` package and the fake provider."""
from __future__ import annotations

import asyncio
import json

import anthropic
import pytest

import spendwall
import spendwall.anthropic
from conftest import Daemon, Fake, expected, usage_of

MODEL = "claude-opus-4-5"
MSG = [{"role": "user", "content": "Say hello."}]


def client_for(fake: Fake, **wrap: object) -> anthropic.Anthropic:
    return spendwall.anthropic.wrap(anthropic.Anthropic(api_key="sk-ant-fake", base_url=fake.url, max_retries=0),
                                    **wrap)


def test_messages_plain_row_matches_usage(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = client_for(fake, agent=agent, tags={"customer": "acme"})
    u = "100,40,300,50,0"
    msg = client.messages.create(model=MODEL, max_tokens=64, messages=MSG, extra_headers={"x-fake-usage": u})
    assert isinstance(msg, anthropic.types.Message)
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "anthropic")
    assert (row["provider"], row["model"], row["outcome"], row["tags"]) == ("anthropic", MODEL, "ok", {"customer": "acme"})


def test_messages_stream_true(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = client_for(fake, agent=agent)
    u = "21,17,4,3,0"
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MSG, stream=True,
                                    extra_headers={"x-fake-usage": u})
    assert type(stream) is anthropic.Stream
    events = [e.type for e in stream]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "anthropic") and row["outcome"] == "ok"


def test_messages_stream_manager(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = client_for(fake, agent=agent)
    u = "33,12,0,9,0"
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSG, extra_headers={"x-fake-usage": u},
                                spendwall={"session": "sess-m"}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello") and final.usage.output_tokens == 12
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "anthropic") and row["session"] == "sess-m"


def test_stream_manager_abandoned_is_partial(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = client_for(fake, agent=agent)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MSG,
                                extra_headers={"x-fake-usage": "44,30,0,0,0", "x-fake-scenario": "slow-stream",
                                               "x-fake-delay-ms": "20"}) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                break
    [row] = use_daemon.rows(agent, 1)
    # usage known so far (message_start: input 44) plus an estimate for the text received
    assert row["outcome"] == "partial" and row["input_tokens"] == 44 and row["output_tokens"] >= 1


def test_count_tokens_is_not_billed(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = client_for(fake, agent=agent)
    assert client.messages.count_tokens(model=MODEL, messages=MSG).input_tokens == 11
    assert use_daemon.rows(agent, timeout=0.3) == []


@pytest.mark.parametrize("code,exc", [(429, anthropic.RateLimitError), (500, anthropic.InternalServerError)])
def test_errors(use_daemon: Daemon, fake: Fake, agent: str, code: int, exc: type) -> None:
    client = client_for(fake, agent=agent)
    with pytest.raises(exc):
        client.messages.create(model=MODEL, max_tokens=8, messages=MSG, extra_headers={"x-fake-scenario": f"error-{code}"})
    [row] = use_daemon.rows(agent, 1)
    assert (row["outcome"], row["status"]) == ("error", code)


def test_broken_stream_partial_keeps_known_usage(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = client_for(fake, agent=agent)
    with pytest.raises(Exception) as info:  # the same exception the bare client raises (see test below)
        for _ in client.messages.create(model=MODEL, max_tokens=8, messages=MSG, stream=True,
                                        extra_headers={"x-fake-scenario": "broken-stream", "x-fake-usage": "55,9,6,2,0"}):
            pass
    bare = anthropic.Anthropic(api_key="sk-ant-fake", base_url=fake.url, max_retries=0)
    with pytest.raises(type(info.value)):
        for _ in bare.messages.create(model=MODEL, max_tokens=8, messages=MSG, stream=True,
                                      extra_headers={"x-fake-scenario": "broken-stream"}):
            pass
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "partial"
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (55, 6, 2)


def test_async_client(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = spendwall.anthropic.wrap(anthropic.AsyncAnthropic(api_key="sk-ant-fake", base_url=fake.url, max_retries=0),
                                      agent=agent)
    u1, u2, u3 = "10,5,1,2,0", "11,6,0,0,0", "12,7,3,0,0"

    async def main() -> None:
        m = await client.messages.create(model=MODEL, max_tokens=16, messages=MSG, extra_headers={"x-fake-usage": u1})
        assert m.usage.output_tokens == 5
        stream = await client.messages.create(model=MODEL, max_tokens=16, messages=MSG, stream=True,
                                              extra_headers={"x-fake-usage": u2})
        assert type(stream) is anthropic.AsyncStream
        assert [e.type async for e in stream][-1] == "message_stop"
        async with client.messages.stream(model=MODEL, max_tokens=16, messages=MSG, extra_headers={"x-fake-usage": u3},
                                          spendwall={"tags": {"via": "manager"}}) as s:
            final = await s.get_final_message()
        assert final.usage.input_tokens == 12
        await client.close()

    asyncio.run(main())
    rows = use_daemon.rows(agent, 3)
    assert [usage_of(r) for r in rows] == [expected(u, "anthropic") for u in (u1, u2, u3)]
    assert rows[2]["tags"] == {"via": "manager"}
    assert all(json.loads(r["body"])["model"] == MODEL for r in fake.requests())
