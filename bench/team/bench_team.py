"""Team cap vs local cap, in one run: decisions per second and p50/p99 check latency of a daemon
whose only cap is a team cap (leases from a real PostgreSQL server) and of one whose only cap
is the same cap held locally (both in team mode, shipping their rows, so only the cap differs), plus lease round trips per thousand calls.

    .venv/bin/python bench/team/bench_team.py [--calls 20000] [--clients 8]

Uses SPENDWALL_BIN (default .build/release/spendwall, else .build/debug/spendwall). Each call
is a check and its report, over one keep-alive connection per client; latency is the check's."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
if "SPENDWALL_BIN" not in os.environ:
    release = REPO / ".build" / "release" / "spendwall"
    os.environ["SPENDWALL_BIN"] = str(release if release.exists() else REPO / ".build" / "debug" / "spendwall")

from tests.conftest import Daemon, wait_until  # noqa: E402
from tests.team.pg import PASSWORD, Postgres  # noqa: E402

CAP = """
[[cap]]
name = "bench"
scope = {scope}
window = "day"
limit_usd = 1000000
"""
CHECK = json.dumps({"provider": "openai", "model": "gpt-4o-mini", "agent": "bench",
                    "request": {"max_tokens": 256}}).encode()


class Conn(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self._path)


def post(conn: Conn, path: str, body: bytes) -> dict:
    conn.request("POST", path, body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    return json.loads(response.read())


def run(daemon: Daemon, calls: int, clients: int) -> dict:
    latencies: list = []
    lock = threading.Lock()
    per_client = calls // clients

    def client() -> None:
        conn = Conn(daemon.socket)
        mine = []
        for _ in range(per_client):
            start = time.perf_counter_ns()
            answer = post(conn, "/v1/check", CHECK)
            mine.append(time.perf_counter_ns() - start)
            assert answer["decision"] == "allow", answer
            post(conn, "/v1/report", json.dumps({"reservation_id": answer["reservation_id"], "outcome": "ok",
                                                  "usage": {"input_tokens": 20, "output_tokens": 100}}).encode())
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - start
    latencies.sort()
    return {"calls": len(latencies), "per_second": len(latencies) / took,
            "p50_us": latencies[len(latencies) // 2] / 1000, "p99_us": latencies[int(len(latencies) * 0.99)] / 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each; the median is shown")
    args = parser.parse_args()
    pg = Postgres()
    daemons = []
    try:
        url = pg.create_database("bench")
        pwfile = os.path.join(pg.root, "bench-pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD)
        os.chmod(pwfile, 0o600)
        team_toml = f'[team]\ndatabase = "{url}"\npassword_file = "{pwfile}"\nmachine = "bench"\n'
        env = {"SPENDWALL_LOG_LEVEL": "warning"}
        # Both daemons are in team mode (both ship their rows), so the difference is the cap's.
        local = Daemon(files={"caps.toml": CAP.format(scope="{ global = true }"),
                              "spendwall.toml": team_toml.replace('"bench"', '"bench-local"')}, env=env)
        daemons.append(local)
        team = Daemon(files={"caps.toml": CAP.format(scope="{ team = true }"), "spendwall.toml": team_toml}, env=env)
        daemons.append(team)

        def status() -> dict:
            return team.call("GET", "/v1/team")[1]

        wait_until(lambda: any(l["synced"] for l in status()["leases"]), "the first lease")
        run(local, 1000, args.clients)  # warm-up
        run(team, 1000, args.clients)
        results = {"local": [], "team": []}
        trips_before = status()["lease_round_trips"]
        team_calls = 0
        for _ in range(args.rounds):
            results["local"].append(run(local, args.calls, args.clients))
            r = run(team, args.calls, args.clients)
            team_calls += r["calls"]
            results["team"].append(r)
        trips = status()["lease_round_trips"] - trips_before
        print(f"{args.rounds} rounds x {args.calls} calls, {args.clients} clients, "
              f"binary {os.environ['SPENDWALL_BIN']}")
        print(f"{'cap':<6} {'decisions/s':>12} {'p50 µs':>8} {'p99 µs':>8}")
        summary = {}
        for name, rows in results.items():
            med = {k: statistics.median(r[k] for r in rows) for k in ("per_second", "p50_us", "p99_us")}
            summary[name] = med
            print(f"{name:<6} {med['per_second']:>12.0f} {med['p50_us']:>8.1f} {med['p99_us']:>8.1f}")
        print(f"team cap at p50: {100 * (summary['team']['p50_us'] / summary['local']['p50_us'] - 1):+.1f}% "
              f"vs local; lease round trips: {trips} for {team_calls} calls "
              f"= {1000 * trips / team_calls:.2f} per thousand calls")
    finally:
        for d in daemons:
            d.cleanup()
        pg.cleanup()


if __name__ == "__main__":
    main()
