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
