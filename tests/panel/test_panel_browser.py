"""The panel in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium) against a real daemon and the shared fake provider: log in through the one-time link,
watch a Python SDK call (the real `openai` package) arrive in the live feed, approve a held
call, stop everything with the kill switch, read the stacked spend chart, and edit a cap. Each
page's screenshot is written to docs/panel/ (SPENDWALL_SCREENSHOTS overrides the directory).

Skipped, with the reason, only when the chromium or chromedriver binary is missing."""
from __future__ import annotations

import os
import shutil
import threading
import time
import urllib.parse
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
    wait_until(lambda: any("warn-me" in t.text for t in css(browser, ".toast")), "the CapAlert toast")


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


def test_not_logged_in_says_what_to_do(daemon: Daemon, browser: Any) -> None:
    browser.delete_all_cookies()
    browser.get(f"http://{daemon.address}/panel/")
    ready(browser, "error")
    assert "spendwall panel" in css(browser, "main")[0].text
