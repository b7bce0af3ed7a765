"""The panel's access rules over plain HTTP against the real daemon: the token file, the
one-time login link and its cookie, and a refusal for each missing piece — no cookie, a
foreign Origin, a non-loopback Host, no CSRF token — with the daemon still serving after."""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import urllib.parse
from typing import Iterator

import pytest
from conftest import REPO, Daemon
from panel_helpers import Session, login_link, raw

CAPS = """
# my caps; this comment stays
[[cap]]
name = "keep-me"
scope = { agent = "a" }
window = "1d"
limit_usd = 5.0
action = "block"
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    d = Daemon(files={"caps.toml": CAPS})
    yield d
    d.cleanup()


@pytest.fixture(scope="module")
def session(daemon: Daemon) -> Session:
    return Session(daemon)


def error_code(data: bytes) -> str:
    return json.loads(data)["error"]["code"]


def test_the_token_file_is_private(daemon: Daemon) -> None:
    path = os.path.join(daemon.config_dir, "panel.token")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    assert len(open(path).read().strip()) == 64


def test_the_login_link_sets_a_strict_httponly_cookie_once(daemon: Daemon) -> None:
    link = urllib.parse.urlparse(login_link(daemon))
    assert link.scheme == "http" and link.netloc == daemon.address and link.path == "/panel/login"
    target = f"{link.path}?{link.query}"
    status, headers, _ = raw(daemon, "GET", target, {"host": daemon.address})
    assert status == 303 and headers["location"] == "/panel/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/panel/" in cookie
    token = open(os.path.join(daemon.config_dir, "panel.token")).read().strip()
    assert cookie.split(";", 1)[0].split("=", 1)[1] == token
    # the same link a second time: refused, and no cookie
    status, headers, body = raw(daemon, "GET", target, {"host": daemon.address})
    assert status == 401 and "set-cookie" not in headers
    assert b"spendwall panel" in body
    # a made-up code
    status, _, _ = raw(daemon, "GET", "/panel/login?code=0000", {"host": daemon.address})
    assert status == 401


def test_the_cli_prints_a_working_link(daemon: Daemon) -> None:
    binary = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
    env = dict(daemon.env)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    out = subprocess.run([binary, "panel", "--no-open"], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    url = next(line for line in out.stdout.splitlines() if line.startswith("http://"))
    link = urllib.parse.urlparse(url)
    status, headers, _ = raw(daemon, "GET", f"{link.path}?{link.query}", {"host": daemon.address})
    assert status == 303 and "set-cookie" in headers


def test_pages_are_served_with_security_headers(daemon: Daemon) -> None:
    status, headers, body = raw(daemon, "GET", "/panel/", {"host": daemon.address})
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/panel/panel.js" in body
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    for asset, kind in [("panel.js", "text/javascript"), ("panel.css", "text/css"), ("favicon.svg", "image/svg")]:
        status, headers, _ = raw(daemon, "GET", "/panel/" + asset, {"host": daemon.address})
        assert status == 200 and headers["content-type"].startswith(kind)
    status, headers, _ = raw(daemon, "GET", "/panel", {"host": daemon.address})
    assert status == 303 and headers["location"] == "/panel/"
    status, _, body = raw(daemon, "GET", "/panel/nope.js", {"host": daemon.address})
    assert status == 404 and error_code(body) == "not_found"


def test_the_api_refuses_a_request_without_the_cookie(daemon: Daemon, session: Session) -> None:
    for path in ["/panel/api/session", "/panel/api/ledger", "/panel/api/spend", "/panel/api/events"]:
        status, _, body = raw(daemon, "GET", path, {"host": daemon.address})
        assert status == 401 and error_code(body) == "unauthorized", path
    status, _, body = raw(daemon, "GET", "/panel/api/ledger",
                          {"host": daemon.address, "cookie": session.cookie.split("=")[0] + "=wrong"})
    assert status == 401 and error_code(body) == "unauthorized"
    status, _, body = raw(daemon, "POST", "/panel/api/kill",
                          {"host": daemon.address, "x-csrf-token": session.csrf}, {})
    assert status == 401
    assert daemon.call("GET", "/v1/kill")[1]["on"] == []


def test_the_api_refuses_a_foreign_origin(daemon: Daemon, session: Session) -> None:
    for origin in ["https://evil.example", "http://127.0.0.1:1", "null"]:
        status, _, body = session.get("/panel/api/ledger", origin=origin)
        assert status == 403 and error_code(body) == "forbidden_origin", origin
    status, body = session.send("POST", "/panel/api/kill", {}, origin="https://evil.example")
    assert status == 403 and body["error"]["code"] == "forbidden_origin"
    assert daemon.call("GET", "/v1/kill")[1]["on"] == []
    # its own origin is fine
    status, _, _ = session.get("/panel/api/ledger", origin="http://" + daemon.address)
    assert status == 200


def test_the_panel_refuses_a_non_loopback_host(daemon: Daemon, session: Session) -> None:
    port = daemon.address.rsplit(":", 1)[1]
    for host in [f"evil.example:{port}", "rebind.attacker.test", f"192.168.1.5:{port}", f"127.0.0.1.nip.io:{port}"]:
        for path in ["/panel/", "/panel/api/ledger", "/panel/login?code=x"]:
            status, _, body = raw(daemon, "GET", path, {"host": host, "cookie": session.cookie})
            assert status == 403 and error_code(body) == "forbidden_host", (host, path)
    # and other loopback spellings are fine
    for host in [f"localhost:{port}", f"127.0.0.1:{port}"]:
        assert raw(daemon, "GET", "/panel/", {"host": host})[0] == 200


def test_changes_need_the_csrf_token(daemon: Daemon, session: Session) -> None:
    status, body = session.send("POST", "/panel/api/kill", {"agent": "x"}, csrf=False)
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, body = session.send("POST", "/panel/api/kill", {"agent": "x"}, csrf=False, x_csrf_token="nope")
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, body = session.send("PUT", "/panel/api/caps/x", {"scope": "global", "window": "1d", "limit_usd": 1},
                                csrf=False)
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, body = session.send("POST", "/panel/api/approvals/ap_x/resolve", {"decision": "approve"}, csrf=False)
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    assert daemon.call("GET", "/v1/kill")[1]["on"] == []
    # with the token: the switch flips, through the socket API's own handler
    status, body = session.send("POST", "/panel/api/kill", {"agent": "x"})
    assert status == 200 and body["scope"] == {"kind": "agent", "value": "x"}
    assert daemon.call("GET", "/v1/kill")[1]["on"] == [{"kind": "agent", "value": "x"}]
    status, body = session.send("POST", "/panel/api/kill", {"agent": "x", "on": False})
    assert status == 200 and daemon.call("GET", "/v1/kill")[1]["on"] == []


def test_the_api_is_the_socket_apis_reads(daemon: Daemon, session: Session) -> None:
    for path in ["/panel/api/spend?by=model&since=1d", "/panel/api/ledger?limit=5", "/panel/api/snapshot",
                 "/panel/api/approvals", "/panel/api/kill", "/panel/api/spend/series?by=app&since=7d"]:
        status, headers, body = session.get(path)
        assert status == 200, (path, body)
        assert headers["cache-control"] == "no-store"
    snap = json.loads(session.get("/panel/api/snapshot")[2])
    assert snap == daemon.call("GET", "/v1/policy/snapshot")[1] | {"reservations_in_flight": snap["reservations_in_flight"]}
    # bad input: the socket API's structured error, and the daemon keeps serving
    status, _, body = session.get("/panel/api/spend?by=nothing")
    assert status == 400 and error_code(body) == "bad_request"
    # what the panel does not offer: checks, reports, reloads
    for method, path in [("POST", "/panel/api/check"), ("POST", "/panel/api/reports"), ("POST", "/panel/api/reload")]:
        status, body = session.send(method, path, {})
        assert status == 404 and body["error"]["code"] == "not_found", path
    assert daemon.call("GET", "/v1/health")[0] == 200


def test_sessions_and_reconciliation_are_the_socket_apis_reads(daemon: Daemon, session: Session) -> None:
    status, started = daemon.call("POST", "/v1/sessions", {"command": ["codex"], "name": "panel reads"})
    assert status == 200, started
    sid = started["session"]["id"]
    diff = base64.b64encode(b"diff --git a/x b/x\n+one line\n").decode()
    status, _ = daemon.call("POST", f"/v1/sessions/{sid}/finish", {
        "stop_reason": "exited", "exit_code": 0, "artifacts": [{"kind": "git_diff", "content_base64": diff},
                                                               {"kind": "output", "content_base64": diff}]})
    assert status == 200
    for panel, socket in [("/panel/api/sessions", "/v1/sessions"), (f"/panel/api/sessions/{sid}", f"/v1/sessions/{sid}"),
                          (f"/panel/api/sessions/{sid}/artifacts/git_diff", f"/v1/sessions/{sid}/artifacts/git_diff"),
                          ("/panel/api/reconcile?period=2026-11", "/v1/reconcile?period=2026-11")]:
        status, headers, body = session.get(panel)
        assert status == 200, (panel, body)
        assert headers["cache-control"] == "no-store"
        assert json.loads(body) == daemon.call("GET", socket)[1], panel
    # the socket API's errors, as they are
    status, _, body = session.get("/panel/api/sessions/s-nope")
    assert status == 404 and error_code(body) == "not_found" and b"sessions ls" in body
    status, _, body = session.get("/panel/api/reconcile?period=2026-13")
    assert status == 400 and error_code(body) == "bad_request"
    # nothing that starts, finishes or reads the terminal output of a session, nor imports bills
    for method, path in [("POST", "/panel/api/sessions"), ("POST", f"/panel/api/sessions/{sid}/finish"),
                         ("GET", f"/panel/api/sessions/{sid}/artifacts/output"),
                         ("POST", "/panel/api/reconcile/import")]:
        status, body = session.send(method, path, {"command": ["x"], "stop_reason": "killed", "content": "x"})
        assert status == 404 and body["error"]["code"] == "not_found", path
    assert daemon.call("GET", f"/v1/sessions/{sid}")[1]["session"]["stop_reason"] == "exited"


def test_the_new_reads_need_the_cookie_and_stopping_a_session_the_csrf_token(daemon: Daemon,
                                                                            session: Session) -> None:
    status, started = daemon.call("POST", "/v1/sessions", {"command": ["claude"], "budget_nanousd": 1_000_000})
    assert status == 200, started
    sid = started["session"]["id"]
    for path in ["/panel/api/sessions", f"/panel/api/sessions/{sid}", f"/panel/api/sessions/{sid}/artifacts/git_diff",
                 "/panel/api/reconcile"]:
        status, _, body = raw(daemon, "GET", path, {"host": daemon.address})
        assert status == 401 and error_code(body) == "unauthorized", path
        status, _, body = session.get(path, origin="https://evil.example")
        assert status == 403 and error_code(body) == "forbidden_origin", path
    # stopping a session is the kill switch with the session's scope: no cookie, no CSRF → refused
    status, _, body = raw(daemon, "POST", "/panel/api/kill", {"host": daemon.address, "x-csrf-token": session.csrf},
                          {"session": sid})
    assert status == 401 and error_code(body) == "unauthorized"
    status, body = session.send("POST", "/panel/api/kill", {"session": sid}, csrf=False)
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    assert daemon.call("GET", "/v1/kill")[1]["on"] == []
    check = {"provider": "openai", "model": "gpt-4o", "session": sid,
             "request": {"max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}}
    assert daemon.call("POST", "/v1/check", check)[1]["decision"] != "killed"
    # with both: the session's switch is on and its next check answers killed
    status, body = session.send("POST", "/panel/api/kill", {"session": sid})
    assert status == 200 and body["scope"] == {"kind": "session", "value": sid}
    assert daemon.call("POST", "/v1/check", check)[1]["decision"] == "killed"
    assert session.send("POST", "/panel/api/kill", {"session": sid, "on": False})[0] == 200
    assert daemon.call("POST", "/v1/sessions/" + sid + "/finish", {"stop_reason": "killed"})[0] == 200


def test_caps_are_edited_in_caps_toml(daemon: Daemon, session: Session) -> None:
    path = os.path.join(daemon.config_dir, "caps.toml")
    status, body = session.send("PUT", "/panel/api/caps/web-daily",
                                {"scope": "agent=web", "window": "day", "limit_usd": 2.5, "action": "alert",
                                 "warn_at": 0.5})
    assert status == 200, body
    assert body == {"name": "web-daily", "saved": True, "caps": 2}
    text = open(path).read()
    assert "# my caps; this comment stays" in text and 'name = "web-daily"' in text and "limit_usd = 2.5" in text
    caps = {c["name"]: c for c in daemon.call("GET", "/v1/policy/snapshot")[1]["caps"]}
    assert caps["web-daily"]["action"] == "alert" and caps["web-daily"]["limit_nanousd"] == 2_500_000_000
    # edit in place
    status, body = session.send("PUT", "/panel/api/caps/web-daily",
                                {"scope": "agent=web", "window": "7d", "limit_usd": 3})
    assert status == 200 and open(path).read().count('name = "web-daily"') == 1
    # bad input: structured errors, nothing written
    before = open(path).read()
    for bad, code in [({"scope": "planet=mars", "window": "1d", "limit_usd": 1}, "bad_request"),
                      ({"scope": "global", "window": "fortnight", "limit_usd": 1}, "bad_request"),
                      ({"scope": "global", "window": "1d"}, "bad_request"),
                      ({"scope": "global", "window": "1d", "limit_usd": -1}, "bad_request")]:
        status, body = session.send("PUT", "/panel/api/caps/web-daily", bad)
        assert status == 400 and body["error"]["code"] == code, bad
    status, body = session.send("PUT", "/panel/api/caps/bad%20name", {"scope": "global", "window": "1d",
                                                                      "limit_usd": 1})
    assert status == 400
    assert open(path).read() == before
    # delete
    status, body = session.send("DELETE", "/panel/api/caps/web-daily")
    assert status == 200 and body["caps"] == 1
    assert "web-daily" not in open(path).read() and "keep-me" in open(path).read()
    status, body = session.send("DELETE", "/panel/api/caps/web-daily")
    assert status == 404 and body["error"]["code"] == "not_found"


def test_the_embedded_assets_are_current() -> None:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "embed-panel-assets.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
