"""The daemon's own fail mode and approval wait, as the SDK follows them: `[policy] fail_mode`
and `approval_timeout` read from spendwall.toml; a fail-closed refusal (503, `fail_closed`)
raised in every mode; a check held for approval never timing out into fail-open."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import openai
import pytest

import spendwall
import spendwall._config as cfg
import spendwall._daemonconfig as dc
import spendwall.openai
from conftest import Daemon, Fake, expected, usage_of, wait_until
from spendwall._client import AsyncUnixTransport, UnixTransport

MSG = [{"role": "user", "content": "hi"}]


def sdk_config(text: Optional[str]) -> Path:
    """Writes (or removes) spendwall.toml in the SDK's config dir ($SPENDWALL_CONFIG_DIR)."""
    path = Path(os.environ["SPENDWALL_CONFIG_DIR"]) / "spendwall.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(text)
    return path


def spool_lines() -> List[Dict[str, Any]]:
    try:
        with open(os.path.join(os.environ["SPENDWALL_DATA_DIR"], "spool", "reports.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def oai(fake: Fake, **wrap: Any) -> Any:
    return spendwall.openai.wrap(openai.OpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0), **wrap)


def aoai(fake: Fake, **wrap: Any) -> Any:
    return spendwall.openai.wrap(openai.AsyncOpenAI(api_key="k", base_url=fake.url + "/v1", max_retries=0), **wrap)


def raised(fn: Callable[[], Any]) -> Optional[BaseException]:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - returned to the test
        return exc
    return None


def three_ways(fake: Fake, **wrap: Any) -> Dict[str, Callable[[], Any]]:
    """A plain, a streamed and an asyncio call, each run to its end."""
    client = oai(fake, **wrap)

    def plain() -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    def streamed() -> Any:
        return list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))

    def in_asyncio() -> Any:
        async def main() -> Any:
            c = aoai(fake, **wrap)
            try:
                return await c.chat.completions.create(model="gpt-4o", messages=MSG)
            finally:
                await c.close()
        return asyncio.run(main())

    return {"plain": plain, "stream": streamed, "asyncio": in_asyncio}


# ---------------------------------------------------------------------- 1. fail_mode = "closed"

def test_fail_mode_closed_in_spendwall_toml_raises_before_upstream(fake: Fake) -> None:
    """No daemon, and the daemon's config (the SDK's config dir) says fail_mode = "closed":
    every call raises DaemonUnavailable before anything is sent upstream. The file is followed
    as it changes: back to "open", calls go through and are spooled."""
    fake.reset()
    path = sdk_config('# the daemon\'s settings\n[daemon]\nlog_level = "info"\n\n[policy]\n'
                      'fail_mode = "closed"   # refuse when unsure\napproval_timeout = "5m"\n')
    calls = three_ways(fake)
    for name, call in calls.items():
        exc = raised(call)
        assert isinstance(exc, spendwall.DaemonUnavailable), (name, exc)
        assert exc.reason == "unreachable" and 'fail_mode is "closed"' in str(exc), (name, str(exc))
    assert fake.requests() == []

    path.write_text('[policy]\nfail_mode = "open"\n')
    for call in calls.values():
        call()  # fail-open: the calls go through
    assert len(fake.requests()) == 3
    assert spendwall.flush()
    assert len(spool_lines()) == 3

    path.write_text('[policy]\nfail_mode = "closed"\n')
    assert isinstance(raised(calls["plain"]), spendwall.DaemonUnavailable)
    assert len(fake.requests()) == 3

    # a config dir given to configure() wins over the environment
    spendwall.configure(config_dir=str(path.parent.parent / "elsewhere"))
    calls["plain"]()
    assert len(fake.requests()) == 4


POLICY_FILES = [
    ('[policy]\nfail_mode = "closed"\napproval_timeout = "2s"\n', ("closed", 2.0)),
    ('[policy]\nfail_mode = \'closed\' # literal\napproval_timeout = "3m"  # comment\n', ("closed", 180.0)),
    ('policy.fail_mode = "closed"\npolicy.approval_timeout = "1h"\n', ("closed", 3600.0)),
    ('[ policy ]\n  fail_mode = "open"\n', ("open", None)),
    ('["policy"]\nfail_mode = "closed"\n', ("closed", None)),
    ('[daemon]\nfail_mode = "closed"\n[policy]\napproval_timeout = "10s"\n', (None, 10.0)),
    ('[policy]\nfail_mode = "sometimes"\napproval_timeout = "5 minutes"\n', (None, None)),
    ('[policy]\napproval_timeout = "0s"\n', (None, None)),
    ('[policy.sub]\nfail_mode = "closed"\n', (None, None)),
    ('[[cap]]\nname = "x"\nfail_mode = "closed"\n[policy]\nfail_mode = "closed"\n', ("closed", None)),
    ('[policy]\nnote = """\nfail_mode = "open"\n"""\nfail_mode = "closed"\n', ("closed", None)),
    ('', (None, None)),
]


@pytest.mark.parametrize("with_tomllib", [True, False])
@pytest.mark.parametrize("text,want", POLICY_FILES)
def test_policy_reader(monkeypatch: pytest.MonkeyPatch, text: str, want: Any, with_tomllib: bool) -> None:
    if not with_tomllib:
        monkeypatch.setattr(dc, "_tomllib", None)  # what Python 3.9 and 3.10 get
    elif dc._tomllib is None:
        pytest.skip("no tomllib on this Python")
    assert tuple(dc.parse_policy(text)) == want


def test_policy_reader_invalid_toml_and_unreadable_files(tmp_path: Path) -> None:
    # not valid TOML (a duplicate table): the two keys are still read
    assert tuple(dc.parse_policy('[policy]\nfail_mode = "closed"\n[policy]\nx = 1\n')) == ("closed", None)
    missing = tmp_path / "missing"
    assert dc.daemon_policy(str(missing)) == dc.NONE
    assert dc.approval_timeout(str(missing)) == dc.DEFAULT_APPROVAL_TIMEOUT
    odd = tmp_path / "odd"
    (odd / "spendwall.toml").mkdir(parents=True)  # a directory where the file should be
    assert dc.daemon_policy(str(odd)) == dc.NONE
    ok = tmp_path / "ok"
    ok.mkdir()
    f = ok / "spendwall.toml"
    f.write_text('[policy]\napproval_timeout = "7s"\n')
    assert dc.approval_timeout(str(ok)) == 7.0
    f.write_text('[policy]\napproval_timeout = "9s"\n')  # same size, new mtime
    os.utime(f, ns=(1, 1))
    assert dc.approval_timeout(str(ok)) == 9.0
    # the default config dir follows the daemon's order of variables
    env = {k: v for k, v in os.environ.items() if k not in ("SPENDWALL_CONFIG_DIR", "XDG_CONFIG_HOME")}
    code = "import spendwall._daemonconfig as d; print(d.default_config_dir())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, XDG_CONFIG_HOME="/x/cfg"), capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "/x/cfg/spendwall"
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, HOME="/x/home"), capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "/x/home/.config/spendwall"


# ---------------------------------------------------------------------- 2. fail-closed refusals

class LedgerLock:
    """Another process holding SQLite's write lock on the ledger (as a database browser left in
    a transaction does): the daemon's writes wait out its busy timeout, then fail."""

    def __init__(self, database: str) -> None:
        code = ("import sqlite3, sys\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "c.execute('BEGIN EXCLUSIVE')\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n"
                "c.execute('ROLLBACK')\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code, database], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


def health(d: Daemon) -> str:
    return d.request("GET", "/v1/health")[1].get("status")


@pytest.mark.parametrize("sdk_reads_daemon_config", [False, True])
def test_fail_closed_refusal_raises_even_in_fail_open_mode(monkeypatch: pytest.MonkeyPatch, fake: Fake, agent: str,
                                                           sdk_reads_daemon_config: bool) -> None:
    """The daemon's ledger cannot write and its fail_mode is "closed": it answers checks 503
    with `fail_closed`. The SDK raises before anything goes upstream — also when it runs
    fail-open itself (its config dir is not the daemon's) — and works again once the ledger
    writes again; the report that failed meanwhile was spooled and is recorded once."""
    d = Daemon(caps="", settings='[policy]\nfail_mode = "closed"\n').start()
    try:
        monkeypatch.setenv("SPENDWALL_SOCKET", d.socket)
        if sdk_reads_daemon_config:
            monkeypatch.setenv("SPENDWALL_CONFIG_DIR", d.config_dir)
        cfg.reset()
        fake.reset()
        client = oai(fake, agent=agent)
        sent = ["10,5,0,0,0", "11,6,0,0,0", "12,7,0,0,0"]
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": sent[0]})
        assert len(d.rows(agent, 1)) == 1

        lock = LedgerLock(os.path.join(d.data_dir, "spendwall.db"))
        try:
            # allowed (a check writes nothing); its report waits out the daemon's busy timeout and
            # is refused (503): the SDK spools it, and the daemon marks its ledger failing
            client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": sent[1]})
            assert spendwall.flush()
            [spooled] = spool_lines()
            assert spooled["reservation_id"].startswith("r_")
            assert health(d) == "degraded"
            upstream = len(fake.requests())
            calls = three_ways(fake, agent=agent)
            for name, call in calls.items():
                exc = raised(call)
                assert isinstance(exc, spendwall.DaemonUnavailable), (name, exc)
                assert exc.reason == "fail_closed" and exc.status == 503, (name, exc.reason, exc.status)
                assert exc.body["error"]["fail_closed"] is True
            assert len(fake.requests()) == upstream  # nothing went upstream
        finally:
            lock.release()
        wait_until(lambda: health(d) == "ok", "the ledger to write again")
        client.chat.completions.create(model="gpt-4o", messages=MSG, extra_headers={"x-fake-usage": sent[2]})
        wait_until(lambda: spool_lines() == [], "the spool to be replayed")
        assert spendwall.flush()
        rows = d.rows(agent, 3)
        assert len(rows) == 3 and len({r["request_id"] for r in rows}) == 3
        assert sorted(json.dumps(usage_of(r), sort_keys=True) for r in rows) == \
            sorted(json.dumps(expected(u, "openai"), sort_keys=True) for u in sent)
    finally:
        d.cleanup()


# ---------------------------------------------------------------------- 3. held for approval

APPROVE_CAPS = """
[[cap]]
name = "needs-a-person"
scope = { agent = "held" }
window = "1d"
limit_usd = 0.000001
action = "approve"
"""


@pytest.fixture(scope="module")
def approval_daemon() -> Iterator[Daemon]:
    d = Daemon(caps=APPROVE_CAPS, settings='[policy]\napproval_timeout = "2s"\n').start()
    yield d
    d.cleanup()


@pytest.mark.parametrize("how", ["sync", "asyncio"])
def test_check_held_for_approval_outlasts_the_sdk_timeout(monkeypatch: pytest.MonkeyPatch, approval_daemon: Daemon,
                                                          fake: Fake, how: str) -> None:
    """The daemon holds the check for a person's decision (approval_timeout = "2s", nobody
    decides): the SDK's own timeout (1 s) must not end the check — it waits for the daemon's
    answer, and the call ends with ApprovalDenied, nothing sent upstream."""
    monkeypatch.setenv("SPENDWALL_SOCKET", approval_daemon.socket)
    monkeypatch.setenv("SPENDWALL_CONFIG_DIR", approval_daemon.config_dir)
    cfg.reset()
    fake.reset()
    spendwall.configure(timeout=1.0)
    call = three_ways(fake, agent="held")["plain" if how == "sync" else "asyncio"]
    exc = raised(call)
    assert isinstance(exc, spendwall.ApprovalDenied), exc
    assert fake.requests() == []


@pytest.mark.parametrize("how", ["sync", "asyncio"])
def test_check_that_times_out_never_fails_open(monkeypatch: pytest.MonkeyPatch, use_daemon: Daemon, fake: Fake,
                                               how: str) -> None:
    """A check the daemon took and never answered (here: the SDK believes the approval wait is
    1 s, the daemon holds it for 20 s) raises DaemonUnavailable in fail-open mode too: the call
    may be waiting for a person's approval, so it never goes through unapproved."""
    sdk_config('[policy]\napproval_timeout = "1s"\n')
    monkeypatch.setattr(dc, "APPROVAL_MARGIN", 0.5)
    spendwall.configure(timeout=0.5)
    before = {a["id"] for a in use_daemon.request("GET", "/v1/approvals?status=all")[1]["approvals"]}
    try:
        exc = raised(three_ways(fake, agent="ask-first")["plain" if how == "sync" else "asyncio"])
        assert isinstance(exc, spendwall.DaemonUnavailable), exc
        assert exc.reason == "timeout"
        assert fake.requests() == []
    finally:  # the held approval is still pending at the daemon: deny it
        for a in use_daemon.request("GET", "/v1/approvals")[1]["approvals"]:
            if a["id"] not in before:
                use_daemon.request("POST", f"/v1/approvals/{a['id']}/resolve", {"decision": "deny"})


# ---------------------------------------------------------------------- transport: what counts as unreachable

class RawDaemon:
    """A stand-in daemon on a Unix socket whose connection handler the test writes."""

    def __init__(self, root: str, handle: Callable[[socket.socket, int], None]) -> None:
        self.path = os.path.join(root, "raw.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(16)
        self.connections = 0
        self.handle = handle
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        try:
            self.handle(conn, n)
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


def read_request(conn: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return b""
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(next((ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")),
                      b"0"))
    while len(body) < length:
        body += conn.recv(65536)
    return head


ALLOW = b'{"decision":"allow","reservation_id":"r_raw","reserved_nanousd":1}'


def test_connection_lost_after_the_check_was_sent_is_not_fail_open(root: str, monkeypatch: pytest.MonkeyPatch,
                                                                  fake: Fake) -> None:
    """The daemon read the check and closed the connection without answering (it died, or
    restarted while holding the check): that is not "unreachable", so no fail-open."""
    fake.reset()
    raw = RawDaemon(root, lambda conn, n: read_request(conn) and None)
    try:
        monkeypatch.setenv("SPENDWALL_SOCKET", raw.path)
        cfg.reset()
        for name, call in three_ways(fake).items():
            exc = raised(call)
            assert isinstance(exc, spendwall.DaemonUnavailable) and exc.reason == "connection_lost", (name, exc)
        assert fake.requests() == []
    finally:
        raw.close()


def test_stale_idle_connection_is_retried_and_chunked_answers_read(root: str) -> None:
    """The daemon closes a keep-alive connection after answering (an idle timeout): the next
    request on it is retried once on a fresh connection. Chunked answers are read too."""
    closed = threading.Event()

    def handle(conn: socket.socket, n: int) -> None:
        read_request(conn)
        if n % 2:
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(ALLOW), ALLOW))
        else:
            parts = [ALLOW[:7], ALLOW[7:30], ALLOW[30:]]
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nX-Trailer: 1\r\n\r\n")
        conn.shutdown(socket.SHUT_RDWR)
        closed.set()

    raw = RawDaemon(root, handle)
    try:
        t = UnixTransport(raw.path)
        for i in range(4):
            closed.clear()
            status, body = t.request("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o"})
            assert (status, body["reservation_id"]) == (200, "r_raw")
            closed.wait(10)  # the pooled connection is now dead
        assert raw.connections == 4  # one fresh connection per request; no error surfaced

        async def main() -> None:
            at = AsyncUnixTransport(raw.path)
            for _ in range(4):
                closed.clear()
                status, body = await at.request("POST", "/v1/check", {"provider": "openai", "model": "gpt-4o"})
                assert (status, body["reservation_id"]) == (200, "r_raw")
                await asyncio.to_thread(closed.wait, 10)

        asyncio.run(main())
        assert raw.connections == 8
    finally:
        raw.close()


def test_unreachable_daemon_reason(tmp_path: Path) -> None:
    with pytest.raises(spendwall.DaemonUnavailable) as info:
        UnixTransport(str(tmp_path / "none.sock")).request("GET", "/v1/health")
    assert info.value.reason == "unreachable" and info.value.fail_open

    async def main() -> None:
        with pytest.raises(spendwall.DaemonUnavailable) as ainfo:
            await AsyncUnixTransport(str(tmp_path / "none.sock")).request("GET", "/v1/health")
        assert ainfo.value.reason == "unreachable"

    asyncio.run(main())
