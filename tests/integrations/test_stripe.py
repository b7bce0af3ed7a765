"""Stripe in, against the real daemon: events signed here with a known secret pass
`POST /webhooks/stripe`; a wrong secret, a tampered body, old, future and negative timestamps,
a duplicate event id and a missing header are each refused with their reason. A seeded month of
ledger rows and an invoice give the expected drift, stored, shown by `spendwall reconcile`, and
raised as a ReconciliationDrift alert to a local webhook."""
from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import sqlite3
import subprocess
import time
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
from conftest import REPO, Daemon, wait_until

from tests.integrations.receiver import Receiver

SECRET = "whsec_spendwall_test"
NOV_2026 = 1_793_491_200  # 2026-11-01T00:00:00Z
DEC_2026 = 1_796_083_200


def cli() -> str:
    return os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")


def sign(body: bytes, t: Any, secret: str = SECRET) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def daemon(receiver: Receiver) -> Iterator[Daemon]:
    toml = f"""
[[transport]]
name = "hook"
type = "webhook"
url = "{receiver.url('/drift')}"

[[route]]
kinds = ["ReconciliationDrift"]
transports = ["hook"]

[stripe]
secret_env = "TEST_STRIPE_SECRET"
tolerance = "5m"
drift_threshold_usd = 1.0

[[stripe.map]]
description = "*OpenAI*"
provider = "openai"

[[stripe.map]]
product = "prod_claude"
provider = "anthropic"
"""
    d = Daemon(files={"alerts.toml": toml}, env={"TEST_STRIPE_SECRET": SECRET})
    yield d
    d.cleanup()


def post(daemon: Daemon, body: bytes, signature: Optional[str]) -> Tuple[int, Dict[str, Any]]:
    host, port = daemon.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def event(event_id: str, **extra: Any) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": "customer.created", "created": int(time.time()),
                       "livemode": False, "data": {"object": {"id": "cus_1"}}, **extra}).encode()


def test_a_correctly_signed_event_passes_and_is_stored(daemon: Daemon) -> None:
    body = event("evt_ok")
    status, answer = post(daemon, body, sign(body, int(time.time())))
    assert status == 200 and answer["processed"] is True and answer["id"] == "evt_ok", answer
    with sqlite3.connect(os.path.join(daemon.data_dir, "spendwall.db")) as db:
        row = db.execute("SELECT type, payload FROM stripe_events WHERE id = 'evt_ok'").fetchone()
    assert row[0] == "customer.created" and row[1].encode() == body


@pytest.mark.parametrize("case, code", [
    ("wrong_secret", "signature_mismatch"),
    ("tampered_body", "signature_mismatch"),
    ("old_timestamp", "timestamp_too_old"),
    ("future_timestamp", "timestamp_in_future"),
    ("negative_timestamp", "invalid_timestamp"),
    ("huge_timestamp", "invalid_timestamp"),
    ("missing_header", "missing_signature"),
    ("no_v1", "no_v1_signature"),
])
def test_bad_deliveries_are_refused_with_their_reason(daemon: Daemon, case: str, code: str) -> None:
    body = event(f"evt_{case}")
    now = int(time.time())
    signature: Optional[str] = {
        "wrong_secret": sign(body, now, "whsec_wrong"),
        "tampered_body": sign(body, now),
        "old_timestamp": sign(body, now - 3600),
        "future_timestamp": sign(body, now + 3600),
        "negative_timestamp": sign(body, -now),
        "huge_timestamp": sign(body, 2**64 + now),
        "missing_header": None,
        "no_v1": f"t={now},v0=abc",
    }[case]
    sent = body.replace(b"cus_1", b"cus_2") if case == "tampered_body" else body
    status, answer = post(daemon, sent, signature)
    assert status == 400, answer
    assert answer["error"]["code"] == code, answer
    assert answer["error"]["message"]
    with sqlite3.connect(os.path.join(daemon.data_dir, "spendwall.db")) as db:
        assert db.execute("SELECT COUNT(*) FROM stripe_events WHERE id = ?", (f"evt_{case}",)).fetchone()[0] == 0
    # The daemon keeps serving.
    assert daemon.call("GET", "/v1/health")[0] == 200


def test_a_duplicate_event_id_is_not_processed_twice(daemon: Daemon) -> None:
    body = event("evt_dup")
    assert post(daemon, body, sign(body, int(time.time())))[1]["processed"] is True
    status, answer = post(daemon, body, sign(body, int(time.time())))
    # 2xx so Stripe stops redelivering; the reason says it was a replay.
    assert status == 200 and answer["processed"] is False and answer["reason"] == "duplicate_event", answer


def seed_ledger(daemon: Daemon) -> None:
    """A month of OpenAI rows ($3.25 a day for 30 days = $97.50), some Anthropic spend, and rows
    just outside November that must not count."""
    rows = []
    for day in range(30):
        rows.append((f"seed-o-{day}", (NOV_2026 + day * 86_400 + 3_600) * 1000, "openai", 3_250_000_000))
    rows.append(("seed-a-1", (NOV_2026 + 86_400) * 1000, "anthropic", 40_000_000_000))
    rows.append(("seed-oct", NOV_2026 * 1000 - 1, "openai", 999_000_000_000))
    rows.append(("seed-dec", DEC_2026 * 1000, "openai", 999_000_000_000))
    with sqlite3.connect(os.path.join(daemon.data_dir, "spendwall.db"), timeout=10) as db:
        db.executemany(
            "INSERT INTO spend_events (request_id, time_ms, path, provider, model, app, cost_nanousd, priced, outcome)"
            " VALUES (?, ?, 'sdk', ?, 'seeded', 'seed', ?, 1, 'ok')", rows)


def invoice_event(event_id: str, lines: Any) -> bytes:
    return json.dumps({
        "id": event_id, "object": "event", "type": "invoice.paid", "created": DEC_2026 + 86_400,
        "data": {"object": {"id": "in_nov", "object": "invoice", "currency": "usd", "created": DEC_2026 + 86_400,
                            "lines": {"object": "list", "data": lines}}},
    }).encode()


def test_a_seeded_month_and_an_invoice_give_the_expected_drift(daemon: Daemon, receiver: Receiver) -> None:
    seed_ledger(daemon)
    period = {"start": NOV_2026, "end": DEC_2026}
    body = invoice_event("evt_invoice", [
        {"id": "il_1", "amount": 10_000, "currency": "usd", "description": "OpenAI API usage (November)", "period": period},
        {"id": "il_2", "amount": 4_000, "currency": "usd", "description": "Claude", "period": period,
         "price": {"id": "price_1", "product": "prod_claude"}},
        {"id": "il_3", "amount": 2_500, "currency": "usd", "description": "Hosting", "period": period},
    ])
    status, answer = post(daemon, body, sign(body, int(time.time())))
    assert status == 200, answer
    groups = {g["provider"]: g for g in answer["reconciled"]}
    # Billed $100.00 against $97.50 seen: $2.50 (2.5%) drift, past the $1 threshold.
    assert groups["openai"]["billed_nanousd"] == 100_000_000_000
    assert groups["openai"]["ledger_nanousd"] == 97_500_000_000
    assert groups["openai"]["drift_nanousd"] == 2_500_000_000
    assert groups["openai"]["drift_percent"] == 2.5 and groups["openai"]["drifted"] is True
    # Anthropic billed exactly what the ledger saw.
    assert groups["anthropic"]["drift_nanousd"] == 0 and groups["anthropic"]["drifted"] is False
    with sqlite3.connect(os.path.join(daemon.data_dir, "spendwall.db")) as db:
        stored = db.execute("SELECT billed_nanousd, ledger_nanousd, drift_nanousd FROM reconciliations"
                            " WHERE period = '2026-11' AND provider = 'openai' AND source = 'stripe'").fetchone()
    assert stored == (100_000_000_000, 97_500_000_000, 2_500_000_000)
    wait_until(lambda: receiver.json("/drift"), "the ReconciliationDrift alert")
    drift = receiver.json("/drift")[0]
    assert drift["kind"] == "ReconciliationDrift" and drift["data"]["drift_nanousd"] == 2_500_000_000
    assert [d["data"]["provider"] for d in receiver.json("/drift")] == ["openai"]

    table = subprocess.run([cli(), "reconcile", "--period", "2026-11"], env=daemon.env, capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    line = [l for l in table.stdout.splitlines() if "openai" in l and "stripe" in l][0]
    assert "$100.00" in line and "$97.50" in line and "$2.50" in line and "DRIFT" in line
    bad = subprocess.run([cli(), "reconcile", "--period", "2026-13"], env=daemon.env, capture_output=True, text=True)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr


def test_cost_exports_import_for_both_providers(daemon: Daemon, tmp_path: Any) -> None:
    anthropic = tmp_path / "anthropic-cost.json"
    anthropic.write_text(json.dumps({"data": [
        {"starting_at": "2026-11-03T00:00:00Z", "ending_at": "2026-11-04T00:00:00Z",
         "results": [{"currency": "USD", "amount": "2500.00", "cost_type": "tokens", "model": "claude-sonnet-4-5"}]},
        {"starting_at": "2026-11-04T00:00:00Z", "ending_at": "2026-11-05T00:00:00Z",
         "results": [{"currency": "USD", "amount": "1500.5", "cost_type": "tokens"}]},
    ], "has_more": False, "next_page": None}))
    out = subprocess.run([cli(), "reconcile", "import", str(anthropic), "--json"], env=daemon.env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout)["rows"] if r["source"] == "import:anthropic"]
    assert rows[0]["billed_nanousd"] == 40_005_000_000
    openai_csv = tmp_path / "openai-costs.csv"
    openai_csv.write_text("start_time,end_time,amount_value,currency,line_item\n"
                          f"{NOV_2026},{NOV_2026 + 86400},1.25,usd,gpt-4o\n")
    ok = subprocess.run([cli(), "reconcile", "import", str(openai_csv)], env=daemon.env, capture_output=True, text=True)
    assert ok.returncode == 0 and "import:openai" in ok.stdout, ok.stderr
    junk = tmp_path / "junk.csv"
    junk.write_text("foo,bar\n1,2\n")
    bad = subprocess.run([cli(), "reconcile", "import", str(junk)], env=daemon.env, capture_output=True, text=True)
    assert bad.returncode == 2 and "unrecognised CSV header" in bad.stderr and "unsupported_export" in bad.stderr


def test_without_a_secret_the_webhook_says_how_to_set_it_up() -> None:
    d = Daemon()
    try:
        status, answer = post(d, b"{}", "t=1,v1=00")
        assert status == 503 and answer["error"]["code"] == "stripe_not_configured"
        assert "alerts.toml" in answer["error"]["message"]
    finally:
        d.cleanup()
