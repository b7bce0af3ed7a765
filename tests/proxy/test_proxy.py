"""The loopback proxy with the real `openai` and `anthropic` packages pointed at it (base URL),
against the shared fake provider: every answer the client receives is byte-identical to what
the fake sent (sha256 on both ends), every ledger row equals the fake's usage, refused calls
never reach the fake, kill and disconnect leave one row each, and the calling process is the
one the kernel names."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List

import anthropic
import openai
import pytest
from conftest import Daemon, Fake, wait_until

CAPS = """
[[cap]]
name = "tiny"
scope = { agent = "capped" }
window = "1d"
limit_usd = 0.000001
action = "block"
"""

USAGE = "1200,350,800,64,120"


@pytest.fixture(scope="module")
def daemon(fake: Fake) -> Iterator[Daemon]:
    d = Daemon(files={"caps.toml": CAPS},
               env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    yield d
    d.cleanup()


@pytest.fixture(autouse=True)
def clean(fake: Fake) -> None:
    fake.reset()


def openai_client(daemon: Daemon, agent: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=f"http://{daemon.address}/agent/{agent}/v1", max_retries=0)


def anthropic_client(daemon: Daemon, agent: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=f"http://{daemon.address}/agent/{agent}",
                               max_retries=0)


def expected(provider: str) -> Dict[str, int]:
    i, o, cr, cw, r = (int(x) for x in USAGE.split(","))
    if provider == "openai":
        return {"input_tokens": i, "output_tokens": o, "cache_read_tokens": cr, "cache_write_tokens": 0,
                "reasoning_tokens": r}
    return {"input_tokens": i, "output_tokens": o, "cache_read_tokens": cr, "cache_write_tokens": cw,
            "reasoning_tokens": 0}


def usage_of(row: Dict[str, Any]) -> Dict[str, int]:
    return {k: row.get(k, 0) for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
                                       "reasoning_tokens")}


def rows_of(daemon: Daemon, agent: str, expect: int) -> List[Dict[str, Any]]:
    wait_until(lambda: len([r for r in daemon.rows() if r.get("agent") == agent]) >= expect, f"{expect} rows")
    return [r for r in daemon.rows() if r.get("agent") == agent]


def cut(exchange: Dict[str, Any]) -> bool:
    """The fake's record of an answer it could not finish sending."""
    return exchange["response_status"] == 200 and exchange["complete"] is False


def last_exchange(fake: Fake) -> Dict[str, Any]:
    requests = fake.requests()
    assert len(requests) == 1, requests
    return requests[0]


OPENAI_CALLS = {
    "chat": lambda c, **kw: c.chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=500, messages=[{"role": "user", "content": "hi"}], **kw),
    "responses": lambda c, **kw: c.responses.with_raw_response.create(model="gpt-4o", input="hi", **kw),
    "completions": lambda c, **kw: c.completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="hi", max_tokens=50, **kw),
    "embeddings": lambda c, **kw: c.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input="hi", **kw),
}


@pytest.mark.parametrize("kind", sorted(OPENAI_CALLS))
def test_openai_plain_calls_are_byte_identical_and_recorded(daemon: Daemon, fake: Fake, kind: str) -> None:
    agent = f"oa-{kind}"
    raw = OPENAI_CALLS[kind](openai_client(daemon, agent), extra_headers={"x-fake-usage": USAGE})
    body = raw.http_response.read()
    exchange = last_exchange(fake)
    assert hashlib.sha256(body).hexdigest() == exchange["response_sha256"]
    assert raw.parse() is not None  # the SDK still parses what it got
    assert "x-spendwall-cost-usd" not in raw.http_response.headers  # off unless asked for
    # What the fake received is what the client sent: our path prefix and headers are gone.
    assert exchange["path"].startswith("/v1/")
    assert not any(h.startswith("x-spendwall") for h in exchange["headers"])
    [row] = rows_of(daemon, agent, 1)
    want = expected("openai")
    if kind == "completions":  # the legacy endpoint reports no cached/reasoning details
        want = {"input_tokens": 2000, "output_tokens": 350, "cache_read_tokens": 0, "cache_write_tokens": 0,
                "reasoning_tokens": 0}
    if kind == "embeddings":
        want = {"input_tokens": 2000, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
                "reasoning_tokens": 0}
    assert usage_of(row) == want
    assert row["outcome"] == "ok" and row["path"] == "proxy" and row["status"] == 200
    assert "estimated" not in row


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_chat_stream_is_byte_identical(daemon: Daemon, fake: Fake, include_usage: bool) -> None:
    agent = f"oa-stream-{include_usage}"
    client = openai_client(daemon, agent)
    extra: Dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-usage": USAGE}, **extra) as response:
        body = b"".join(response.iter_bytes())
    exchange = last_exchange(fake)
    assert hashlib.sha256(body).hexdigest() == exchange["response_sha256"]
    assert exchange["body"] == json.loads(json.dumps(exchange["body"]))  # the request went as sent
    [row] = rows_of(daemon, agent, 1)
    if include_usage:
        assert usage_of(row) == expected("openai")
        assert "estimated" not in row
    else:
        # Transparent by default: no usage in the stream, so it is estimated and flagged.
        assert row["estimated"] is True
        text = "Hello from the fake provider. It answers every request the same way."
        assert row["output_tokens"] == (len(text.encode()) + 3) // 4
        assert row["input_tokens"] > 0


def test_openai_responses_stream(daemon: Daemon, fake: Fake) -> None:
    client = openai_client(daemon, "oa-resp-stream")
    with client.responses.with_streaming_response.create(
            model="gpt-4o", input="hi", stream=True, extra_headers={"x-fake-usage": USAGE}) as response:
        body = b"".join(response.iter_bytes())
    assert hashlib.sha256(body).hexdigest() == last_exchange(fake)["response_sha256"]
    [row] = rows_of(daemon, "oa-resp-stream", 1)
    assert usage_of(row) == expected("openai")


def test_anthropic_plain_and_stream(daemon: Daemon, fake: Fake) -> None:
    client = anthropic_client(daemon, "an")
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5", max_tokens=500, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-fake-usage": USAGE})
    assert hashlib.sha256(raw.http_response.read()).hexdigest() == last_exchange(fake)["response_sha256"]
    assert raw.parse().usage.output_tokens == 350
    fake.reset()
    with client.messages.with_streaming_response.create(
            model="claude-sonnet-4-5", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-usage": USAGE}) as response:
        body = b"".join(response.iter_bytes())
    assert hashlib.sha256(body).hexdigest() == last_exchange(fake)["response_sha256"]
    # The SDK's own stream helper works through the proxy too.
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=500,
                                messages=[{"role": "user", "content": "hi"}],
                                extra_headers={"x-fake-usage": USAGE}) as stream:
        assert stream.get_final_message().usage.output_tokens == 350
    rows = rows_of(daemon, "an", 3)
    assert [usage_of(r) for r in rows] == [expected("anthropic")] * 3
    assert {r["provider"] for r in rows} == {"anthropic"}


def test_count_tokens_and_models_pass_through_unbilled(daemon: Daemon, fake: Fake) -> None:
    client = anthropic_client(daemon, "counter")
    assert client.messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}],
                                        extra_headers={"x-fake-usage": USAGE}).input_tokens == 1200
    assert [m.id for m in openai_client(daemon, "lister").models.list()][0] == "gpt-4o"
    assert len(fake.requests()) == 2
    assert not [r for r in daemon.rows() if r.get("agent") in ("counter", "lister")]


@pytest.mark.parametrize("status,exc", [(429, openai.RateLimitError), (500, openai.InternalServerError)])
def test_provider_errors_pass_through(daemon: Daemon, fake: Fake, status: int, exc: type) -> None:
    agent = f"oa-err-{status}"
    with pytest.raises(exc) as raised:
        openai_client(daemon, agent).chat.completions.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-scenario": f"error-{status}"})
    assert raised.value.status_code == status
    assert hashlib.sha256(raised.value.response.content).hexdigest() == last_exchange(fake)["response_sha256"]
    [row] = rows_of(daemon, agent, 1)
    assert row["outcome"] == "error" and row["status"] == status and row["cost_nanousd"] == 0


def test_a_blocked_call_gets_402_and_never_reaches_the_provider(daemon: Daemon, fake: Fake) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        openai_client(daemon, "capped").chat.completions.create(
            model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 402
    error = raised.value.response.json()["error"]
    assert error["code"] == "cap_exceeded" and error["cap"]["name"] == "tiny"
    assert fake.requests() == []
    [row] = rows_of(daemon, "capped", 1)
    assert row["outcome"] == "blocked"


def test_the_calling_process_is_attributed_as_on_the_socket(daemon: Daemon, fake: Fake) -> None:
    openai_client(daemon, "who").chat.completions.create(
        model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    [row] = rows_of(daemon, "who", 1)
    assert row["peer_pid"] == os.getpid()
    assert row["peer_uid"] == os.getuid()
    assert row["peer_exe"] == os.path.realpath(f"/proc/{os.getpid()}/exe")
    # The same process asking over the Unix socket (SO_PEERCRED) gets the same app.
    status, check = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o", "agent": "who-socket"})
    assert status == 200
    daemon.call("POST", "/v1/report", {"reservation_id": check["reservation_id"], "usage": {}})
    [socket_row] = rows_of(daemon, "who-socket", 1)
    assert row["app"] == socket_row["app"] and row["app"] != "unknown"


def test_a_kill_cuts_a_stream_in_flight_and_leaves_one_killed_row(daemon: Daemon, fake: Fake) -> None:
    client = anthropic_client(daemon, "to-kill")
    received: List[bytes] = []
    failure: List[BaseException] = []
    first = threading.Event()

    def stream() -> None:
        try:
            with client.messages.with_streaming_response.create(
                    model="claude-sonnet-4-5", max_tokens=500, stream=True,
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-fake-usage": USAGE, "x-fake-scenario": "slow-stream",
                                   "x-fake-delay-ms": "300"}) as response:
                for chunk in response.iter_bytes():
                    received.append(chunk)
                    first.set()
        except BaseException as exc:  # the cut surfaces as a read error
            failure.append(exc)
        first.set()

    thread = threading.Thread(target=stream)
    thread.start()
    assert first.wait(30)
    status, _ = daemon.call("POST", "/v1/kill", {"agent": "to-kill"})
    assert status == 200
    thread.join(30)
    assert not thread.is_alive()
    daemon.call("POST", "/v1/kill", {"agent": "to-kill", "on": False})
    got = b"".join(received)
    assert b"message_stop" not in got  # cut before the end
    [row] = rows_of(daemon, "to-kill", 1)
    assert row["outcome"] == "killed"
    # message_start had come: its input counts are kept; the output is estimated.
    assert row["input_tokens"] == 1200 and row["cache_read_tokens"] == 800 and row["cache_write_tokens"] == 64
    assert row["estimated"] is True and row["cost_nanousd"] > 0
    # The provider's connection was dropped too: its record says the answer did not complete.
    wait_until(lambda: cut(fake.requests()[0]), "the upstream to be cut")


def test_a_client_that_disconnects_leaves_one_disconnected_row(daemon: Daemon, fake: Fake) -> None:
    client = openai_client(daemon, "leaver")
    with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}],
            stream_options={"include_usage": True},
            extra_headers={"x-fake-usage": USAGE, "x-fake-scenario": "slow-stream", "x-fake-delay-ms": "300"}
    ) as response:
        next(response.iter_bytes())
    # Leaving the block closes the connection mid-stream.
    [row] = rows_of(daemon, "leaver", 1)
    assert row["outcome"] == "disconnected"
    assert row["estimated"] is True
    wait_until(lambda: cut(fake.requests()[0]), "the upstream to be cut")


def test_metrics_and_unknown_paths_share_the_listener(daemon: Daemon) -> None:
    with urllib.request.urlopen(f"http://{daemon.address}/metrics", timeout=10) as response:
        assert b"spendwall_calls_total" in response.read()
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{daemon.address}/v2/nothing", timeout=10)
    assert missing.value.code == 404
    assert json.loads(missing.value.read())["error"]["code"] == "not_found"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_answers_pass_unchanged_and_are_read(daemon: Daemon, fake: Fake, encoding: str) -> None:
    agent = f"zip-{encoding}"
    raw = openai_client(daemon, agent).chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=500, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-fake-usage": USAGE, "x-fake-encoding": encoding, "accept-encoding": encoding})
    assert raw.http_response.headers["content-encoding"] == encoding  # forwarded as the provider sent it
    assert hashlib.sha256(raw.http_response.read()).hexdigest() == last_exchange(fake)["response_sha256"]
    [row] = rows_of(daemon, agent, 1)
    assert usage_of(row) == expected("openai")
    assert "estimated" not in row


def test_an_answer_that_cannot_be_read_is_charged_its_worst_case(daemon: Daemon, fake: Fake) -> None:
    # An encoding the proxy cannot inflate: it passes through, and the call is charged as reserved.
    status, reserved = daemon.call("POST", "/v1/estimate", {
        "provider": "openai", "model": "gpt-4o",
        "request": {"model": "gpt-4o", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}})
    assert status == 200
    request = urllib.request.Request(
        f"http://{daemon.address}/agent/unreadable/v1/chat/completions", method="POST",
        data=json.dumps({"model": "gpt-4o", "max_tokens": 500,
                         "messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"content-type": "application/json", "x-fake-usage": USAGE, "x-fake-encoding": "x-unreadable"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["content-encoding"] == "x-unreadable"
        response.read()
    [row] = rows_of(daemon, "unreadable", 1)
    assert row["estimated"] is True
    assert row["output_tokens"] == 500
    assert row["cost_nanousd"] == reserved["max_cost_nanousd"]


def test_key_injection_replaces_the_placeholder_and_the_key_is_written_nowhere(fake: Fake) -> None:
    secret_openai, secret_anthropic = "sk-injected-0a1b2c3d4e5f", "sk-ant-injected-9z8y7x"
    keyed = Daemon(env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url,
                        "SPENDWALL_OPENAI_KEY": secret_openai, "SPENDWALL_ANTHROPIC_KEY": secret_anthropic,
                        "SPENDWALL_LOG_LEVEL": "trace"})
    try:
        fake.reset()
        base = f"http://{keyed.address}/agent/keyed"
        openai.OpenAI(api_key="spendwall", base_url=base + "/v1", max_retries=0).chat.completions.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        anthropic.Anthropic(api_key="spendwall", base_url=base, max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        # A client with a key of its own keeps it.
        openai.OpenAI(api_key="sk-own-key", base_url=base + "/v1", max_retries=0).chat.completions.create(
            model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
        sent = fake.requests()
        assert sent[0]["headers"]["authorization"] == f"Bearer {secret_openai}"
        # (Anthropic's client sends its key as x-api-key or, in recent versions, a bearer token.)
        assert secret_anthropic in (sent[1]["headers"].get("x-api-key"),
                                    sent[1]["headers"].get("authorization", "").removeprefix("Bearer ")), sent[1]
        assert sent[2]["headers"]["authorization"] == "Bearer sk-own-key"
        assert len(keyed.rows(3)) == 3
        keyed.stop()
        for name in os.listdir(keyed.data_dir) + ["../daemon.log"]:
            path = os.path.join(keyed.data_dir, name)
            if os.path.isfile(path):
                data = open(path, "rb").read()
                assert secret_openai.encode() not in data and secret_anthropic.encode() not in data, path
    finally:
        keyed.cleanup()


def test_cost_headers_when_asked_for(fake: Fake) -> None:
    costly = Daemon(files={"spendwall.toml": "[proxy]\ncost_headers = true\n"},
                    env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    try:
        fake.reset()
        client = openai_client(costly, "costly")
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", max_tokens=500, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-fake-usage": USAGE})
        assert hashlib.sha256(raw.http_response.read()).hexdigest() == last_exchange(fake)["response_sha256"]
        [row] = costly.rows(1)
        headers = raw.http_response.headers
        assert headers["x-spendwall-cost-usd"] == "%d.%09d" % divmod(row["cost_nanousd"], 1_000_000_000)
        assert int(headers["x-spendwall-input-tokens"]) == 1200 + 800
        assert int(headers["x-spendwall-output-tokens"]) == 350
        # Streams are not held back for headers.
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}]) as stream:
            assert "x-spendwall-cost-usd" not in stream.headers
            b"".join(stream.iter_bytes())
        assert len(costly.rows(2)) == 2
    finally:
        costly.cleanup()


def test_inject_mode_asks_for_usage_and_hides_the_extra_chunk(fake: Fake) -> None:
    injecting = Daemon(files={"spendwall.toml": '[proxy]\nopenai_stream_usage = "inject"\n'},
                       env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    try:
        fake.reset()
        client = openai_client(injecting, "injected")
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-fake-usage": USAGE}) as response:
            body = b"".join(response.iter_bytes())
        exchange = last_exchange(fake)
        assert json.loads(exchange["body"])["stream_options"] == {"include_usage": True}
        # The client gets every event the provider sent except the usage-only chunk.
        events = exchange["response_body"].encode().split(b"\n\n")
        kept = [e for e in events if b'"choices": []' not in e]
        assert len(kept) == len(events) - 1
        assert body == b"\n\n".join(kept)
        chunks = [json.loads(e[len(b"data: "):]) for e in body.split(b"\n\n") if e.startswith(b"data: {")]
        assert chunks and all(c["choices"] for c in chunks)
        # ...and the row has the provider's exact usage, not an estimate.
        [row] = injecting.rows(1)
        assert usage_of(row) == expected("openai") and "estimated" not in row
        # A caller that asked for usage itself gets the stream untouched.
        fake.reset()
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}],
                stream_options={"include_usage": True}) as response:
            assert hashlib.sha256(b"".join(response.iter_bytes())).hexdigest() == \
                last_exchange(fake)["response_sha256"]
    finally:
        injecting.cleanup()


def test_a_body_over_the_limit_gets_413_and_nothing_goes_upstream(fake: Fake) -> None:
    small = Daemon(files={"spendwall.toml": "[daemon]\nmax_body_bytes = 2048\n"},
                   env={"SPENDWALL_OPENAI_UPSTREAM": fake.url})
    try:
        fake.reset()
        with pytest.raises(openai.APIStatusError) as raised:
            openai_client(small, "big").chat.completions.create(
                model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "x" * 5000}])
        assert raised.value.status_code == 413
        assert raised.value.response.json()["error"]["code"] == "payload_too_large"
        assert fake.requests() == []
    finally:
        small.cleanup()


def test_sigterm_lets_a_stream_in_flight_finish_and_records_it(fake: Fake) -> None:
    draining = Daemon(env={"SPENDWALL_OPENAI_UPSTREAM": fake.url})
    try:
        fake.reset()
        client = openai_client(draining, "drain")
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o", max_tokens=500, stream=True, messages=[{"role": "user", "content": "hi"}],
                stream_options={"include_usage": True},
                extra_headers={"x-fake-usage": USAGE, "x-fake-scenario": "slow-stream", "x-fake-delay-ms": "100"}
        ) as response:
            chunks = response.iter_bytes()
            first = next(chunks)
            draining.proc.send_signal(signal.SIGTERM)
            body = first + b"".join(chunks)
        assert hashlib.sha256(body).hexdigest() == last_exchange(fake)["response_sha256"]
        assert draining.proc.wait(timeout=30) == 0
        # The row was committed before the daemon exited: the next start finds it.
        draining.stop()
        draining.start()
        [row] = draining.rows(1)
        assert row["agent"] == "drain" and row["outcome"] == "ok" and usage_of(row) == expected("openai")
    finally:
        draining.cleanup()
