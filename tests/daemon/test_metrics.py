"""`/metrics` on the daemon's loopback listener parses as Prometheus text (prometheus_client's
own parser) and its counters agree with what the socket API answered. The real daemon binary
runs on a temporary socket and a free loopback port."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator

import pytest
from conftest import Daemon
from prometheus_client.parser import text_string_to_metric_families

CAPS = """
[[cap]]
name = "one-dollar"
scope = { global = true }
window = "1d"
limit_usd = 1.0
action = "block"
"""


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    d = Daemon(files={"caps.toml": CAPS})
    yield d
    d.cleanup()


def scrape(address: str) -> Dict[str, Any]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: Dict[str, Any], family: str, name: str, **labels: str) -> float:
    matches = [s.value for s in families[family].samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (family, name, labels, families[family].samples)
    return matches[0]


def test_metrics_parse_and_agree_with_the_socket_api(daemon: Daemon) -> None:
    address = daemon.call("GET", "/v1/health")[1]["loopback"]
    assert address.startswith("127.0.0.1:")
    request = {"max_tokens": 5000, "messages": [{"role": "user", "content": "hi"}]}
    costs = []
    for agent, output in (("alpha", 1000), ("alpha", 3000), ("beta", 500)):
        status, check = daemon.call("POST", "/v1/check",
                                    {"provider": "openai", "model": "gpt-4o", "agent": agent, "request": request})
        assert status == 200 and check["decision"] == "allow"
        status, report = daemon.call("POST", "/v1/report", {
            "reservation_id": check["reservation_id"],
            "usage": {"input_tokens": 100, "output_tokens": output, "cache_read_tokens": 40}})
        assert status == 200
        costs.append((agent, report["cost_nanousd"]))
    # One reservation left open: in flight until it is reported.
    _, open_check = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o", "agent": "gamma"})
    assert open_check["decision"] == "allow"
    # An unknown agent of a blocked call: its cap would be exceeded.
    _, blocked = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o", "agent": "delta",
                                                   "request": {"max_tokens": 10_000_000}})
    assert blocked["decision"] == "block"

    families = scrape(address)
    # prometheus_client strips the _total suffix from counter family names.
    for agent in ("alpha", "beta"):
        spent = sum(cost for a, cost in costs if a == agent)
        value = sample(families, "spendwall_spend_nanousd", "spendwall_spend_nanousd_total", agent=agent, model="gpt-4o")
        assert value == spent
    assert sample(families, "spendwall_calls", "spendwall_calls_total", agent="alpha", outcome="ok") == 2
    assert sample(families, "spendwall_calls", "spendwall_calls_total", agent="delta", outcome="blocked") == 1
    assert sample(families, "spendwall_decisions", "spendwall_decisions_total", decision="allow") == 4
    assert sample(families, "spendwall_decisions", "spendwall_decisions_total", decision="block") == 1
    assert sample(families, "spendwall_reservations_in_flight", "spendwall_reservations_in_flight") == 1
    assert families["spendwall_check_duration_seconds"].type == "histogram"
    assert sample(families, "spendwall_check_duration_seconds", "spendwall_check_duration_seconds_count") == 5
    assert families["spendwall_ledger_write_duration_seconds"].type == "histogram"
    assert sample(families, "spendwall_events_dropped", "spendwall_events_dropped_total") == 0
    assert families["spendwall_spend_nanousd"].documentation.startswith("Spend recorded in the ledger")


def test_other_paths_get_a_structured_error(daemon: Daemon) -> None:
    address = daemon.call("GET", "/v1/health")[1]["loopback"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{address}/v1/nope", timeout=10)
    assert missing.value.code == 404
    assert json.loads(missing.value.read())["error"]["code"] == "not_found"
