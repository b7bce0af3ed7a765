"""`[estimate] anthropic_count_tokens = true`: Anthropic checks take the input count from the
provider's count_tokens endpoint (the fake here), and fall back to the local estimate when it is
slower than 50 ms or fails."""
from __future__ import annotations

import json
from typing import Iterator

import pytest

from tests.conftest import Daemon, Fake

REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 10,
           "messages": [{"role": "user", "content": "How many tokens is this? " * 20}]}


@pytest.fixture(scope="module")
def daemon(fake: Fake) -> Iterator[Daemon]:
    settings = f'[estimate]\nanthropic_count_tokens = true\n[upstream]\nanthropic = "{fake.url}"\n'
    d = Daemon(files={"spendwall.toml": settings}, env={"SPENDWALL_ANTHROPIC_KEY": "sk-ant-test"})
    yield d
    d.cleanup()


def reserved_input(daemon: Daemon) -> int:
    status, answer = daemon.call("POST", "/v1/check", {"provider": "anthropic", "model": "claude-sonnet-4-5",
                                                        "request": REQUEST})
    assert status == 200 and answer["decision"] == "allow", answer
    # claude-sonnet-4-5: $3 in, $15 out per MTok; 10 output tokens reserved.
    return (answer["reserved_nanousd"] - 10 * 15_000) // 3_000


def test_the_providers_count_is_used_when_it_answers_in_time(daemon: Daemon, fake: Fake) -> None:
    fake.reset()
    fake.defaults(usage="1234,0")
    assert reserved_input(daemon) == 1234
    sent = [r for r in fake.requests() if r["path"].endswith("/v1/messages/count_tokens")]
    assert len(sent) == 1
    assert sent[0]["headers"].get("x-api-key") == "sk-ant-test"
    # Only the fields count_tokens takes (max_tokens would be refused).
    assert set(json.loads(sent[0]["body"])) == {"model", "messages"}


def test_a_slow_or_failing_count_falls_back_to_the_local_estimate(daemon: Daemon, fake: Fake) -> None:
    fake.reset()
    fake.defaults(usage="1234,0", delay_ms="400")
    slow = reserved_input(daemon)
    fake.reset()
    fake.defaults(scenario="error-500")
    failing = reserved_input(daemon)
    assert slow == failing != 1234
    assert 150 < slow < 400  # the local estimate of ~500 bytes of text, times Claude's factor
