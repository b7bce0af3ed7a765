"""remaining()/estimate()/health() against the real daemon; pure units: usage normalisation, spool."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import threading

import openai

import spendwall
import spendwall.openai
from conftest import Daemon, Fake
from spendwall._client import AsyncUnixTransport, UnixTransport
from spendwall._spool import Spool
from spendwall._usage import normalize_anthropic, normalize_openai


def test_remaining_and_estimate(use_daemon: Daemon, fake: Fake) -> None:
    before = spendwall.remaining("helper-cap")
    assert before is not None and 0 < before <= 2_000_000_000
    assert spendwall.remaining({"agent": "helper-agent"}) == before
    assert spendwall.remaining("no-such-cap") is None
    client = spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0),
                                   agent="helper-agent")
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                   extra_headers={"x-fake-usage": "1000,1000,0,0,0"})
    after = spendwall.remaining("helper-cap")  # it sends this process's pending reports first
    # gpt-4o: $2.50 / M input, $10 / M output -> 1000 + 1000 tokens = $0.0125
    assert before - after == 12_500_000
    est = spendwall.estimate({"model": "gpt-4o", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    assert est["priced"] is True and est["max_output_tokens"] == 100
    assert est["max_cost_nanousd"] >= est["min_cost_nanousd"] >= 0
    assert spendwall.health()["status"] == "ok"


def test_transports_keep_alive_and_threads(use_daemon: Daemon) -> None:
    t = UnixTransport(use_daemon.socket)
    errors = []

    def hammer() -> None:
        for _ in range(50):
            status, body = t.request("GET", "/v1/health")
            if status != 200 or body.get("status") != "ok":
                errors.append(body)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert 1 <= len(t._idle) <= 8  # connections were reused, not one per request

    async def main() -> None:
        at = AsyncUnixTransport(use_daemon.socket)
        results = await asyncio.gather(*(at.request("GET", "/v1/health") for _ in range(40)))
        assert all(s == 200 for s, _ in results)
        status, body = await at.request("POST", "/v1/check", {"provider": "openai"})
        assert status == 400 and body["error"]["code"] == "bad_request"

    asyncio.run(main())


def test_daemon_errors_map_to_classes(use_daemon: Daemon) -> None:
    from spendwall._errors import error_from_body
    status, body = UnixTransport(use_daemon.socket).request("POST", "/v1/report",
                                                              {"reservation_id": "r_nope", "usage": {}})
    err = error_from_body(body, status)
    assert status == 404 and err.code == "unknown_reservation" and type(err) is spendwall.SpendwallError
    assert isinstance(error_from_body({"decision": "killed", "error": {"code": "killed", "message": "m"}}), spendwall.Killed)
    assert isinstance(error_from_body({"error": {"code": "approval_denied", "message": "m"}}), spendwall.ApprovalDenied)


def test_normalize_openai_shapes() -> None:
    chat = {"prompt_tokens": 130, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 30},
            "completion_tokens_details": {"reasoning_tokens": 5}}
    assert normalize_openai(chat) == {"input_tokens": 100, "output_tokens": 20, "cache_read_tokens": 30,
                                      "cache_write_tokens": 0, "reasoning_tokens": 5}
    resp = {"input_tokens": 18, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 7}}
    assert normalize_openai(resp) == {"input_tokens": 10, "output_tokens": 9, "cache_read_tokens": 8,
                                      "cache_write_tokens": 0, "reasoning_tokens": 7}
    assert normalize_openai({"prompt_tokens": 4, "total_tokens": 4})["input_tokens"] == 4  # embeddings
    assert normalize_openai(None) is None
    ant = {"input_tokens": 10, "output_tokens": 9, "cache_read_input_tokens": 8, "cache_creation_input_tokens": 7}
    assert normalize_anthropic(ant) == {"input_tokens": 10, "output_tokens": 9, "cache_read_tokens": 8,
                                        "cache_write_tokens": 7, "reasoning_tokens": 0}


def test_spool_skips_torn_line_and_is_private(tmp_path) -> None:
    s = Spool(str(tmp_path / "spool"), 10_000)
    assert s.append({"id": "a"}) and s.append({"id": "b"})
    with open(s.path, "ab") as f:
        f.write(b'{"id": "c", "us')  # a crash mid-write
    assert [i["id"] for i in s.pending()] == ["a", "b"]
    assert os.stat(s.directory).st_mode & 0o777 == 0o700


def test_no_provider_package_imported_by_spendwall() -> None:
    code = ("import sys, spendwall, spendwall.openai, spendwall.anthropic; "
            "assert 'openai' not in sys.modules and 'anthropic' not in sys.modules")
    import subprocess
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_check_body_fast_and_fallback_paths_agree(use_daemon: Daemon) -> None:
    """A body of plain JSON types is encoded once and spliced into the check; any other body
    (one-shot iterables, model objects) is copied into JSON types first. Both check the same
    request, and the daemon reserves the same for both."""
    from spendwall._core import flush
    from spendwall._wrap import _prepare, _State

    class Message:  # a pydantic-like object
        def model_dump(self, mode: str, exclude_unset: bool) -> dict:
            return {"role": "user", "content": "hi"}

    state = _State("openai", {"agent": "units-body"})
    plain = {"body": {"model": "gpt-4o", "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]}}
    odd = {"body": {"model": "gpt-4o", "max_tokens": 300, "messages": (m for m in [Message()])}}
    fast, _ = _prepare(state, "/chat/completions", plain, {})
    slow, _ = _prepare(state, "/chat/completions", odd, {})
    assert fast.request_json is not None and slow.request_json is None
    assert isinstance(odd["body"]["messages"], list)  # listed once: what goes upstream still has it
    assert json.loads(fast._check_bytes()) == json.loads(slow._check_bytes()) == {
        "provider": "openai", "model": "gpt-4o", "mode": "default", "path": "sdk", "agent": "units-body",
        "request": plain["body"]}
    for call in (fast, slow):
        call.check()
        assert call.reservation_id is not None
        call.report(None, 200, "ok")
    assert flush()
    rows = use_daemon.rows("units-body", 2)
    assert len(rows) == 2 and rows[0]["reserved_nanousd"] == rows[1]["reserved_nanousd"] > 0

