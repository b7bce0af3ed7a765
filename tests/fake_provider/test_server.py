"""The fake provider speaks each wire format: parsed by hand and by the real openai/anthropic clients."""
from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

SERVER = Path(__file__).with_name("server.py")


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    port = int(line.split()[1])
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.fixture(autouse=True)
def reset(fake: str) -> None:
    _request(fake, "POST", "/_fake/reset")


def _request(base: str, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    host, port = base.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw


def _sse(raw: bytes) -> List[Tuple[Optional[str], str]]:
    """Parses an SSE body by hand into (event, data) pairs."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        out.append((event, "\n".join(data)))
    return out


def _requests(base: str) -> List[Dict[str, Any]]:
    status, _, raw = _request(base, "GET", "/_fake/requests")
    assert status == 200
    return json.loads(raw)


# ------------------------------------------------------------------------------- by hand

def test_port_line_and_sigterm_exit() -> None:
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.split()[0] == "PORT" and int(first.split()[1]) > 0
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_chat_json_usage_semantics(fake: str) -> None:
    status, _, raw = _request(fake, "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []},
                              {"x-fake-usage": "100,20,30,0,5", "x-fake-text": "hi there"})
    assert status == 200
    body = json.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "hi there"
    u = body["usage"]
    assert (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]) == (130, 20, 150)
    assert u["prompt_tokens_details"]["cached_tokens"] == 30
    assert u["completion_tokens_details"]["reasoning_tokens"] == 5


def test_chat_stream_without_and_with_usage_chunk(fake: str) -> None:
    _, h, raw = _request(fake, "POST", "/v1/chat/completions", {"model": "gpt-4o", "stream": True})
    assert h["content-type"].startswith("text/event-stream")
    events = _sse(raw)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.startswith("Hello from the fake provider")
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) >= 3

    _, _, raw = _request(fake, "POST", "/chat/completions",
                         {"model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}},
                         {"x-fake-usage": "3,4,5,0,1"})
    chunks = [json.loads(d) for _, d in _sse(raw)[:-1]]
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 8
    assert last["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])


def test_responses_stream_events(fake: str) -> None:
    _, _, raw = _request(fake, "POST", "/v1/responses", {"model": "gpt-4o", "input": "x", "stream": True},
                         {"x-fake-usage": "10,9,8,0,7"})
    events = _sse(raw)
    names = [e for e, _ in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert names.count("response.output_text.delta") >= 3
    for name, data in events:
        assert json.loads(data)["type"] == name
    usage = json.loads(events[-1][1])["response"]["usage"]
    assert usage["input_tokens"] == 18 and usage["input_tokens_details"]["cached_tokens"] == 8
    assert usage["output_tokens"] == 9 and usage["output_tokens_details"]["reasoning_tokens"] == 7


def test_anthropic_stream_events(fake: str) -> None:
    _, _, raw = _request(fake, "POST", "/v1/messages", {"model": "claude-opus-4-5", "max_tokens": 10,
                                                        "messages": [], "stream": True},
                         {"x-fake-usage": "10,9,8,7,0"})
    events = _sse(raw)
    names = [e for e, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(names)
    start = json.loads(events[0][1])["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"], start["cache_creation_input_tokens"]) == (10, 8, 7)
    delta = json.loads(events[names.index("message_delta")][1])
    assert delta["usage"]["output_tokens"] == 9


@pytest.mark.parametrize("code", [400, 401, 429, 500])
def test_error_shapes(fake: str, code: int) -> None:
    status, _, raw = _request(fake, "POST", "/v1/chat/completions", {"model": "m"}, {"x-fake-scenario": f"error-{code}"})
    assert status == code
    assert set(json.loads(raw)["error"]) >= {"message", "type", "param", "code"}
    status, h, raw = _request(fake, "POST", "/v1/messages", {"model": "m"}, {"x-fake-scenario": f"error-{code}"})
    assert status == code
    body = json.loads(raw)
    assert body["type"] == "error" and body["error"]["type"].endswith("_error") and "request-id" in h


def test_broken_stream_cuts_connection(fake: str) -> None:
    host, port = fake.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "stream": True}),
                 headers={"x-fake-scenario": "broken-stream"})
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    entry = _requests(fake)[-1]
    assert entry["complete"] is False and "[DONE]" not in entry["response_body"]


def test_slow_stream_delays(fake: str) -> None:
    t = time.monotonic()
    _request(fake, "POST", "/v1/messages", {"model": "m", "stream": True},
             {"x-fake-scenario": "slow-stream", "x-fake-delay-ms": "40"})
    assert time.monotonic() - t >= 0.3  # ~10 events, 40 ms apart


def test_introspection_hashes(fake: str) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hash me"}]}
    _, _, raw = _request(fake, "POST", "/v1/chat/completions", body)
    _, _, sraw = _request(fake, "POST", "/v1/chat/completions", dict(body, stream=True))
    entries = _requests(fake)
    assert len(entries) == 2
    assert entries[0]["sha256"] == hashlib.sha256(json.dumps(body).encode()).hexdigest()
    assert entries[0]["response_sha256"] == hashlib.sha256(raw).hexdigest()
    assert entries[1]["response_sha256"] == hashlib.sha256(sraw).hexdigest()
    assert entries[0]["method"] == "POST" and entries[0]["path"] == "/v1/chat/completions"
    assert entries[0]["headers"]["content-type"] == "application/json"
    _request(fake, "POST", "/_fake/reset")
    assert _requests(fake) == []


def test_models_embeddings_completions_count_tokens(fake: str) -> None:
    status, _, raw = _request(fake, "GET", "/v1/models")
    assert status == 200 and json.loads(raw)["object"] == "list"
    _, _, raw = _request(fake, "POST", "/v1/embeddings", {"model": "text-embedding-3-small", "input": ["a", "b"]},
                         {"x-fake-usage": "4,0,0,0,0"})
    emb = json.loads(raw)
    assert len(emb["data"]) == 2 and emb["usage"]["prompt_tokens"] == 4
    _, _, raw = _request(fake, "POST", "/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"})
    assert json.loads(raw)["object"] == "text_completion"
    _, _, raw = _request(fake, "POST", "/v1/messages/count_tokens", {"model": "m", "messages": []},
                         {"x-fake-usage": "42,0,0,0,0"})
    assert json.loads(raw) == {"input_tokens": 42}


# ------------------------------------------------------------------------------- real clients

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


def test_openai_client_all_endpoints(fake: str) -> None:
    client = openai.OpenAI(api_key="sk-fake", base_url=fake + "/v1", max_retries=0)
    h = {"x-fake-usage": "20,5,4,0,2"}
    chat = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                                          extra_headers=h)
    assert chat.usage.prompt_tokens == 24 and chat.usage.prompt_tokens_details.cached_tokens == 4
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=[], stream=True,
                                                 stream_options={"include_usage": True}, extra_headers=h))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    resp = client.responses.create(model="gpt-4o", input="hi", extra_headers=h)
    assert resp.output_text.startswith("Hello") and resp.usage.output_tokens_details.reasoning_tokens == 2
    events = list(client.responses.create(model="gpt-4o", input="hi", stream=True, extra_headers=h))
    assert events[-1].type == "response.completed" and events[-1].response.usage.input_tokens == 24
    comp = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="x", extra_headers=h)
    assert comp.usage.completion_tokens == 5
    emb = client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers=h)
    assert emb.usage.prompt_tokens == 24
    assert "gpt-4o" in [m.id for m in client.models.list()]
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=[], extra_headers={"x-fake-scenario": "error-429"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[], extra_headers={"x-fake-scenario": "error-500"})
    # openai 3.x wraps a cut stream in APIConnectionError; older versions surface the transport's error
    with pytest.raises(Exception) as info:
        list(client.chat.completions.create(model="gpt-4o", messages=[], stream=True,
                                            extra_headers={"x-fake-scenario": "broken-stream"}))
    assert isinstance(info.value, openai.APIConnectionError) or "incomplete chunked read" in str(info.value)


def test_anthropic_client_all_endpoints(fake: str) -> None:
    client = anthropic.Anthropic(api_key="sk-ant-fake", base_url=fake, max_retries=0)
    h = {"x-fake-usage": "20,5,4,3,0"}
    msg = client.messages.create(model="claude-opus-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                                 extra_headers=h)
    assert (msg.usage.input_tokens, msg.usage.output_tokens, msg.usage.cache_read_input_tokens,
            msg.usage.cache_creation_input_tokens) == (20, 5, 4, 3)
    events = list(client.messages.create(model="claude-opus-4-5", max_tokens=10, messages=[], stream=True,
                                         extra_headers=h))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    with client.messages.stream(model="claude-opus-4-5", max_tokens=10, messages=[], extra_headers=h) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("Hello") and final.usage.output_tokens == 5 and final.usage.input_tokens == 20
    count = client.messages.count_tokens(model="claude-opus-4-5", messages=[{"role": "user", "content": "x"}],
                                         extra_headers=h)
    assert count.input_tokens == 20
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model="m", max_tokens=1, messages=[], extra_headers={"x-fake-scenario": "error-429"})
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model="m", max_tokens=1, messages=[], extra_headers={"x-fake-scenario": "error-401"})
    # anthropic surfaces the transport's own error for a cut stream (no APIConnectionError wrapper)
    with pytest.raises(Exception) as info:
        list(client.messages.create(model="m", max_tokens=1, messages=[], stream=True,
                                    extra_headers={"x-fake-scenario": "broken-stream"}))
    assert isinstance(info.value, anthropic.APIConnectionError) or "incomplete chunked read" in str(info.value)


def test_gate_holds_recorded_requests_until_released(fake: str) -> None:
    """x-fake-gate: the request is recorded at once and answered only after its gate opens."""
    import threading

    answers: List[int] = []

    def call() -> None:
        status, _, _ = _request(fake, "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []},
                                {"x-fake-gate": "g1"})
        answers.append(status)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10  # only a guard against hanging: normally a few ms
    while len(_requests(fake)) < 3 and time.monotonic() < deadline:  # recorded while held
        time.sleep(0.01)
    assert len(_requests(fake)) == 3
    assert answers == [] and all(e["response_status"] is None for e in _requests(fake))
    # another gate and ungated requests are not held
    assert _request(fake, "POST", "/_fake/release?gate=other")[0] == 200
    assert _request(fake, "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []})[0] == 200
    assert answers == []
    assert _request(fake, "POST", "/_fake/release")[0] == 400
    assert _request(fake, "POST", "/_fake/release?gate=g1")[0] == 200
    for t in threads:
        t.join(10)
    assert answers == [200, 200, 200]
    # an open gate lets later requests through; a reset closes (and releases) every gate
    assert _request(fake, "POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": []},
                    {"x-fake-gate": "g1"})[0] == 200
