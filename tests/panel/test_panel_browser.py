"""The panel in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) against a real daemon and the shared fake provider: log in through the one-time link,
watch a Python SDK call (the real `openai` package) arrive in the live feed, approve a held
call, stop everything with the kill switch, read the stacked spend chart, edit a cap, read a
finished session's stop reason and diff, stop a running `spendwall run` session, and read the
reconciliation table's drift. Each page's screenshot is written to docs/panel/
(SPENDWALL_SCREENSHOTS overrides the directory).

Skipped, with the reason, only when the chromium or chromedriver binary is missing."""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
from conftest import REPO, Daemon, Fake, wait_until
from panel_helpers import SEED_LABELS, login_link, seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (scripts/setup-system.sh installs them): "
           f"chromium={'found' if CHROMIUM else 'missing'}, chromedriver={'found' if CHROMEDRIVER else 'missing'}")

SHOTS = Path(os.environ.get("SPENDWALL_SCREENSHOTS") or REPO / "docs" / "panel")
MSG = [{"role": "user", "content": "Say hello."}]

CAPS = """
[[cap]]
name = "ask-first"
scope = { agent = "ask-first" }
window = "1d"
limit_usd = 0.000001
action = "approve"

[[cap]]
name = "team-month"
scope = { global = true }
window = "month"
limit_usd = 500.0
action = "block"

[[cap]]
name = "reviewer-daily"
scope = { agent = "code-reviewer" }
window = "1d"
limit_usd = 2.0
action = "alert"

[[cap]]
name = "warn-me"
scope = { agent = "warn-agent" }
window = "1d"
limit_usd = 0.001
action = "alert"
warn_at = 0.5
"""


@pytest.fixture(scope="module")
def daemon(fake: Fake) -> Iterator[Daemon]:
    d = Daemon(files={"caps.toml": CAPS, "labels.toml": SEED_LABELS},
               env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    seed(d, 3000, days=30)
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def sdk(daemon: Daemon, fake: Fake) -> Iterator[Callable[..., Any]]:
    """Makes a chat call through spendwall.openai.wrap(openai.OpenAI(...)) against the fake."""
    import openai
    import spendwall._config as cfg
    import spendwall.openai

    # the SDK reads the socket, its spool (data dir) and fail mode (config dir) from these
    names = ["SPENDWALL_SOCKET", "SPENDWALL_DATA_DIR", "SPENDWALL_CONFIG_DIR"]
    previous = {name: os.environ.get(name) for name in names}
    os.environ.update({name: daemon.env[name] for name in names})
    cfg.reset()

    def call(agent: str, usage: str = "900,120,0,0,0") -> Any:
        client = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                       agent=agent)
        return client.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=64,
                                              extra_headers={"x-fake-usage": usage})

    yield call
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    cfg.reset()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def ready(browser: Any, page: str) -> None:
    wait_until(lambda: browser.execute_script("return document.body.dataset.ready") == page, f"the {page} page")


def go(browser: Any, page: str) -> None:
    browser.execute_script(f"location.hash = '#{page}'")
    ready(browser, page)


def shoot(browser: Any, name: str, toasts: bool = False) -> None:
    if not toasts:
        browser.execute_script("document.getElementById('toasts').replaceChildren()")
    height = browser.execute_script("return Math.min(2400, document.documentElement.scrollHeight)")
    width = browser.execute_script("return window.innerWidth")
    browser.set_window_size(max(width, 360), height + 20) if height > 900 else None
    browser.save_screenshot(str(SHOTS / f"{name}.png"))
    browser.set_window_size(1280, 900)


def css(browser: Any, selector: str) -> List[Any]:
    from selenium.webdriver.common.by import By
    return browser.find_elements(By.CSS_SELECTOR, selector)


def attr(browser: Any, selector: str, name: str) -> Any:
    """An attribute read in the page (no element handle to go stale while the page redraws)."""
    return browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.getAttribute(arguments[1]) : null",
        selector, name)


def click(browser: Any, selector: str) -> None:
    """Clicks the first match, looking again if the page redrew it in between."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + 30
    while True:
        try:
            css(browser, selector)[0].click()
            return
        except (StaleElementReferenceException, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def check(daemon: Daemon, agent: str) -> Dict[str, Any]:
    status, body = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o", "agent": agent,
                                                     "request": {"max_tokens": 16, "messages": MSG}})
    assert status == 200, body
    return body


def test_logs_in_through_the_one_time_link(daemon: Daemon, browser: Any) -> None:
    link = login_link(daemon)
    browser.get(link)
    ready(browser, "now")
    url = urllib.parse.urlparse(browser.current_url)
    assert url.path == "/panel/" and "code" not in url.query  # the code is gone from the address bar
    [cookie] = [c for c in browser.get_cookies() if c["name"].startswith("spendwall_panel_")]
    assert cookie["httpOnly"] is True and cookie.get("sameSite") == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # scripts cannot read it
    assert len(css(browser, "#feed-body tr")) > 0
    totals = [e.text for e in css(browser, "[data-total]")]
    assert len(totals) == 3 and all("$" in t for t in totals)
    # the link does not work twice
    browser2_ok = daemon.call("GET", "/v1/health")[0] == 200
    assert browser2_ok


def test_an_sdk_call_appears_in_the_live_feed(daemon: Daemon, browser: Any, sdk: Callable[..., Any]) -> None:
    browser.execute_script("window.__notReloaded = true")
    wait_until(lambda: "live" == browser.execute_script("return document.getElementById('live').textContent"),
               "the event stream to connect")
    started = time.monotonic()
    sdk("live-agent")
    wait_until(lambda: any("live-agent" in r.text for r in css(browser, "#feed-body tr")), "the call in the feed",
               timeout=10)
    latency = time.monotonic() - started
    print(f"\nSDK call to feed row: {latency * 1000:.0f} ms (including the call itself)")
    row = next(r for r in css(browser, "#feed-body tr") if "live-agent" in r.text)
    assert "gpt-4o" in row.text and "ok" in row.text
    # it came over the event stream: the page was not reloaded
    assert browser.execute_script("return window.__notReloaded") is True
    shoot(browser, "now")


def test_the_kill_switch_button_stops_the_next_check(daemon: Daemon, browser: Any) -> None:
    assert check(daemon, "anyone")["decision"] == "allow"
    wait_until(lambda: attr(browser, "#kill-global", "data-on") == "false", "the kill switch button")
    click(browser, "#kill-global")
    wait_until(lambda: daemon.call("GET", "/v1/kill")[1]["on"] == [{"kind": "global"}], "the global switch")
    assert check(daemon, "anyone")["decision"] == "killed"
    wait_until(lambda: attr(browser, "#kill-global", "data-on") == "true", "the button to turn")
    shoot(browser, "now-killed")
    click(browser, "#kill-global")
    wait_until(lambda: daemon.call("GET", "/v1/kill")[1]["on"] == [], "the switch off")
    assert check(daemon, "anyone")["decision"] == "allow"
    # per agent, from a row of the feed
    wait_until(lambda: attr(browser, "#kill-global", "data-on") == "false", "the button to turn back")
    click(browser, "button[data-kill-agent='live-agent']")
    wait_until(lambda: daemon.call("GET", "/v1/kill")[1]["on"] == [{"kind": "agent", "value": "live-agent"}],
               "the agent's switch")
    assert check(daemon, "live-agent")["decision"] == "killed"
    assert check(daemon, "someone-else")["decision"] == "allow"
    daemon.call("POST", "/v1/kill", {"agent": "live-agent", "on": False})


def test_approving_from_the_page_releases_the_held_call(daemon: Daemon, browser: Any,
                                                        sdk: Callable[..., Any], fake: Fake) -> None:
    go(browser, "approvals")
    result: Dict[str, Any] = {}

    def held() -> None:
        try:
            result["answer"] = sdk("ask-first")
        except Exception as e:  # noqa: BLE001 — reported by the assertion below
            result["error"] = e

    thread = threading.Thread(target=held, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(css(browser, "button[data-approve]")) == 1 or "error" in result,
                   "the approval on the page", timeout=8)
    except BaseException:
        print("DEBUG", result, daemon.call("GET", "/v1/approvals?status=all")[1], browser.execute_script("return document.querySelector('main').innerHTML.slice(0, 2000) + ' ready=' + document.body.dataset.ready"),
              browser.get_log("browser"))
        raise
    assert "error" not in result, (result, daemon.call("GET", "/v1/approvals?status=all")[1])
    assert thread.is_alive()  # still held
    card = css(browser, "[data-approval]")[0]
    assert "ask-first" in card.text and "gpt-4o" in card.text and "$" in card.text
    toasts = " ".join(t.text for t in css(browser, ".toast"))
    assert "Approval needed" in toasts  # no notification permission in headless Chromium: an in-page toast
    shoot(browser, "approvals", toasts=True)
    click(browser, "button[data-approve]")
    thread.join(timeout=30)
    assert not thread.is_alive() and "error" not in result, result
    assert result["answer"].choices[0].message.content
    approvals = daemon.call("GET", "/v1/approvals?status=all")[1]["approvals"]
    assert approvals[0]["status"] == "approved" and approvals[0]["agent"] == "ask-first"
    wait_until(lambda: any(r["agent"] == "ask-first" and r["outcome"] == "ok" for r in daemon.rows()
                           if r.get("agent")), "the approved call's row")


def test_a_cap_alert_shows_a_toast(daemon: Daemon, browser: Any, sdk: Callable[..., Any]) -> None:
    sdk("warn-agent", usage="1000,100,0,0,0")  # $0.0035 against a $0.001 alert cap
    # read in the page: a toast may be dropped (at most three are shown) between a lookup and its text
    wait_until(lambda: "warn-me" in browser.execute_script(
        "return [...document.querySelectorAll('.toast')].map((t) => t.textContent).join(' ')"), "the CapAlert toast")


def test_the_spend_chart_draws_the_seeded_spend(daemon: Daemon, browser: Any) -> None:
    go(browser, "spend")
    bars = css(browser, "#spend-chart rect.bar")
    assert len(bars) >= 7
    assert all(float(b.get_attribute("height")) > 0 for b in bars)
    keys = {b.get_attribute("data-key") for b in bars}
    assert {"reviewer", "Claude Code", "Codex"} <= keys
    assert len(css(browser, "table[data-top='app'] tbody tr")) >= 5
    shoot(browser, "spend")
    click(browser, ".seg button[data-value='30d']")
    ready(browser, "spend")
    click(browser, ".seg button[data-value='model']")
    ready(browser, "spend")
    buckets = {b.get_attribute("data-bucket") for b in css(browser, "#spend-chart rect.bar")}
    assert len(buckets) >= 25
    assert "gpt-4o" in {b.get_attribute("data-key") for b in css(browser, "#spend-chart rect.bar")}
    # a narrow window: the chart fits, nothing needs sideways scrolling
    browser.set_window_size(390, 900)
    go(browser, "now")
    go(browser, "spend")
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script("return document.getElementById('spend-chart').getBoundingClientRect().width") <= width
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width + 1
    browser.save_screenshot(str(SHOTS / "spend-narrow.png"))
    browser.set_window_size(1280, 900)


def test_caps_show_progress_and_can_be_created(daemon: Daemon, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    go(browser, "caps")
    names = [c.get_attribute("data-cap-name") for c in css(browser, "[data-cap-name]")]
    assert names == ["ask-first", "team-month", "reviewer-daily", "warn-me"]
    month = css(browser, "[data-cap-name='team-month']")[0].text
    assert "resets" in month and "projected" in month and "of $500.00" in month
    shoot(browser, "caps")
    click(browser, "#new-cap")
    form = css(browser, "#cap-form")[0]
    form.find_element("name", "name").send_keys("nightly")
    Select(form.find_element("name", "kind")).select_by_value("app")
    form.find_element("name", "value").send_keys("Codex")
    Select(form.find_element("name", "window")).select_by_value("week")
    form.find_element("name", "limit").send_keys("12.5")
    form.find_element("css selector", "button[type=submit]").click()
    wait_until(lambda: len(css(browser, "[data-cap-name='nightly']")) == 1, "the new cap on the page")
    text = open(os.path.join(daemon.config_dir, "caps.toml")).read()
    assert 'name = "nightly"' in text and 'scope = { app = "Codex" }' in text and "limit_usd = 12.5" in text


DIFF = """diff --git a/src/parser.py b/src/parser.py
index 3b18e51..a1c9f02 100644
--- a/src/parser.py
+++ b/src/parser.py
@@ -1,4 +1,6 @@
-def parse(text):
-    return text.split()
+from .lexer import tokens
+
+def parse(text):
+    \"\"\"Splits the parser from the lexer.\"\"\"
+    return list(tokens(text))
"""


def session_call(base_url: str, usage: str = "4000,800,0,0,0") -> None:
    """One chat call through a session's proxy URL to the fake provider."""
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=json.dumps({"model": "gpt-4o", "max_tokens": 10, "messages": MSG}).encode(),
        headers={"content-type": "application/json", "authorization": "Bearer sk-test", "x-fake-usage": usage})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def page_text(browser: Any, selector: str) -> str:
    return browser.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : ''", selector)


def test_sessions_page_says_how_to_start_one(daemon: Daemon, browser: Any) -> None:
    assert daemon.call("GET", "/v1/sessions")[1]["sessions"] == []
    go(browser, "sessions")
    text = css(browser, "main")[0].text
    assert "No sessions yet" in text and "spendwall run --budget-usd 5 -- claude" in text


def test_a_finished_session_shows_its_stop_reason_and_diff(daemon: Daemon, browser: Any) -> None:
    status, started = daemon.call("POST", "/v1/sessions", {
        "command": ["claude", "--model", "opus"], "name": "split the parser", "agent": "refactor",
        "cwd": "/home/me/src/app", "git_branch": "main", "git_head": "9f0c1d2e3b4a59687766",
        "budget_nanousd": 100_000_000, "terminal": "pty"})
    assert status == 200, started
    sid = started["session"]["id"]
    for _ in range(3):
        session_call(started["openai_base_url"])
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    status, finished = daemon.call("POST", f"/v1/sessions/{sid}/finish", {
        "stop_reason": "budget_exceeded", "exit_code": 130, "resume_command": "claude --resume 4f1c-resume-id",
        "artifacts": [{"kind": "git_status", "content_base64": b64(" M src/parser.py\n?? src/lexer.py\n")},
                      {"kind": "git_diff", "content_base64": b64(DIFF)}]})
    assert status == 200, finished
    spent = finished["session"]["spend"]["cost_nanousd"]
    assert finished["session"]["spend"]["calls"] == 3 and spent > 0

    go(browser, "now")  # the Sessions page shows its empty state: come back to it for a fresh read
    go(browser, "sessions")
    row = css(browser, f"tr[data-session='{sid}']")[0]
    assert "split the parser" in row.text and "refactor" in row.text and "budget_exceeded" in row.text
    assert attr(browser, f"tr[data-session='{sid}'] [data-status]", "data-status") == "budget_exceeded"
    assert not css(browser, f"button[data-stop-session='{sid}']")  # an ended session has nothing to stop
    # the bar: spent of the budget
    width = browser.execute_script(
        "return document.querySelector(arguments[0]).style.width", f"[data-session-meter='{sid}'] .spent")
    assert abs(float(width.rstrip("%")) - min(100, spent / 100_000_000 * 100)) < 0.01

    click(browser, f"tr[data-session='{sid}'] a")
    ready(browser, "session")
    assert page_text(browser, "#session-status") == "budget_exceeded"
    assert page_text(browser, "#session-exit") == "exit code 130"
    assert page_text(browser, "#resume-command") == "claude --resume 4f1c-resume-id"
    assert page_text(browser, "#session-diff").strip() == DIFF.strip()
    note = page_text(browser, "#diff-note")
    assert "1 MiB" in note and "cut" not in note
    files = browser.execute_script(
        "return [...document.querySelectorAll('#changed-files li')].map((e) => e.textContent)")
    assert files == [" M src/parser.py", "?? src/lexer.py"]
    models = css(browser, "#session-models tbody tr")
    assert len(models) == 1 and "gpt-4o" in models[0].text and "3" in models[0].text
    assert css(browser, "nav a[data-page='sessions']")[0].get_attribute("class") == "active"
    shoot(browser, "session")


def test_stopping_a_running_session_from_the_page(daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    binary = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
    agent = str(REPO / "tests" / "sessions" / "agent.py")
    sid = None
    with open(tmp_path / "out.txt", "wb") as out, open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen([binary, "run", "--budget-usd", "5", "--name", "fix the flaky test", "--agent",
                                 "panel-agent", "--", sys.executable, agent],
                                env=daemon.env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        def running() -> Any:
            found = [x for x in daemon.call("GET", "/v1/sessions")[1]["sessions"]
                     if x.get("name") == "fix the flaky test"]
            return found[0] if found else None
        wait_until(lambda: running() is not None, "the session to start")
        sid = running()["id"]
        wait_until(lambda: (running().get("spend") or {}).get("calls", 0) > 0, "a call of the session")
        go(browser, "sessions")
        wait_until(lambda: len(css(browser, f"button[data-stop-session='{sid}']")) == 1, "the stop button")
        assert attr(browser, f"tr[data-session='{sid}'] [data-status]", "data-status") == "running"
        shoot(browser, "sessions")
        click(browser, f"button[data-stop-session='{sid}']")
        wait_until(lambda: {"kind": "session", "value": sid} in daemon.call("GET", "/v1/kill")[1]["on"],
                   "the session's kill switch")
        status, answer = daemon.call("POST", "/v1/check", {
            "provider": "openai", "model": "gpt-4o", "session": sid,
            "request": {"max_tokens": 16, "messages": MSG}})
        assert status == 200 and answer["decision"] == "killed", answer
        proc.wait(timeout=60)  # spendwall run stopped the program: Ctrl+C, and it printed a resume line
        ended = daemon.call("GET", f"/v1/sessions/{sid}")[1]["session"]
        assert ended["stop_reason"] == "killed" and ended["exit_code"] == 130
        assert ended["resume_command"] == "claude --resume 0f3c-resume-id"
        # the page looks again by itself until the session has ended
        wait_until(lambda: attr(browser, f"tr[data-session='{sid}'] [data-status]", "data-status") == "killed",
                   "the page to show the session killed")
        assert not css(browser, f"button[data-stop-session='{sid}']")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if sid is not None:
            daemon.call("POST", "/v1/kill", {"session": sid, "on": False})


def test_the_reconciliation_table_shows_the_drift(daemon: Daemon, browser: Any, tmp_path: Path) -> None:
    # a month with nothing: the empty state says how to get figures in
    browser.execute_script("location.hash = '#reconcile/2020-01'")
    ready(browser, "reconcile")
    text = css(browser, "main")[0].text
    assert "Nothing to reconcile for 2020-01" in text
    assert "[stripe]" in text and "alerts.toml" in text and "spendwall reconcile import FILE" in text
    # this month: the seeded ledger saw OpenAI spend; a cost export bills 10% more, plus $5
    period = time.strftime("%Y-%m", time.gmtime())
    rows = daemon.call("GET", f"/v1/reconcile?period={period}")[1]["rows"]
    seen = next(r for r in rows if r["provider"] == "openai")["ledger_nanousd"]
    billed_usd = round(seen / 1e9 * 1.1 + 5, 2)
    export = tmp_path / "openai-costs.csv"
    export.write_text(f"date,cost_usd\n{time.strftime('%Y-%m-%d', time.gmtime())},{billed_usd}\n")
    binary = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
    out = subprocess.run([binary, "reconcile", "import", str(export), "--provider", "openai"], env=daemon.env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = daemon.call("GET", f"/v1/reconcile?period={period}")[1]["rows"]
    line = next(r for r in report if r["provider"] == "openai" and r["source"].startswith("import"))
    assert line["drifted"] and line["billed_nanousd"] == round(billed_usd * 1e9)

    go(browser, "now")
    go(browser, "reconcile")  # the current month by default
    assert attr(browser, "#reconcile-period", "value") == period
    selector = f"#reconcile-table tr[data-provider='openai'][data-source='{line['source']}']"
    row = css(browser, selector)[0]
    assert attr(browser, selector, "data-drifted") == "true" and "drifted" in row.get_attribute("class")
    assert "DRIFT" in row.text and f"{line['drift_percent']:.2f}%" in row.text and "+$" in row.text
    highlighted = row.find_element("css selector", "td").value_of_css_property("background-color")
    assert highlighted == "rgba(254, 242, 242, 1)", highlighted  # tr.drifted in panel.css
    # the providers the ledger saw without a bill are listed too
    assert len(css(browser, "#reconcile-table tbody tr")) == len(report)
    assert "1 of" in page_text(browser, "#reconcile-summary")
    shoot(browser, "reconcile")
    click(browser, "#period-prev")
    wait_until(lambda: (attr(browser, "#reconcile-period", "value") or period) < period, "the previous month")
    ready(browser, "reconcile")


def test_not_logged_in_says_what_to_do(daemon: Daemon, browser: Any) -> None:
    browser.delete_all_cookies()
    browser.get(f"http://{daemon.address}/panel/")
    ready(browser, "error")
    assert "spendwall panel" in css(browser, "main")[0].text
