"""Alerts out, against real local servers: the real daemon posts Slack Block Kit messages and
signed JSON webhooks to a local HTTP server; injected failures (500 then 200, 401, a stalled
server) exercise the backoff and the dead letters; the rate limit holds a flapping cap to one
alert. Backoff delays are configured in milliseconds, and every wait polls with a deadline."""
from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import time
from typing import Any, Callable, Dict, Iterator, List

import pytest
from conftest import REPO, Daemon, wait_until

from tests.integrations.receiver import Receiver

HOOK_SECRET = "hook-signing-secret"


def alerts_toml(receiver: Receiver, *, attempts: int = 4, timeout: str = "5s", extra: str = "") -> str:
    return f"""
[dispatch]
base_delay = "20ms"
max_delay = "80ms"
max_attempts = {attempts}
rate_limit_window = "1h"
panel_url = "http://127.0.0.1:8787/"

[[transport]]
name = "slack"
type = "slack"
url_env = "TEST_SLACK_URL"
timeout = "{timeout}"

[[transport]]
name = "hook"
type = "webhook"
url = "{receiver.url('/hook')}"
secret_env = "TEST_HOOK_SECRET"
timeout = "{timeout}"

[[route]]
kinds = ["KillSwitch", "CapBlocked"]
transports = ["slack", "hook"]
{extra}
"""


CAPS = """
[[cap]]
name = "zero"
scope = { agent = "flapper" }
window = "1d"
limit_usd = 0.0
action = "block"
"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def make_daemon(receiver: Receiver) -> Iterator[Callable[..., Daemon]]:
    made: List[Daemon] = []

    def make(**kwargs: Any) -> Daemon:
        d = Daemon(files={"alerts.toml": alerts_toml(receiver, **kwargs), "caps.toml": CAPS},
                   env={"TEST_SLACK_URL": receiver.url("/slack"), "TEST_HOOK_SECRET": HOOK_SECRET})
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


def kill(daemon: Daemon, on: bool = True) -> None:
    status, body = daemon.call("POST", "/v1/kill", {"on": on} if not on else {})
    assert status == 200, body


def verify_signature(header: str, body: bytes) -> None:
    parts = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(HOOK_SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 300


def alerts(daemon: Daemon, status: str = "dead") -> Dict[str, Any]:
    code, body = daemon.call("GET", f"/v1/alerts?status={status}")
    assert code == 200, body
    return body


def test_webhook_and_slack_receive_a_signed_payload_and_block_kit(make_daemon: Callable[..., Daemon],
                                                                   receiver: Receiver) -> None:
    daemon = make_daemon()
    kill(daemon)
    wait_until(lambda: receiver.received("/hook") and receiver.received("/slack"), "both posts")
    hook = receiver.received("/hook")[0]
    assert hook["headers"]["content-type"] == "application/json"
    assert hook["headers"]["x-spendwall-event"] == "KillSwitch"
    verify_signature(hook["headers"]["x-spendwall-signature"], hook["body"])
    payload = receiver.json("/hook")[0]
    assert payload["kind"] == "KillSwitch" and payload["data"]["on"] is True
    assert payload["summary"].startswith("Kill switch global turned on")
    slack = receiver.json("/slack")[0]
    assert slack["text"].startswith("Kill switch")
    kinds = [b["type"] for b in slack["blocks"]]
    assert kinds[0] == "header" and "actions" in kinds
    button = [b for b in slack["blocks"] if b["type"] == "actions"][0]["elements"][0]
    assert button["url"] == "http://127.0.0.1:8787/"
    # The Slack URL is a secret: it never reaches the log.
    daemon.stop()
    assert receiver.url("/slack") not in open(daemon.log_path).read()


def test_a_500_then_200_is_retried_and_delivered(make_daemon: Callable[..., Daemon], receiver: Receiver) -> None:
    receiver.script["/hook"] = [500, 503]
    daemon = make_daemon()
    kill(daemon)
    wait_until(lambda: receiver.received("/hook", 200), "the third try to succeed")
    assert [r["status"] for r in receiver.received("/hook")] == [500, 503, 200]
    assert alerts(daemon)["dead_letters"] == []
    assert alerts(daemon)["counts"]["retried"] >= 2


def test_a_401_is_permanent_dead_lettered_and_retried_by_the_cli(make_daemon: Callable[..., Daemon],
                                                                  receiver: Receiver) -> None:
    receiver.script["/hook"] = [401]
    daemon = make_daemon()
    kill(daemon)
    wait_until(lambda: alerts(daemon)["dead_letters"], "a dead letter")
    letter = alerts(daemon)["dead_letters"][0]
    assert letter["transport"] == "hook" and letter["kind"] == "KillSwitch"
    assert letter["attempts"] == 1 and "HTTP 401" in letter["last_error"]
    assert len(receiver.received("/hook")) == 1
    ls = subprocess.run([cli(), "alerts", "ls"], env=daemon.env, capture_output=True, text=True)
    assert ls.returncode == 0 and "HTTP 401" in ls.stdout and "spendwall alerts retry" in ls.stdout
    retry = subprocess.run([cli(), "alerts", "retry", str(letter["id"])], env=daemon.env, capture_output=True, text=True)
    assert retry.returncode == 0, retry.stderr
    assert receiver.json("/hook")[0]["kind"] == "KillSwitch"
    assert alerts(daemon)["dead_letters"] == []
    assert alerts(daemon, "retried")["dead_letters"][0]["id"] == letter["id"]
    again = subprocess.run([cli(), "alerts", "retry", str(letter["id"])], env=daemon.env, capture_output=True, text=True)
    assert again.returncode == 1 and "already delivered" in again.stderr


def test_timeouts_back_off_then_dead_letter(make_daemon: Callable[..., Daemon], receiver: Receiver) -> None:
    receiver.stall["/hook"] = 30
    daemon = make_daemon(attempts=3, timeout="300ms")
    kill(daemon)
    wait_until(lambda: alerts(daemon)["dead_letters"], "the timeouts to exhaust the retries")
    letter = alerts(daemon)["dead_letters"][0]
    assert letter["attempts"] == 3 and "timed out" in letter["last_error"]
    assert len(receiver.received("/hook")) == 3
    # Slack, on its own queue, was not held up by the stalled webhook.
    assert receiver.received("/slack", 200)


def test_a_flapping_cap_sends_one_alert_per_window(make_daemon: Callable[..., Daemon], receiver: Receiver) -> None:
    daemon = make_daemon()
    for _ in range(5):
        status, body = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o-mini",
                                                          "agent": "flapper", "request": {"max_tokens": 10}})
        assert status == 200 and body["decision"] == "block", body
    kill(daemon)  # queued after the blocks on the same transport: once it arrives, they all have
    wait_until(lambda: any(p["kind"] == "KillSwitch" for p in receiver.json("/hook")), "the kill switch alert")
    blocked = [p for p in receiver.json("/hook") if p["kind"] == "CapBlocked"]
    assert len(blocked) == 1 and blocked[0]["data"]["cap"]["name"] == "zero"
    assert alerts(daemon)["counts"]["suppressed"] == 4


def test_alerts_test_sends_through_one_transport_and_names_unknown_ones(make_daemon: Callable[..., Daemon],
                                                                         receiver: Receiver) -> None:
    daemon = make_daemon()
    ok = subprocess.run([cli(), "alerts", "test", "hook"], env=daemon.env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert receiver.json("/hook")[0]["kind"] == "AlertTest"
    bad = subprocess.run([cli(), "alerts", "test", "nope"], env=daemon.env, capture_output=True, text=True)
    assert bad.returncode == 1 and "no transport is named \"nope\"" in bad.stderr and "hook" in bad.stderr
    receiver.script["/hook"] = [403]
    refused = subprocess.run([cli(), "alerts", "test", "hook"], env=daemon.env, capture_output=True, text=True)
    assert refused.returncode == 1 and "HTTP 403" in refused.stderr
    status, body = daemon.call("POST", "/v1/alerts/test", {"wrong": 1})
    assert status == 400 and body["error"]["code"] == "bad_request"


def test_a_bad_alerts_toml_names_file_and_line() -> None:
    d = None
    try:
        with pytest.raises(RuntimeError) as info:
            d = Daemon(files={"alerts.toml": '[[route]]\nkinds = ["Nope"]\ntransports = ["x"]\n'})
        assert "alerts.toml:2" in str(info.value) and "unknown event kind Nope" in str(info.value)
    finally:
        if d:
            d.cleanup()


def cli() -> str:
    return os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")


def test_alerts_toml_reloads_live_and_a_bad_one_keeps_the_running_routes(make_daemon: Callable[..., Daemon],
                                                                         receiver: Receiver) -> None:
    daemon = make_daemon()
    path = os.path.join(daemon.config_dir, "alerts.toml")

    def reloaded(count: int) -> Callable[[], bool]:
        return lambda: "configuration reloaded" in open(daemon.log_path).read() and \
            open(daemon.log_path).read().count("configuration reloaded") >= count

    # Route kill switches to a new webhook path only: the next one goes there and nowhere else.
    with open(path, "w") as f:
        f.write(alerts_toml(receiver).replace("/hook", "/hook-2").replace('transports = ["slack", "hook"]',
                                                                          'transports = ["hook"]'))
    wait_until(reloaded(1), "the reload of alerts.toml")
    kill(daemon)
    wait_until(lambda: receiver.received("/hook-2"), "the post to the reloaded webhook")
    assert receiver.received("/hook") == [] and receiver.received("/slack") == []

    # A broken file is refused with its line; the routes in force stay.
    with open(path, "w") as f:
        f.write("[[transport]]\nname = 1\n")
    wait_until(lambda: "reload failed" in open(daemon.log_path).read(), "the refused reload")
    status, health = daemon.call("GET", "/v1/health")
    assert status == 200 and "alerts.toml" in str(health)
    kill(daemon, on=False)
    wait_until(lambda: len(receiver.received("/hook-2")) == 2, "the second post to the reloaded webhook")
    assert receiver.received("/slack") == []
