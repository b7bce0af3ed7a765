#!/usr/bin/env python3
"""What the Python SDK adds to a call, and the daemon round trip alone from Python.

    .venv/bin/python bench/python/bench_sdk.py [--calls 2000] [--roundtrips 5000]

Starts its own daemon (SPENDWALL_BIN, else .build/release/spendwall, else .build/debug/spendwall)
on a temporary socket with two caps, and the shared fake provider as a subprocess. Bare and
wrapped `openai.OpenAI` clients call the same fake in the same run, interleaved call by call,
so both see the same machine; the figure that matters is wrapped minus bare. A wrapped call
returns once its answer is in hand and reports in the background; the script waits for each
report (spendwall.flush(), untimed) before the next call, and also times the call until its
report is in.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sdk-python" / "src"))

CAPS = """
[[cap]]
name = "bench-global"
scope = { global = true }
window = "1d"
limit_usd = 1000000.0
[[cap]]
name = "bench-per-agent"
scope = { agent = "*" }
window = "1h"
limit_usd = 100000.0
"""


def pct(xs: List[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def summary(name: str, xs: List[float]) -> Dict[str, float]:
    us = [x * 1e6 for x in xs]
    row = {"p50_us": pct(us, 50), "p99_us": pct(us, 99), "mean_us": statistics.fmean(us)}
    print(f"{name:<34} n={len(us):<6} p50 {row['p50_us']:9.1f} µs   p99 {row['p99_us']:9.1f} µs   mean {row['mean_us']:9.1f} µs")
    return row


def binary() -> str:
    env = os.environ.get("SPENDWALL_BIN")
    if env:
        return env
    for kind in ("release", "debug"):
        p = REPO / ".build" / kind / "spendwall"
        if p.exists():
            return str(p)
    sys.exit("no spendwall binary: run swift build (-c release)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--roundtrips", type=int, default=5000)
    args = ap.parse_args()

    root = tempfile.mkdtemp(prefix="swbench-")
    env = dict(os.environ, SPENDWALL_CONFIG_DIR=f"{root}/config", SPENDWALL_DATA_DIR=f"{root}/data",
               SPENDWALL_SOCKET=f"{root}/run/spendwall.sock", SPENDWALL_LOG_LEVEL="warning",
               SPENDWALL_PROXY_ADDR="127.0.0.1:0")
    os.makedirs(f"{root}/config")
    Path(f"{root}/config/caps.toml").write_text(CAPS)
    os.environ.update({k: env[k] for k in ("SPENDWALL_CONFIG_DIR", "SPENDWALL_DATA_DIR", "SPENDWALL_SOCKET")})
    bin_path = binary()
    daemon = subprocess.Popen([bin_path, "daemon"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fake = subprocess.Popen([sys.executable, str(REPO / "tests/fake_provider/server.py"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline().split()[1])
        import openai

        import spendwall
        import spendwall.openai
        from spendwall._client import AsyncUnixTransport, UnixTransport

        for _ in range(200):
            try:
                if spendwall.health()["status"] == "ok":
                    break
            except spendwall.SpendwallError:
                time.sleep(0.05)
        print(f"daemon {bin_path}; python {sys.version.split()[0]}; openai {openai.__version__}")

        base = f"http://127.0.0.1:{port}/v1"
        bare = openai.OpenAI(api_key="sk-bench", base_url=base, max_retries=0)
        wrapped = spendwall.openai.wrap(openai.OpenAI(api_key="sk-bench", base_url=base, max_retries=0),
                                        agent="bench", tags={"bench": "python"})
        msgs = [{"role": "user", "content": "Say hello."}]
        for _ in range(100):  # warm up both clients, connections, the daemon's windows
            bare.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=64)
            wrapped.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=64)
        spendwall.flush()
        # The wrapped call returns once its answer is in hand; its report goes out in the
        # background. spendwall.flush() after each wrapped call (untimed) waits for that report,
        # so it never runs during the next call, bare or wrapped, and each is timed alone.
        tb: List[float] = []
        tw: List[float] = []
        tf: List[float] = []
        for i in range(args.calls):
            for client, out in ((bare, tb), (wrapped, tw)) if i % 2 == 0 else ((wrapped, tw), (bare, tb)):
                t = time.perf_counter()
                client.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=64)
                out.append(time.perf_counter() - t)
                if client is wrapped:
                    spendwall.flush()
                    tf.append(time.perf_counter() - t)
        print("\nnon-streaming chat.completions.create against the fake provider, same run:")
        b = summary("bare client", tb)
        w = summary("wrapped client", tw)
        print(f"{'added by the wrapper':<34}          p50 {w['p50_us'] - b['p50_us']:9.1f} µs   "
              f"p99 {w['p99_us'] - b['p99_us']:9.1f} µs")
        f = summary("wrapped, until its report is in", tf)
        print(f"{'added, report awaited too':<34}          p50 {f['p50_us'] - b['p50_us']:9.1f} µs")

        sb: List[float] = []
        sw: List[float] = []
        for i in range(max(200, args.calls // 4)):
            for client, out in ((bare, sb), (wrapped, sw)) if i % 2 == 0 else ((wrapped, sw), (bare, sb)):
                t = time.perf_counter()
                for _ in client.chat.completions.create(model="gpt-4o", messages=msgs, stream=True):
                    pass
                out.append(time.perf_counter() - t)
                if client is wrapped:
                    spendwall.flush()
        from spendwall import _killwatch
        watch = _killwatch._watches.get(os.environ["SPENDWALL_SOCKET"])
        state = "no watch" if watch is None else (
            f"{watch.connects} subscription(s), {watch.attempts} attempt(s)"
            + ("" if watch.connects else "; this daemon serves no /v1/events"))
        print(f"\nstreaming chat (whole stream consumed; kill watch: {state}):")
        b2 = summary("bare client", sb)
        w2 = summary("wrapped client", sw)
        print(f"{'added by the wrapper':<34}          p50 {w2['p50_us'] - b2['p50_us']:9.1f} µs")

        # Diagnostic breakdown: the SDK's own Python-side cost, with a transport that answers
        # instantly (no daemon involved). Not a test; it separates SDK cost from daemon latency.
        class Instant:
            def request(self, method: str, path: str, body: object = None) -> tuple:
                json.dumps(body, separators=(",", ":"))  # the SDK's encoding cost stays in
                if path == "/v1/check":
                    return 200, {"decision": "allow", "reservation_id": "r_x", "reserved_nanousd": 1}
                return 200, {"request_id": "r_x", "cost_nanousd": 1, "duplicate": False}

            def close(self) -> None:
                pass

        spendwall.configure(transport=Instant())
        sdk_only = spendwall.openai.wrap(openai.OpenAI(api_key="sk-bench", base_url=base, max_retries=0), agent="x")
        tb3: List[float] = []
        ts3: List[float] = []
        for i in range(args.calls):
            for client, out in ((bare, tb3), (sdk_only, ts3)) if i % 2 == 0 else ((sdk_only, ts3), (bare, tb3)):
                t = time.perf_counter()
                client.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=64)
                out.append(time.perf_counter() - t)
                if client is sdk_only:
                    spendwall.flush()
        spendwall.configure(transport=None)
        print("\ndiagnostic: SDK-side cost alone (transport answers instantly, no daemon):")
        b3 = summary("bare client", tb3)
        s3 = summary("wrapped, instant transport", ts3)
        print(f"{'SDK-side cost':<34}          p50 {s3['p50_us'] - b3['p50_us']:9.1f} µs   "
              f"p99 {s3['p99_us'] - b3['p99_us']:9.1f} µs")

        t_sync = UnixTransport(os.environ["SPENDWALL_SOCKET"])
        check = {"provider": "openai", "model": "gpt-4o", "agent": "bench-rt", "mode": "default", "path": "sdk",
                 "request": {"model": "gpt-4o", "max_tokens": 64, "messages": msgs}}
        usage = {"input_tokens": 11, "output_tokens": 7, "cache_read_tokens": 0, "cache_write_tokens": 0,
                 "reasoning_tokens": 0}
        rc: List[float] = []
        rr: List[float] = []
        rh: List[float] = []
        for _ in range(args.roundtrips):
            t = time.perf_counter()
            _, body = t_sync.request("POST", "/v1/check", check)
            t2 = time.perf_counter()
            t_sync.request("POST", "/v1/report", {"reservation_id": body["reservation_id"], "usage": usage,
                                                  "status": 200, "duration_ms": 1, "outcome": "ok"})
            t3 = time.perf_counter()
            t_sync.request("GET", "/v1/health")
            rh.append(time.perf_counter() - t3)
            rc.append(t2 - t)
            rr.append(t3 - t2)
        print("\ndaemon round trip from Python (sync transport, keep-alive):")
        summary("POST /v1/check", rc)
        summary("POST /v1/report (committed)", rr)
        summary("GET /v1/health", rh)
        summary("check + report", [a + b for a, b in zip(rc, rr)])

        async def arun() -> List[float]:
            at = AsyncUnixTransport(os.environ["SPENDWALL_SOCKET"])
            out = []
            for _ in range(args.roundtrips // 2):
                t = time.perf_counter()
                _, body = await at.request("POST", "/v1/check", check)
                await at.request("POST", "/v1/report", {"reservation_id": body["reservation_id"], "usage": usage,
                                                        "outcome": "ok"})
                out.append(time.perf_counter() - t)
            return out

        summary("check + report (asyncio transport)", asyncio.run(arun()))
        return 0
    finally:
        fake.terminate()
        daemon.terminate()
        daemon.wait(20)
        fake.wait(10)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
