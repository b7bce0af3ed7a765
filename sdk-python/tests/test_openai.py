"""spendwall.openai.wrap against the real daemon, the real `openai` package and the fake provider."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List

import openai
import pytest

import spendwall
import spendwall.openai
from conftest import Daemon, Fake, expected, usage_of

MSG = [{"role": "user", "content": "Say hello."}]


def clients(fake: Fake, **wrap: Any) -> Any:
    bare = openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0)
    wrapped = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0), **wrap)
    return bare, wrapped


def strip_ids(chunks: List[Any]) -> List[Dict[str, Any]]:
    out = []
    for c in chunks:
        d = c.model_dump(exclude_none=True)
        for k in ("id", "created", "sequence_number"):
            d.pop(k, None)
        if "response" in d:
            for k in ("id", "created_at"):
                d["response"].pop(k, None)
        out.append(json.loads(json.dumps(d, sort_keys=True).replace(d.get("item_id", "-"), "X")))
    return out


def test_chat_plain_row_matches_usage(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent, tags={"team": "core"}, session="s-1")
    u = "120,35,80,0,12"
    res = client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=50, extra_headers={"x-fake-usage": u})
    assert isinstance(res, openai.types.chat.ChatCompletion)
    assert res.usage.prompt_tokens == 200
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "openai")  # input = prompt - cached
    assert (row["provider"], row["model"], row["outcome"], row["path"]) == ("openai", "gpt-4o", "ok", "sdk")
    assert row["tags"] == {"team": "core"} and row["session"] == "s-1" and row["status"] == 200
    assert row["reservation_id"].startswith("r_") and row["cost_nanousd"] > 0
    # the check saw the request body: the fake received exactly one call, with the caller's body
    [req] = fake.requests()
    assert json.loads(req["body"])["max_tokens"] == 50 and "stream_options" not in json.loads(req["body"])


def test_chat_stream_hides_injected_usage_chunk(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    bare, client = clients(fake, agent=agent)
    u = "40,9,8,0,3"
    plain = list(bare.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                              extra_headers={"x-fake-usage": u}))
    stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True, extra_headers={"x-fake-usage": u})
    assert type(stream) is openai.Stream
    seen = list(stream)
    assert strip_ids(seen) == strip_ids(plain)  # exactly the stream the caller would have seen
    assert all(c.choices for c in seen)
    bodies = [json.loads(r["body"]) for r in fake.requests()]
    assert "stream_options" not in bodies[0] and bodies[1]["stream_options"] == {"include_usage": True}
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "openai") and row["outcome"] == "ok"


def test_chat_stream_caller_asked_for_usage(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    u = "7,5,0,0,0"
    with client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                        stream_options={"include_usage": True},
                                        extra_headers={"x-fake-usage": u}) as stream:
        chunks = list(stream)
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 7
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "openai")


def test_chat_stream_helper(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    u = "30,6,0,0,0"
    with client.chat.completions.stream(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": u}) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    assert final.choices[0].message.content.startswith("Hello")
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "openai") and row["outcome"] == "ok"


def test_responses_plain_and_stream(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    u1, u2 = "50,20,10,0,15", "60,21,0,0,4"
    r = client.responses.create(model="gpt-4o", input="hi", max_output_tokens=100, extra_headers={"x-fake-usage": u1})
    assert r.output_text.startswith("Hello")
    events = list(client.responses.create(model="gpt-4o", input="hi", stream=True, extra_headers={"x-fake-usage": u2}))
    assert events[-1].type == "response.completed"
    u3 = "61,22,1,0,2"
    with client.responses.stream(model="gpt-4o", input="hi", extra_headers={"x-fake-usage": u3}) as rs:
        for _ in rs:
            pass
        assert rs.get_final_response().usage.input_tokens == 62
    rows = use_daemon.rows(agent, 3)
    assert [usage_of(x) for x in rows] == [expected(u, "openai") for u in (u1, u2, u3)]
    assert all(x["outcome"] == "ok" for x in rows)


def test_legacy_completions_and_embeddings(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    u1, u2, u3 = "9,4,0,0,0", "8,3,0,0,0", "5,0,0,0,0"
    c = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", max_tokens=20,
                                  extra_headers={"x-fake-usage": u1})
    assert c.choices[0].text.startswith("Hello")
    chunks = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", stream=True,
                                            extra_headers={"x-fake-usage": u2}))
    assert all(ch.choices for ch in chunks)  # injected usage chunk hidden
    client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers={"x-fake-usage": u3})
    rows = use_daemon.rows(agent, 3)
    assert [usage_of(x) for x in rows] == [expected(u, "openai") for u in (u1, u2, u3)]


@pytest.mark.parametrize("code,exc", [(429, openai.RateLimitError), (500, openai.InternalServerError),
                                      (400, openai.BadRequestError), (401, openai.AuthenticationError)])
def test_provider_errors_pass_through_and_are_reported(use_daemon: Daemon, fake: Fake, agent: str, code: int,
                                                       exc: type) -> None:
    _, client = clients(fake, agent=agent)
    with pytest.raises(exc):
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-scenario": f"error-{code}"})
    [row] = use_daemon.rows(agent, 1)
    assert (row["outcome"], row["status"], row["input_tokens"], row["output_tokens"]) == ("error", code, 0, 0)


def broken_stream_error(fake: Fake) -> type:
    """The exception the bare client raises for a cut stream (it differs across openai versions)."""
    bare = openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0)
    with pytest.raises(Exception) as info:
        list(bare.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                          extra_headers={"x-fake-scenario": "broken-stream"}))
    return type(info.value)


def test_broken_stream_reported_partial(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    got = []
    with pytest.raises(broken_stream_error(fake)):
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                    extra_headers={"x-fake-scenario": "broken-stream"}):
            got.append(chunk)
    assert len(got) == 3
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "partial"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0  # estimates: request bytes, text received


def test_abandoned_stream_reported_partial(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                            extra_headers={"x-fake-scenario": "slow-stream", "x-fake-delay-ms": "20"})
    for i, _ in enumerate(stream):
        if i == 1:
            break
    stream.close()
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "partial" and row["output_tokens"] > 0


def test_abandoned_stream_without_close_reported_when_collected(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent)
    stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    next(iter(stream))
    del stream
    import gc
    gc.collect()
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "partial"


def test_blocked_call_raises_before_upstream(use_daemon: Daemon, fake: Fake) -> None:
    _, client = clients(fake, agent="capped-tiny")
    with pytest.raises(spendwall.BudgetExceeded) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    err = info.value
    assert isinstance(err, spendwall.SpendwallError) and err.code == "cap_exceeded"
    assert err.cap_name == "tiny" and err.window == "1d" and err.limit_nanousd == 1000
    assert err.spent_nanousd is not None
    assert fake.requests() == []


def test_attribution_wrap_context_and_per_call(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    _, client = clients(fake, agent=agent, tags={"a": "1"})
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    with spendwall.tags(customer="acme"):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
        client.chat.completions.create(model="gpt-4o", messages=MSG,
                                       spendwall={"tags": {"a": "2"}, "session": "s-9"})
    with spendwall.attribution(agent=agent + "-ctx"):
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    rows = use_daemon.rows(agent, 3)
    assert [r["tags"] for r in rows] == [{"a": "1"}, {"a": "1", "customer": "acme"}, {"a": "2", "customer": "acme"}]
    assert rows[2]["session"] == "s-9"
    assert len(use_daemon.rows(agent + "-ctx", 1)) == 1
    # the per-call keyword never reaches the provider
    assert all("spendwall" not in r["body"] for r in fake.requests())


def test_async_chat_plain_and_stream(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent=agent)
    u1, u2 = "13,8,2,0,1", "14,9,0,0,0"

    async def main() -> None:
        r = await client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": u1})
        assert r.usage.completion_tokens == 8
        stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                      extra_headers={"x-fake-usage": u2})
        assert type(stream) is openai.AsyncStream
        chunks = [c async for c in stream]
        assert chunks and all(c.choices for c in chunks)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-4o", messages=MSG,
                                                 extra_headers={"x-fake-scenario": "error-429"},
                                                 spendwall={"session": "async-err"})
        await client.close()

    asyncio.run(main())
    rows = use_daemon.rows(agent, 3)
    assert [usage_of(x) for x in rows[:2]] == [expected(u1, "openai"), expected(u2, "openai")]
    assert rows[2]["outcome"] == "error" and rows[2]["session"] == "async-err"


def test_async_responses_stream_and_broken(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent=agent)
    u = "70,11,30,0,5"
    expected_error = broken_stream_error(fake)

    async def main() -> None:
        events = [e async for e in await client.responses.create(model="gpt-4o", input="x", stream=True,
                                                                  extra_headers={"x-fake-usage": u})]
        assert events[-1].type == "response.completed"
        with pytest.raises(expected_error):
            async for _ in await client.responses.create(model="gpt-4o", input="x", stream=True,
                                                         extra_headers={"x-fake-scenario": "broken-stream"}):
                pass
        await client.close()

    asyncio.run(main())
    rows = use_daemon.rows(agent, 2)
    assert usage_of(rows[0]) == expected(u, "openai") and rows[0]["outcome"] == "ok"
    assert rows[1]["outcome"] == "partial"


def test_azure_client(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    azure = openai.AzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint=fake.url, max_retries=0)
    client = spendwall.openai.wrap(azure, agent=agent)
    u = "12,6,4,0,0"
    res = client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": u})
    assert res.usage.prompt_tokens == 16
    [req] = fake.requests()
    assert "/openai/deployments/" in req["path"]
    [row] = use_daemon.rows(agent, 1)
    assert usage_of(row) == expected(u, "openai")


def test_per_call_extra_keyword(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    """`extra={...}` (issue 4's name) is the per-call attribution too; `spendwall={...}` still
    works and wins field by field when both are given. Neither reaches the provider."""
    _, client = clients(fake, agent=agent, tags={"a": "1"})
    client.chat.completions.create(model="gpt-4o", messages=MSG, extra={"tags": {"pr": "7"}, "session": "x-1"})
    with client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                        extra={"tags": {"pr": "8"}, "session": "x-2"},
                                        spendwall={"session": "x-3", "tags": {"b": "2"}}) as s:
        list(s)
    with client.chat.completions.stream(model="gpt-4o", messages=MSG, extra={"session": "x-4"}) as s:
        list(s)
    client.responses.create(model="gpt-4o", input="hi", extra={"agent": agent + "-other"})
    rows = use_daemon.rows(agent, 3)
    assert [(r["session"], r["tags"]) for r in rows] == [
        ("x-1", {"a": "1", "pr": "7"}), ("x-3", {"a": "1", "pr": "8", "b": "2"}), ("x-4", {"a": "1"})]
    assert len(use_daemon.rows(agent + "-other", 1)) == 1
    assert all('"extra"' not in r["body"] and "spendwall" not in r["body"] for r in fake.requests())
    with pytest.raises(TypeError):
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra={"team": "x"})  # unknown field
    with pytest.raises(TypeError):
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra="reviewer")


def test_extra_left_alone_when_the_sdk_has_its_own() -> None:
    """A provider method with an `extra` parameter of its own keeps it: only `spendwall=` is ours."""
    from spendwall._wrap import _wrap_method

    seen = {}

    class Resource:
        def create(self, *, model: str, extra: object = None) -> str:
            seen["extra"] = extra
            return model

    r = Resource()
    _wrap_method(r, "create")
    assert r.create(model="m", extra={"agent": "a"}) == "m"
    assert seen["extra"] == {"agent": "a"}


def test_check_carries_the_request_body(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    """The daemon reserves from the body the wrapper sends with the check: the same call with a
    larger max_tokens reserves exactly that many more output tokens (gpt-4o: $10 / M output)."""
    _, client = clients(fake, agent=agent)
    for max_tokens in (50, 5050):
        client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=max_tokens)
    small, large = use_daemon.rows(agent, 2)
    assert large["reserved_nanousd"] - small["reserved_nanousd"] == 5000 * 10_000


def test_async_azure_client(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    u1, u2 = "15,7,5,0,0", "16,8,0,0,2"

    async def main() -> None:
        azure = openai.AsyncAzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint=fake.url,
                                        max_retries=0)
        client = spendwall.openai.wrap(azure, agent=agent)
        res = await client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": u1})
        assert res.usage.prompt_tokens == 20
        stream = await client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                      extra_headers={"x-fake-usage": u2})
        assert type(stream) is openai.AsyncStream
        assert all(c.choices for c in [c async for c in stream])  # the injected usage chunk is hidden
        await client.close()

    asyncio.run(main())
    assert all("/openai/deployments/" in r["path"] for r in fake.requests())
    rows = use_daemon.rows(agent, 2)
    assert [usage_of(r) for r in rows] == [expected(u1, "openai"), expected(u2, "openai")]


def test_async_abandoned_stream_reported_partial_with_estimate(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    """An async stream closed early: outcome `partial`, output estimated from the text received."""
    from spendwall._usage import estimate_tokens

    received: List[str] = []

    async def main() -> None:
        client = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1",
                                                          max_retries=0), agent=agent)
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=MSG, stream=True,
            extra_headers={"x-fake-scenario": "slow-stream", "x-fake-delay-ms": "20"})
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
            if len(received) == 2:
                break
        await stream.close()
        await client.close()

    asyncio.run(main())
    text = "".join(received)
    assert text  # the caller saw some text before giving up
    [row] = use_daemon.rows(agent, 1)
    assert row["outcome"] == "partial"
    assert row["output_tokens"] == estimate_tokens(text) and row["input_tokens"] > 0
