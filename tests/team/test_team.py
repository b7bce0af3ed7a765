"""Team mode against a real PostgreSQL server: three daemons ("machines": separate config,
data and socket dirs) share a $10 team cap through budget leases; every row ships to the
team ledger; a 20 s database outage is ridden out within the leases and caught up after."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List

import pytest

from tests.conftest import Daemon, wait_until
from tests.team.pg import PASSWORD, Postgres

LIMIT = 10_000_000_000  # $10 in nano-USD
CAPS = """
[[cap]]
name = "team-budget"
scope = { team = true }
window = "day"
limit_usd = 10
"""
# gpt-4o: $10 per million output tokens; 8192 output tokens reserve and cost $0.08192.
CALL_COST = 8192 * 10_000
CHECK = {"provider": "openai", "model": "gpt-4o", "agent": "worker", "request": {"max_tokens": 8192}}


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.cleanup()


def machines(pg: Postgres, database: str, offline: List[str]) -> List[Daemon]:
    url = pg.create_database(database)
    daemons = []
    for index, mode in enumerate(offline):
        root = os.path.join(pg.root, f"{database}-m{index}")
        os.makedirs(root)
        pwfile = os.path.join(root, "team-password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD)
        os.chmod(pwfile, 0o600)
        toml = (f'[team]\ndatabase = "{url}"\npassword_file = "{pwfile}"\nmachine = "m{index}"\n'
                f'offline = "{mode}"\n')
        daemons.append(Daemon(files={"spendwall.toml": toml, "caps.toml": CAPS}))
    for daemon in daemons:
        wait_until(lambda d=daemon: lease(d)["synced"] and lease(d)["available_nanousd"] > 0,
                   "a first lease on every machine")
    return daemons


def team(daemon: Daemon) -> Dict:
    status, body = daemon.call("GET", "/v1/team")
    assert status == 200, body
    return body


def lease(daemon: Daemon) -> Dict:
    leases = team(daemon)["leases"]
    assert len(leases) == 1, leases
    return leases[0]


def check(daemon: Daemon) -> Dict:
    status, answer = daemon.call("POST", "/v1/check", CHECK)
    assert status == 200, answer
    return answer


def report(daemon: Daemon, reservation: str) -> None:
    status, body = daemon.call("POST", "/v1/report", {"reservation_id": reservation, "outcome": "ok",
                                                      "usage": {"output_tokens": 8192}})
    assert status == 200, body


def local_totals(daemons: List[Daemon]) -> Dict[str, int]:
    calls = cost = 0
    for daemon in daemons:
        status, body = daemon.call("GET", "/v1/spend?by=app&since=1d")
        assert status == 200, body
        calls += body["total"]["calls"]
        cost += body["total"]["cost_nanousd"]
    return {"calls": calls, "cost": cost}


def shipped(daemons: List[Daemon]) -> bool:
    return all(team(d)["shipping"]["behind_rows"] == 0 for d in daemons)


def team_ledger(pg: Postgres, database: str) -> Dict[str, int]:
    [[rows, distinct, cost]] = pg.sql(
        "SELECT COUNT(*), COUNT(DISTINCT (machine, request_id)), COALESCE(SUM(cost_nanousd), 0) FROM team_events",
        database)
    return {"rows": int(rows), "distinct": int(distinct), "cost": int(cost)}


def test_three_machines_never_admit_more_than_the_team_cap(pg: Postgres) -> None:
    daemons = machines(pg, "team_cap", ["block", "block", "block"])
    try:
        admitted: List[int] = []
        lock = threading.Lock()
        spent_out = threading.Event()

        def worker(daemon: Daemon) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                answer = check(daemon)
                if answer["decision"] == "allow":
                    report(daemon, answer["reservation_id"])
                    with lock:
                        admitted.append(answer["reserved_nanousd"])
                    continue
                assert answer["decision"] == "block", answer
                assert answer["error"]["code"] == "cap_exceeded"
                if "retry shortly" not in answer["reason"]:
                    spent_out.set()  # the team budget is spent or leased out
                    return
                time.sleep(0.01)

        with ThreadPoolExecutor(max_workers=3 * 64) as pool:
            for future in [pool.submit(worker, d) for d in daemons for _ in range(64)]:
                future.result()
        total = sum(admitted)
        assert spent_out.is_set()
        assert total <= LIMIT, f"admitted ${total / 1e9:.5f} past the $10 team cap"
        # Stranded lease crumbs are less than one call per machine.
        assert total > LIMIT - 3 * CALL_COST * 2, f"admitted only ${total / 1e9:.5f}"
        assert all(cost == CALL_COST for cost in admitted)

        wait_until(lambda: shipped(daemons), "every row shipped")
        local = local_totals(daemons)
        ledger = team_ledger(pg, "team_cap")
        assert ledger["rows"] == ledger["distinct"] == local["calls"]
        assert ledger["cost"] == local["cost"] == total
        status, body = daemons[0].call("GET", "/v1/team/spend?by=machine&since=1d")
        assert status == 200, body
        assert body["total"]["cost_nanousd"] == total
        assert sorted(row["key"] for row in body["rows"]) == ["m0", "m1", "m2"]
        [[spent, leased]] = pg.sql("SELECT spent_nanousd, leased_nanousd FROM team_budgets", "team_cap")
        assert int(spent) + int(leased) <= LIMIT
    finally:
        for daemon in daemons:
            daemon.cleanup()
    # Stopped cleanly, every machine gave its unused slices back.
    [[spent, leased]] = pg.sql("SELECT spent_nanousd, leased_nanousd FROM team_budgets", "team_cap")
    assert int(leased) == 0 and int(spent) == total


def test_a_20_second_outage_is_ridden_out_within_the_leases(pg: Postgres) -> None:
    daemons = machines(pg, "team_outage", ["block", "block", "local-only"])
    try:
        for daemon in daemons:  # some spend before the outage
            for _ in range(3):
                answer = check(daemon)
                assert answer["decision"] == "allow", answer
                report(daemon, answer["reservation_id"])
        pg.stop()
        stopped = time.monotonic()
        for daemon in daemons:
            wait_until(lambda d=daemon: not team(d)["online"], "the daemon to notice the outage")
        held = [lease(d)["available_nanousd"] for d in daemons]
        assert all(h >= CALL_COST for h in held), held
        during = [0, 0, 0]
        for index, daemon in enumerate(daemons):
            # Within its lease, each machine decides on alone.
            while True:
                answer = check(daemon)
                if answer["decision"] != "allow":
                    break
                report(daemon, answer["reservation_id"])
                during[index] += CALL_COST
                if index == 2 and during[index] >= held[index] + 3 * CALL_COST:
                    break
            if index < 2:
                # team.offline = "block": refused once the lease is spent, saying why.
                assert answer["decision"] == "block" and "cannot be reached" in answer["reason"], answer
                assert held[index] - CALL_COST < during[index] <= held[index]
            else:
                # team.offline = "local-only": goes on under the cap's limit for this machine alone.
                assert during[index] > held[index]
            assert team(daemon)["shipping"]["behind_rows"] > 0  # rows queue locally
        # Keep the database down for 20 s in all, then bring it back.
        while time.monotonic() - stopped < 20:
            time.sleep(0.2)
        for daemon in daemons:
            assert not team(daemon)["online"]
            assert check(daemon)["decision"] in ("allow", "block")  # still serving
        pg.start()
        for daemon in daemons:
            wait_until(lambda d=daemon: team(d)["online"], "the daemon to reach the database again", timeout=60)
        wait_until(lambda: shipped(daemons), "every queued row shipped", timeout=60)
        local = local_totals(daemons)
        ledger = team_ledger(pg, "team_outage")
        assert ledger["rows"] == ledger["distinct"] == local["calls"]
        assert ledger["cost"] == local["cost"]
        wait_until(lambda: int(pg.sql("SELECT spent_nanousd FROM team_budgets", "team_outage")[0][0]) == local["cost"],
                   "spend settled back to the team budget")
    finally:
        for daemon in daemons:
            daemon.cleanup()


def test_team_endpoints_without_team_mode_say_what_to_do() -> None:
    daemon = Daemon(files={"caps.toml": CAPS})
    try:
        status, body = daemon.call("GET", "/v1/team")
        assert status == 200 and body["enabled"] is False
        status, body = daemon.call("GET", "/v1/team/spend")
        assert status == 409 and body["error"]["code"] == "team_not_configured"
        assert "[team]" in body["error"]["message"]
        # The team cap holds for this machine alone.
        assert check(daemon)["decision"] == "allow"
    finally:
        daemon.cleanup()


def test_bad_team_config_is_refused_with_the_line() -> None:
    with pytest.raises(RuntimeError) as failure:
        Daemon(files={"spendwall.toml": '[team]\ndatabase = "mysql://x"\n'})
    assert "postgres://" in str(failure.value)
