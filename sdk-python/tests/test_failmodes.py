"""Fail-open with spooling and replay across a daemon crash; strict mode; the spool's cap."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import warnings
from collections import Counter
from typing import Iterator

import anthropic
import openai
import pytest

import spendwall
import spendwall._config as cfg
import spendwall.anthropic
import spendwall.openai
from conftest import Daemon, Fake, expected, usage_of, wait_until

MSG = [{"role": "user", "content": "hi"}]


def spool_file() -> str:
    return os.path.join(os.environ["SPENDWALL_DATA_DIR"], "spool", "reports.jsonl")


def spool_lines() -> list:
    try:
        with open(spool_file()) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


@pytest.fixture
def own_daemon(monkeypatch: pytest.MonkeyPatch, fake: Fake) -> Iterator[Daemon]:
    d = Daemon(caps="").start()
    monkeypatch.setenv("SPENDWALL_SOCKET", d.socket)
    cfg.reset()
    fake.reset()
    yield d
    d.cleanup()


def test_daemon_killed_mid_run_then_replayed_without_duplicates(own_daemon: Daemon, fake: Fake, agent: str) -> None:
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                   agent=agent)
    sent = []

    def call(i: int, **headers: str) -> None:
        u = f"{100 + i},{i + 1},{i},0,0"
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": u, **headers})
        sent.append(u)

    for i in range(5):
        call(i)
    assert len(own_daemon.rows(agent, 5)) == 5

    # a call in flight (checked, held at the provider) when the daemon dies
    in_flight = threading.Thread(target=call, args=(5,), kwargs={"x-fake-gate": agent})
    in_flight.start()
    wait_until(lambda: len(fake.requests()) == 6, "the in-flight call to reach the provider")
    own_daemon.stop(signal.SIGKILL)
    fake.release(agent)
    for i in range(6, 11):  # the daemon is gone: calls keep working
        call(i)
    with client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                        extra_headers={"x-fake-usage": "300,30,3,0,0"}) as s:
        assert len(list(s)) > 0
    sent.append("300,30,3,0,0")

    async def async_calls() -> None:  # and so do asyncio ones
        aclient = spendwall.openai.wrap(openai.AsyncOpenAI(api_key="sk-fake", base_url=fake.url + "/v1",
                                                           max_retries=0), agent=agent)
        await aclient.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": "400,40,4,0,0"})
        sent.append("400,40,4,0,0")
        stream = await aclient.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                       extra_headers={"x-fake-usage": "500,50,5,0,0"})
        assert len([c async for c in stream]) > 0
        sent.append("500,50,5,0,0")
        await aclient.close()

    asyncio.run(async_calls())
    in_flight.join(10)
    assert len(sent) == 14
    assert spendwall.flush()  # reports go in the background: every one is delivered or spooled now
    spooled = spool_lines()
    assert len(spooled) == 9
    assert sum(1 for item in spooled if item["reservation_id"]) == 1  # the in-flight one had a reservation
    backup = spool_file() + ".copy"
    shutil.copy(spool_file(), backup)

    own_daemon.start()  # same config, data dir and socket
    client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": "1,1,0,0,0"})
    sent.append("1,1,0,0,0")
    # the daemon answered that call's check: the SDK replays the spool by itself, in the background
    wait_until(lambda: spool_lines() == [], "the spool to be replayed")

    rows = own_daemon.rows(agent, 15)
    assert len(rows) == 15
    assert len({r["request_id"] for r in rows}) == 15
    assert Counter(json.dumps(usage_of(r), sort_keys=True) for r in rows) == \
        Counter(json.dumps(expected(u, "openai"), sort_keys=True) for u in sent)
    assert all(r["outcome"] == "ok" for r in rows)

    # replaying the same reports again is idempotent
    os.replace(backup, spool_file())
    counts = spendwall.replay_spool()
    assert counts == {"recorded": 0, "duplicate": 9, "rejected": 0, "pending": 0}
    assert len(own_daemon.rows(agent)) == 15


def test_fail_open_without_daemon_spools(fake: Fake, agent: str) -> None:
    fake.reset()
    client = spendwall.anthropic.wrap(anthropic.Anthropic(api_key="k", base_url=fake.url, max_retries=0), agent=agent)
    msg = client.messages.create(model="claude-opus-4-5", max_tokens=8, messages=MSG,
                                 extra_headers={"x-fake-usage": "5,4,3,2,0"})
    assert msg.content[0].text.startswith("Hello")
    assert spendwall.flush()
    [item] = spool_lines()
    assert item["usage"] == expected("5,4,3,2,0", "anthropic")
    assert (item["provider"], item["model"], item["agent"], item["reservation_id"]) == \
        ("anthropic", "claude-opus-4-5", agent, None)
    assert oct(os.stat(spool_file()).st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("how", ["configure", "env", "per-call", "wrap"])
def test_strict_without_daemon_raises_before_upstream(fake: Fake, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    fake.reset()
    wrap_mode = None
    per_call = {}
    if how == "configure":
        spendwall.configure(strict=True)
    elif how == "env":
        monkeypatch.setenv("SPENDWALL_STRICT", "1")
    elif how == "per-call":
        per_call = {"spendwall": {"mode": "strict"}}
    else:
        wrap_mode = "strict"
    client = spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0), mode=wrap_mode)
    with pytest.raises(spendwall.DaemonUnavailable) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSG, **per_call)
    assert isinstance(info.value, spendwall.SpendwallError)
    with pytest.raises(spendwall.DaemonUnavailable):
        client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True, **per_call)
    assert fake.requests() == []
    assert spool_lines() == []


def test_strict_async_without_daemon(fake: Fake) -> None:
    fake.reset()
    spendwall.configure(strict=True)

    async def main() -> None:
        client = spendwall.anthropic.wrap(anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0))
        with pytest.raises(spendwall.DaemonUnavailable):
            await client.messages.create(model="claude-opus-4-5", max_tokens=8, messages=MSG)
        with pytest.raises(spendwall.DaemonUnavailable):
            async with client.messages.stream(model="claude-opus-4-5", max_tokens=8, messages=MSG):
                pass
        await client.close()

    asyncio.run(main())
    assert fake.requests() == []


def test_spool_cap_warns_and_drops(fake: Fake) -> None:
    spendwall.configure(spool_max_bytes=700)
    client = spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0), agent="cap")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(6):
            client.chat.completions.create(model="gpt-4o", messages=MSG)  # the calls themselves still work
        assert spendwall.flush()
    assert 1 <= len(spool_lines()) < 6
    assert os.path.getsize(spool_file()) <= 700
    assert len([w for w in caught if issubclass(w.category, spendwall.SpoolFull)]) == 1
