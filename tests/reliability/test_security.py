"""Security: a process of another uid is refused even when the socket's file mode lets it
connect; provider keys injected by the proxy and redacted tag values never reach the ledger
file, its WAL, the daemon's log or an error body."""
from __future__ import annotations

import json
import os
import pwd
import urllib.error
import urllib.request
from typing import Any, Iterator, List

import openai
import pytest

import spendwall
import spendwall.openai
from rel import MSG, Daemon, Fake, Socket, grep_bytes, kill9, run_as, use_sdk

CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1] if len(sys.argv) > 1 else %r)
body = json.dumps({"provider": "openai", "model": "gpt-4o"}).encode()
s.sendall(b"POST /v1/check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: "
          + str(len(body)).encode() + b"\r\n\r\n" + body)
data = b""
while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
        [l for l in data.split(b"\r\n") if l.lower().startswith(b"content-length:")][0].split(b":")[1]):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, payload = data.partition(b"\r\n\r\n")
print(json.dumps({"status": int(head.split()[1]), "body": json.loads(payload)}))
"""


@pytest.fixture
def fake() -> Iterator[Fake]:
    f = Fake()
    yield f
    f.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as the user nobody")
def test_other_uid_is_refused_even_with_an_open_socket_mode() -> None:
    pwd.getpwnam("nobody")
    daemon = Daemon()
    try:
        # Open the way on the file system: only the daemon's uid check is left to refuse.
        for d in (daemon.root, os.path.dirname(daemon.socket)):
            os.chmod(d, 0o755)
        os.chmod(daemon.socket, 0o666)
        code = CLIENT % daemon.socket
        done = run_as("nobody", code)
        assert done.returncode == 0, done.stderr  # nobody could connect and got an answer
        answer = json.loads(done.stdout)
        assert answer["status"] == 403, answer
        assert answer["body"]["error"]["code"] == "forbidden_peer"
        # the daemon's own uid is served over the same socket, and nobody's attempt left no row
        status, check = daemon.call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o"})
        assert status == 200 and check["decision"] == "allow"
        assert daemon.call("GET", "/v1/ledger")[1]["rows"] == []
    finally:
        daemon.cleanup()


KEY = "sk-REL-SECRET-" + "7f3a9c" * 6
VALUE = "customer-secret-9d41e0@example.com"
SETTINGS = '[privacy]\nredact = ["customer"]\n'
CAPS = """
[[cap]]
name = "per-customer"
scope = { tag = { customer = "*" } }
window = "1d"
limit_usd = 0.000001
action = "block"
"""


def test_keys_and_redacted_values_stay_out_of_files_and_errors(fake: Fake, tmp_path: Any) -> None:
    daemon = Daemon(files={"spendwall.toml": SETTINGS},
                    env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url,
                         "SPENDWALL_LOG_LEVEL": "debug"})
    daemon.stop()
    keys = os.path.join(daemon.config_dir, "keys.toml")
    with open(keys, "w") as f:
        f.write(f'openai = "{KEY}"\nanthropic = "{KEY}-ant"\n')
    os.chmod(keys, 0o600)
    daemon.start()
    bodies: List[bytes] = []
    try:
        base = f"http://{daemon.address}"
        # key injection through the proxy: the placeholder goes in, the real key reaches the provider
        proxy = openai.OpenAI(api_key="spendwall", base_url=f"{base}/agent/rel-sec/v1", max_retries=0)
        proxy.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10,
                                      extra_headers={"x-spendwall-tags": f"customer={VALUE}"})
        sent = fake.requests()[-1]["headers"]
        assert {k.lower(): v for k, v in sent.items()}["authorization"] == f"Bearer {KEY}"
        # provider errors, a broken stream and the proxy's own refusals, each with the key injected
        for scenario in ("error-401", "error-500", "broken-stream"):
            try:
                if scenario == "broken-stream":
                    for _ in proxy.chat.completions.create(model="gpt-4o", messages=MSG, stream=True,
                                                           extra_headers={"x-fake-scenario": scenario}):
                        pass
                else:
                    proxy.chat.completions.create(model="gpt-4o", messages=MSG,
                                                  extra_headers={"x-fake-scenario": scenario})
            except openai.APIError as e:
                body = getattr(e, "body", None)
                bodies.append(json.dumps(body).encode() if body is not None else str(e).encode())
        for path, data, headers in [
            ("/v1/chat/completions", b"not json", {}),
            ("/v1/chat/completions", b'{"messages": []}', {}),
            ("/v1/nowhere", b"{}", {}),
        ]:
            req = urllib.request.Request(base + path, data=data, method="POST",
                                         headers={"authorization": "Bearer spendwall", "content-type": "application/json",
                                                  "x-spendwall-tags": f"customer={VALUE}", **headers})
            try:
                bodies.append(urllib.request.urlopen(req, timeout=10).read())
            except urllib.error.HTTPError as e:
                bodies.append(e.read())
        # a redacted tag through the SDK and the raw socket API, live and replayed from the spool
        use_sdk(daemon, str(tmp_path / "sdk"))
        sdk = spendwall.openai.wrap(openai.OpenAI(api_key="sk-fake", base_url=fake.url + "/v1", max_retries=0),
                                    agent="rel-sec", tags={"customer": VALUE})
        sdk.chat.completions.create(model="gpt-4o", messages=MSG, max_tokens=10)
        s = Socket(daemon.socket)
        for body in ({"provider": "openai", "model": "gpt-4o", "tags": {"customer": VALUE}},
                     {"provider": "openai", "model": "gpt-4o", "tags": {"customer": VALUE}, "mode": "bogus"},
                     {"provider": "openai", "model": 7, "tags": {"customer": VALUE}}):
            bodies.append(json.dumps(s.call("POST", "/v1/check", body)[1]).encode())
        bodies.append(json.dumps(s.call("POST", "/v1/reports", {"reports": [
            {"id": "rel-sec-1", "provider": "openai", "model": "gpt-4o", "tags": {"customer": VALUE},
             "usage": {"input_tokens": 1}}, {"id": "", "tags": {"customer": VALUE}}]})[1]).encode())
        # a cap keyed by the redacted tag refuses a call: its error names the key, hashed
        daemon.stop()
        with open(os.path.join(daemon.config_dir, "caps.toml"), "w") as f:
            f.write(CAPS)
        daemon.start()
        status, blocked = Socket(daemon.socket).call("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o",
                                                                           "tags": {"customer": VALUE}})
        assert blocked["decision"] == "block", blocked
        bodies.append(json.dumps(blocked).encode())
        proxy = openai.OpenAI(api_key="spendwall", base_url=f"http://{daemon.address}/v1", max_retries=0)
        with pytest.raises(openai.APIStatusError) as refused:
            proxy.chat.completions.create(model="gpt-4o", messages=MSG,
                                          extra_headers={"x-spendwall-tags": f"customer={VALUE}"})
        assert refused.value.status_code == 402
        bodies.append(refused.value.response.content)
        assert spendwall.flush(timeout=30)
        rows = daemon.call("GET", "/v1/ledger")[1]["rows"]
        assert any(r["tags"].get("customer") for r in rows)  # the tag is kept, as a keyed hash
        bodies.append(json.dumps(rows).encode())
        kill9(daemon)  # leave the WAL as it is, not checkpointed by a clean stop
        db = os.path.join(daemon.data_dir, "spendwall.db")
        files = [db, db + "-wal", db + "-shm", daemon.log_path]
        assert os.path.exists(db) and os.path.getsize(daemon.log_path) > 0
        leaks = grep_bytes(files, [KEY, VALUE])
        assert not leaks, leaks
        leaked_bodies = [b for b in bodies if KEY.encode() in b or VALUE.encode() in b]
        assert not leaked_bodies, leaked_bodies
        assert len(bodies) >= 10
    finally:
        spendwall.flush(timeout=10)
        daemon.cleanup()
