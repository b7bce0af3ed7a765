"""Reports go in the background: a call returns once its answer is in hand; one thread sends
the reports (several at once through POST /v1/reports); `spendwall.flush()` and the
interpreter's exit wait for them; what cannot be delivered is spooled."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any, Dict, List, Tuple

import anthropic
import openai
import pytest

import spendwall
import spendwall._config as cfg
import spendwall._core as core
import spendwall.anthropic
import spendwall.openai
from conftest import REPO, Daemon, Fake, FakeDaemon, expected, usage_of, wait_until

MSG = [{"role": "user", "content": "hi"}]


class HoldingDaemon(FakeDaemon):
    """A stand-in daemon that holds every report's answer until `release()`."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.issued: List[str] = []  # the reservation ids of the checks it allowed, in order

    def answer(self, method: str, path: str, body: Any) -> Tuple[int, Dict[str, Any]]:
        if path == "/v1/check":
            status, answer = super().answer(method, path, body)
            self.issued.append(answer["reservation_id"])
            return status, answer
        if path == "/v1/reports":
            self.gate.wait(60)
            return 200, {"results": [{"id": r["id"], "result": "recorded", "cost_nanousd": 1} for r in body["reports"]]}
        if path == "/v1/report":
            self.gate.wait(60)
        return super().answer(method, path, body)

    def report_requests(self) -> List[Tuple[str, Any]]:
        return [(p, b) for m, p, b in self.requests if p in ("/v1/report", "/v1/reports")]

    def release(self) -> None:
        self.gate.set()


def test_call_returns_before_its_report_is_answered_then_flush_waits(root: str, monkeypatch: pytest.MonkeyPatch,
                                                                     fake: Fake, agent: str) -> None:
    hd = HoldingDaemon(root)
    try:
        monkeypatch.setenv("SPENDWALL_SOCKET", hd.path)
        cfg.reset()
        client = spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0),
                                       agent=agent)
        done = threading.Event()

        def first() -> None:
            client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": "1,1,0,0,0"})
            done.set()

        threading.Thread(target=first, daemon=True).start()
        # the call returns while the daemon still holds its report
        wait_until(done.is_set, "the call to return while its report is held")
        wait_until(lambda: len(hd.report_requests()) == 1, "the report to reach the daemon")
        assert not hd.gate.is_set()
        assert spendwall.flush(timeout=0.2) is False  # the report is still unanswered

        # more calls meanwhile, of every kind: queued behind the held report
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": "2,2,0,0,0"})
        assert len(list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                       extra_headers={"x-fake-usage": "3,3,0,0,0"}))) > 0

        async def in_asyncio() -> None:
            c = spendwall.anthropic.wrap(anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0),
                                         agent=agent)
            await c.messages.create(model="claude-sonnet-4-5", max_tokens=8, messages=MSG,
                                    extra_headers={"x-fake-usage": "4,4,0,0,0"})
            await c.close()

        asyncio.run(in_asyncio())
        assert len(hd.report_requests()) == 1 and core.reporter().pending() == 4
        hd.release()
        assert spendwall.flush() is True and core.reporter().pending() == 0
        (p1, single), (p2, batch) = hd.report_requests()
        assert (p1, p2) == ("/v1/report", "/v1/reports")  # the three queued meanwhile went out together
        reported = [single["reservation_id"]] + [r["reservation_id"] for r in batch["reports"]]
        assert reported == hd.issued and len(set(hd.issued)) == 4  # each call once, in order
        assert [r["usage"]["input_tokens"] for r in batch["reports"]] == [2, 3, 4]
        assert all(r["id"] == r["reservation_id"] and r["outcome"] == "ok" for r in batch["reports"])
        assert batch["reports"][2]["provider"] == "anthropic"
    finally:
        hd.release()
        hd.close()


def test_queued_reports_batch_against_the_real_daemon(use_daemon: Daemon, fake: Fake) -> None:
    """Reports queued together settle their reservations through POST /v1/reports: the
    ledger rows match the usage exactly and nothing stays reserved."""
    agent = "helper-agent"  # caps.toml in conftest: helper-cap, $2 a day
    before = spendwall.remaining("helper-cap")
    rows_before = len(use_daemon.rows(agent))
    client = spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0), agent=agent)
    sent = ["100,10,0,0,0", "200,20,50,0,5", "300,30,0,0,0"]
    with core.reporter().paused():
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": sent[0]})
        client.responses.create(model="gpt-4o", input="hi", extra_headers={"x-fake-usage": sent[1]})
        list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                            extra_headers={"x-fake-usage": sent[2]}))
        assert core.reporter().pending() == 3
        assert len(use_daemon.rows(agent)) == rows_before  # nothing reported yet: the calls did not wait
    assert spendwall.flush()
    rows = use_daemon.rows(agent, rows_before + 3)[rows_before:]
    assert [usage_of(r) for r in rows] == [expected(u, "openai") for u in sent]
    assert all(r["outcome"] == "ok" and r["reservation_id"].startswith("r_") for r in rows)
    # every reservation settled to its real cost: the cap's remaining budget fell by exactly that
    assert before - spendwall.remaining("helper-cap") == sum(r["cost_nanousd"] for r in rows)


SCRIPT = """
import os, sys
sys.path.insert(0, {src!r})
import openai, spendwall, spendwall.openai, spendwall._core as core
core.EXIT_TIMEOUT = float(os.environ.get("EXIT_TIMEOUT", "10"))
client = spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url={url!r}, max_retries=0), agent={agent!r})
for i in range(3):
    client.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "x"}}],
                                   extra_headers={{"x-fake-usage": f"{{i + 1}},1,0,0,0"}})
print("calls done", core.reporter().pending(), flush=True)
# no flush(): the interpreter's exit sends (or spools) what is queued
"""


def run_script(fake: Fake, agent: str, env: Dict[str, str]) -> str:
    src = str(REPO / "sdk-python" / "src")
    code = textwrap.dedent(SCRIPT.format(src=src, url=fake.url + "/v1", agent=agent))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_exit_delivers_queued_reports(use_daemon: Daemon, fake: Fake, agent: str) -> None:
    run_script(fake, agent, dict(os.environ))
    rows = use_daemon.rows(agent, 3)
    assert [r["input_tokens"] for r in rows] == [1, 2, 3]


def test_exit_spools_what_the_daemon_does_not_answer(root: str, fake: Fake, agent: str, tmp_path: Any) -> None:
    """A daemon that never answers the reports: at exit the SDK waits EXIT_TIMEOUT, then spools
    them (with their reservation ids: a later replay records each once)."""
    hd = HoldingDaemon(root)  # never released
    try:
        data = tmp_path / "exit-data"
        out = run_script(fake, agent, dict(os.environ, SPENDWALL_SOCKET=hd.path, SPENDWALL_DATA_DIR=str(data),
                                           EXIT_TIMEOUT="0.5"))
        assert out.startswith("calls done")
        with open(data / "spool" / "reports.jsonl") as f:
            spooled = [json.loads(line) for line in f]
        assert sorted(i["reservation_id"] for i in spooled) == sorted(hd.issued) and len(hd.issued) == 3
        assert sorted(i["usage"]["input_tokens"] for i in spooled) == [1, 2, 3]
    finally:
        hd.release()
        hd.close()
