"""Helpers shared by the panel suites: logging in through the one-time link, and plain HTTP
requests to the loopback listener with chosen headers (urllib would add its own)."""
from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from typing import Any, Dict, Optional, Tuple

from conftest import Daemon


def login_link(daemon: Daemon) -> str:
    status, body = daemon.call("POST", "/v1/panel/link", {})
    assert status == 200, body
    return body["url"]


def raw(daemon: Daemon, method: str, path: str, headers: Optional[Dict[str, str]] = None,
        body: Any = None) -> Tuple[int, Dict[str, str], bytes]:
    """One request on the loopback listener; headers exactly as given (Host too)."""
    host, port = daemon.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        data = None if body is None else json.dumps(body).encode()
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if data is not None:
            conn.putheader("content-type", "application/json")
            conn.putheader("content-length", str(len(data)))
        conn.endheaders(data)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class Session:
    """A logged-in panel client: the cookie from the login link and the CSRF token."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.host = daemon.address
        link = urllib.parse.urlparse(login_link(daemon))
        status, headers, _ = raw(daemon, "GET", f"{link.path}?{link.query}", {"host": self.host})
        assert status == 303, status
        self.set_cookie = headers["set-cookie"]
        self.cookie = self.set_cookie.split(";", 1)[0]
        status, _, body = self.get("/panel/api/session")
        assert status == 200, body
        self.csrf = json.loads(body)["csrf"]

    def headers(self, **extra: str) -> Dict[str, str]:
        h = {"host": self.host, "cookie": self.cookie}
        h.update({k.replace("_", "-"): v for k, v in extra.items()})
        return h

    def get(self, path: str, **extra: str) -> Tuple[int, Dict[str, str], bytes]:
        return raw(self.daemon, "GET", path, self.headers(**extra))

    def send(self, method: str, path: str, body: Any = None, csrf: bool = True,
             **extra: str) -> Tuple[int, Dict[str, Any]]:
        headers = self.headers(**extra)
        if csrf:
            headers["x-csrf-token"] = self.csrf
        status, _, data = raw(self.daemon, method, path, headers, body)
        return status, json.loads(data or b"{}")


# Seeded rows are posted by small scripts named after their app, so the kernel-attested app of
# each row comes out as that app through these labels (the app cannot be claimed in a report).
SEED_APPS = {"reviewer": "code-reviewer", "Claude Code": "claude-code", "Codex": "codex", "notebook": None,
             "support-bot": "triage"}


def _slug(app: str) -> str:
    return app.lower().replace(" ", "-")


SEED_LABELS = "".join(f'[[label]]\nexe = "*/python3*"\nscript = "*/seed-{_slug(app)}.py"\napp = "{app}"\n\n'
                      for app in SEED_APPS)

_POSTER = """
import http.client, json, socket, sys
class U(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); self.sock.connect(sys.argv[1])
for batch in json.load(open(sys.argv[2])):
    c = U("localhost", timeout=120)
    c.request("POST", "/v1/reports", body=json.dumps({"reports": batch}), headers={"content-type": "application/json"})
    r = c.getresponse(); body = r.read()
    if r.status != 200: sys.exit(f"{r.status}: {body[:300]!r}")
    c.close()
"""


def seed(daemon: Daemon, rows: int, days: int = 30, batch: int = 1000, seed_value: int = 7) -> None:
    """Spreads `rows` ledger rows over the last `days` days through POST /v1/reports, each app's
    rows sent by a process the daemon labels as that app (the daemon needs SEED_LABELS)."""
    rng = random.Random(seed_value)
    now = int(time.time() * 1000)
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "claude-haiku-4-5", "o3-mini"]
    customers = ["acme", "globex", "initech"]
    by_app: Dict[str, list] = {app: [] for app in SEED_APPS}
    weights = [5, 4, 3, 1, 2]
    for i in range(rows):
        app = rng.choices(list(SEED_APPS), weights)[0]
        agent = SEED_APPS[app]
        model = rng.choice(models)
        provider = "anthropic" if model.startswith("claude") else "openai"
        item = {"id": f"seed-{seed_value}-{i}", "provider": provider, "model": model,
                "time_ms": now - rng.randrange(days * 86_400_000),
                "usage": {"input_tokens": rng.randrange(200, 9000), "output_tokens": rng.randrange(50, 2000)},
                "status": 200, "outcome": "ok", "duration_ms": rng.randrange(200, 9000),
                "tags": {"customer": rng.choice(customers)}}
        if agent:
            item["agent"] = agent
        by_app[app].append(item)
    directory = tempfile.mkdtemp(prefix="swseed-")
    try:
        procs = []
        for app, items in by_app.items():
            script = os.path.join(directory, f"seed-{_slug(app)}.py")
            with open(script, "w") as f:
                f.write(_POSTER)
            data = os.path.join(directory, f"{len(procs)}.json")
            with open(data, "w") as f:
                json.dump([items[i:i + batch] for i in range(0, len(items), batch)], f)
            procs.append(subprocess.Popen([sys.executable, script, daemon.socket, data]))
        for p in procs:
            assert p.wait(timeout=600) == 0, "seeding failed"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
