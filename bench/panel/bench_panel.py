#!/usr/bin/env python3
"""How fast the panel's pages load from a local daemon holding 100,000 ledger rows.

Starts a release (or SPENDWALL_BIN) daemon on temporary directories, seeds ROWS rows spread over
30 days through the socket API's POST /v1/reports batch endpoint, logs in through the one-time
link, and measures each page two ways:

- http: the requests a page makes once it is open (its /panel/api/* reads), sent concurrently as
  the browser does, timed until the last answer is read;
- browser (when chromium and chromedriver are installed): a fresh navigation to /panel/#PAGE in
  headless Chromium, timed from navigation start to the page's `spendwall-ready:PAGE` mark (the
  HTML, script, style, session and every read of the page done and drawn).

Usage: .venv/bin/python bench/panel/bench_panel.py [--rows 100000] [--runs 20]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "panel"))
from conftest import Daemon  # noqa: E402
from panel_helpers import SEED_LABELS, Session, login_link, seed  # noqa: E402

LIMIT_MS = 300.0


def page_requests() -> dict:
    return {
        "now": [f"/panel/api/spend?by=day&since={31 * 86400}s", "/panel/api/ledger?limit=50", "/panel/api/kill",
                "/panel/api/approvals"],
        "spend (7d)": ["/panel/api/spend/series?by=app&since=7d&bucket=day"]
        + [f"/panel/api/spend?by={g}&since=7d" for g in ["app", "agent", "model", "tag"]],
        "spend (30d)": ["/panel/api/spend/series?by=app&since=30d&bucket=day"]
        + [f"/panel/api/spend?by={g}&since=30d" for g in ["app", "agent", "model", "tag"]],
        "caps": ["/panel/api/snapshot"],
        "approvals": ["/panel/api/approvals", "/panel/api/approvals?status=all"],
    }


def pct(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_http(session: Session, runs: int) -> dict:
    results = {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for page, paths in page_requests().items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                answers = list(pool.map(session.get, paths))
                times.append((time.perf_counter() - start) * 1000)
                assert all(status == 200 for status, _, _ in answers), [a[0] for a in answers]
            results[page] = times
    return results


def bench_browser(daemon: Daemon, runs: int) -> dict:
    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_bin:
        print("(no chromium/chromedriver: browser figures skipped)")
        return {}
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    results = {}
    try:
        driver.get(login_link(daemon))
        for page in ["now", "spend", "caps", "approvals"]:
            times = []
            for _ in range(runs):
                driver.get("about:blank")
                driver.get(f"http://{daemon.address}/panel/#{page}")
                deadline = time.monotonic() + 30
                while True:
                    marks = driver.execute_script(
                        f"return performance.getEntriesByName('spendwall-ready:{page}').map(m => m.startTime)")
                    if marks:
                        times.append(marks[0])
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{page} never became ready")
                    time.sleep(0.005)
            results[page] = times
    finally:
        driver.quit()
    return results


def table(title: str, results: dict) -> str:
    lines = [f"| {title} | p50 ms | p95 ms | max ms | under {LIMIT_MS:.0f} ms |", "|---|---|---|---|---|"]
    for page, times in results.items():
        lines.append(f"| {page} | {statistics.median(times):.1f} | {pct(times, 0.95):.1f} | {max(times):.1f} | "
                     f"{'yes' if pct(times, 0.95) < LIMIT_MS else 'NO'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    release = REPO / ".build" / "release" / "spendwall"
    if "SPENDWALL_BIN" not in os.environ and release.exists():
        os.environ["SPENDWALL_BIN"] = str(release)
    print(f"daemon: {os.environ.get('SPENDWALL_BIN') or REPO / '.build/debug/spendwall'}")
    daemon = Daemon(files={"labels.toml": SEED_LABELS})
    try:
        start = time.perf_counter()
        seed(daemon, args.rows, days=30)
        print(f"seeded {args.rows:,} rows through /v1/reports in {time.perf_counter() - start:.1f} s")
        status, body = daemon.call("GET", "/v1/spend?by=app&since=30d")
        print(f"ledger holds {body['total']['calls']:,} calls in the last 30 days")
        session = Session(daemon)
        print()
        print(table("page (http, its API reads)", bench_http(session, args.runs)))
        browser = bench_browser(daemon, max(5, args.runs // 2))
        if browser:
            print()
            print(table("page (headless Chromium, navigation to data drawn)", browser))
    finally:
        daemon.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
