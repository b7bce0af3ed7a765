"""A client wrapped by the Python SDK whose base URL is Spendwall's own proxy (as under
`spendwall run`): each call is checked and recorded once, by the SDK, and the proxy passes it
through. A reservation header the daemon does not hold changes nothing: the proxy checks the
call itself."""
from __future__ import annotations

from typing import Iterator

import openai
import pytest

import spendwall
import spendwall.openai
from conftest import Daemon, Fake, wait_until


@pytest.fixture(scope="module")
def daemon(fake: Fake) -> Iterator[Daemon]:
    d = Daemon(env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    yield d
    d.cleanup()


def test_a_wrapped_client_behind_the_proxy_is_counted_once(daemon: Daemon, fake: Fake,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset()
    monkeypatch.setenv("SPENDWALL_SOCKET", daemon.socket)
    monkeypatch.setenv("SPENDWALL_DATA_DIR", daemon.data_dir)
    monkeypatch.setenv("SPENDWALL_CONFIG_DIR", daemon.config_dir)
    client = spendwall.openai.wrap(
        openai.OpenAI(api_key="sk-test", base_url=f"http://{daemon.address}/agent/twice/v1", max_retries=0),
        agent="twice")
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"x-fake-usage": "100,10"})
    spendwall.flush()
    rows = [r for r in daemon.rows() if r["agent"] == "twice"]
    assert [r["path"] for r in rows] == ["sdk", "sdk", "sdk"]
    assert all(r["input_tokens"] == 100 and r["output_tokens"] == 10 for r in rows)
    sent = [r for r in fake.requests() if r["path"].endswith("/chat/completions")]
    assert len(sent) == 3
    assert all("x-spendwall-reservation" not in r["headers"] for r in sent)  # the proxy strips it


def test_a_reservation_the_daemon_does_not_hold_is_checked_by_the_proxy(daemon: Daemon, fake: Fake) -> None:
    fake.reset()
    client = openai.OpenAI(api_key="sk-test", base_url=f"http://{daemon.address}/agent/forger/v1", max_retries=0)
    client.chat.completions.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}],
                                   extra_headers={"x-spendwall-reservation": "r_00000000000000000000000000000000",
                                                  "x-fake-usage": "100,10"})
    wait_until(lambda: any(r["agent"] == "forger" for r in daemon.rows()), "the proxy's row")
    forged = [r for r in daemon.rows() if r["agent"] == "forger"]
    assert [r["path"] for r in forged] == ["proxy"] and forged[0]["input_tokens"] == 100


def test_a_wrapped_client_in_a_session_is_held_to_the_session_budget(daemon: Daemon, fake: Fake,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset()
    status, created = daemon.call("POST", "/v1/sessions", {"command": ["agent.py"], "budget_nanousd": 10_000_000})
    assert status == 200, created
    sid = created["session"]["id"]
    monkeypatch.setenv("SPENDWALL_SOCKET", daemon.socket)
    monkeypatch.setenv("SPENDWALL_DATA_DIR", daemon.data_dir)
    monkeypatch.setenv("SPENDWALL_CONFIG_DIR", daemon.config_dir)
    monkeypatch.setenv("SPENDWALL_SESSION", sid)  # what `spendwall run` sets
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-test", base_url=created["openai_base_url"],
                                                 max_retries=0))
    # gpt-4o, 300 output tokens reserved: $0.003 a call against a $0.01 session budget.
    allowed, refused = 0, 0
    for _ in range(6):
        try:
            client.chat.completions.create(model="gpt-4o", max_tokens=300,
                                           messages=[{"role": "user", "content": "hi"}],
                                           extra_headers={"x-fake-usage": "0,300"})
            allowed += 1
        except spendwall.SpendwallError:
            refused += 1
    spendwall.flush()
    rows = [r for r in daemon.rows() if r.get("session") == sid and r["outcome"] == "ok"]
    assert allowed == 3 and refused == 3
    assert len(rows) == 3 and all(r["path"] == "sdk" for r in rows)  # once each, by the SDK
    assert sum(r["cost_nanousd"] for r in rows) <= 10_000_000


def test_a_reservation_outside_the_session_does_not_pass_its_path(daemon: Daemon, fake: Fake,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset()
    status, created = daemon.call("POST", "/v1/sessions", {"command": ["agent.py"], "budget_nanousd": 1})
    assert status == 200, created
    monkeypatch.setenv("SPENDWALL_SOCKET", daemon.socket)
    monkeypatch.setenv("SPENDWALL_DATA_DIR", daemon.data_dir)
    monkeypatch.setenv("SPENDWALL_CONFIG_DIR", daemon.config_dir)
    monkeypatch.delenv("SPENDWALL_SESSION", raising=False)
    client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-test", base_url=created["openai_base_url"],
                                                 max_retries=0))
    # The SDK's own check passes (no session), but the proxy checks the session's $0.000000001.
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o", max_tokens=300, messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 402
    assert [r for r in fake.requests() if r["path"].endswith("/chat/completions")] == []
