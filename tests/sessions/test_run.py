"""`spendwall run`: a real program (tests/sessions/agent.py) launched in a pseudo-terminal (and,
without one, with pipes) makes calls through the real daemon's proxy to the shared fake provider
under a session budget; the session is stopped gracefully when the budget is spent or the session
is killed, and its record (stop reason, exit, resume command, git snapshot, output) is checked
through the socket API and the CLI."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from conftest import REPO, Daemon, Fake, wait_until

AGENT = str(Path(__file__).resolve().parent / "agent.py")
BINARY = os.environ.get("SPENDWALL_BIN") or str(REPO / ".build" / "debug" / "spendwall")
BUDGET_USD = 0.001
BUDGET_NANOS = 1_000_000


@pytest.fixture(scope="module")
def daemon(fake: Fake) -> Iterator[Daemon]:
    d = Daemon(env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    yield d
    d.cleanup()


@pytest.fixture(autouse=True)
def clean(fake: Fake) -> None:
    fake.reset()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with one committed file, for the agent to change."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.com")
    subprocess.run(["git", "init", "-q", "-b", "work", str(tmp_path)], check=True, env=env)
    (tmp_path / "tracked.txt").write_text("first line\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.txt"], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "commit", "-q", "-m", "start"], check=True, env=env)
    (tmp_path / "staged.txt").write_text("a staged line\n")  # staged before the session, not committed
    subprocess.run(["git", "-C", str(tmp_path), "add", "staged.txt"], check=True, env=env)
    return tmp_path


def run_in_pty(daemon: Daemon, args: List[str], cwd: Path, timeout: float = 60,
               during: Optional[Any] = None) -> Tuple[int, bytes]:
    """Runs `spendwall ARGS` with a real terminal as its stdin/stdout/stderr; returns its exit
    status and everything it wrote to the terminal. `during(fd, output)` runs as output arrives."""
    return _run_in_pty(daemon, args, cwd, timeout, during)


def _run_in_pty(daemon: Daemon, args: List[str], cwd: Path, timeout: float,
                during: Optional[Any]) -> Tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes spendwall run, in the new terminal
        try:
            os.chdir(cwd)
            os.execve(BINARY, [BINARY] + args, daemon.env)
        finally:
            os._exit(127)
    output = b""
    deadline = time.monotonic() + timeout
    status = None
    try:
        while status is None and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    output += os.read(fd, 65536)
                except OSError:  # EIO: nothing holds the terminal any more
                    pass
            if during is not None:
                during(fd, output)
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
        while status is not None and select.select([fd], [], [], 0.05)[0]:  # what is still buffered
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)  # its program, in a terminal of its own, gets SIGHUP
            os.waitpid(pid, 0)
        os.close(fd)
    if status is None:
        pytest.fail(f"spendwall run did not finish in {timeout}s; it wrote {output[-2000:]!r}")
    return os.waitstatus_to_exitcode(status), output


def cli(daemon: Daemon, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([BINARY, *args], env=daemon.env, stdin=stdin, capture_output=True, timeout=60)


def session_id(output: bytes) -> str:
    text = output.decode(errors="replace")
    marker = "session="
    start = text.index(marker) + len(marker)
    return text[start:].split()[0]


def show(daemon: Daemon, sid: str) -> Dict[str, Any]:
    status, body = daemon.call("GET", f"/v1/sessions/{sid}")
    assert status == 200, body
    return body


def artifact(daemon: Daemon, sid: str, kind: str) -> bytes:
    status, body = daemon.call("GET", f"/v1/sessions/{sid}/artifacts/{kind}")
    assert status == 200, body
    return base64.b64decode(body["content_base64"])


def one_call_cost(daemon: Daemon, sid: str) -> int:
    rows = [r for r in daemon.rows() if r.get("session") == sid and r["outcome"] != "blocked"]
    assert rows, "the session made no call"
    return max(r["cost_nanousd"] for r in rows)


def test_a_budget_stops_the_program_with_ctrl_c_in_a_terminal(daemon: Daemon, fake: Fake, repo: Path) -> None:
    resized = []

    def resize_once(fd: int, output: bytes) -> None:
        # The user's window changes size: the program's own terminal must follow (and tell it).
        if not resized and b"tty=True" in output:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 117, 0, 0))
            resized.append(True)

    code, output = run_in_pty(daemon, ["run", "--budget-usd", str(BUDGET_USD), "--agent", "refactor", "--tag",
                                       "ticket=T-1", "--name", "budget test", "--grace", "5", "--", sys.executable,
                                       AGENT], cwd=repo, during=resize_once)
    text = output.decode(errors="replace")
    sid = session_id(output)
    assert "tty=True" in text, text  # the program had a terminal of its own
    assert "size=117x42" in text, text  # and it followed the window's size
    assert f"/session/{sid}/v1" in text
    assert "got SIGINT" in text and "got SIGTERM" not in text, text  # Ctrl+C was enough
    assert code == 130, text  # spendwall run exits with the program's status

    # Proxied calls are committed once answered: wait for every call the fake saw to be a row.
    def billed() -> List[Dict[str, Any]]:
        return [r for r in daemon.rows() if r.get("session") == sid and r["outcome"] != "blocked"]
    wait_until(lambda: len(billed()) >= len(fake.requests()), "the session's rows")
    body = show(daemon, sid)
    s = body["session"]
    assert s["status"] == "ended" and s["stop_reason"] == "budget_exceeded", s
    assert s["exit_code"] == 130 and "exit_signal" not in s
    assert s["resume_command"] == "claude --resume 0f3c-resume-id"
    assert s["terminal"] == "pty" and s["agent"] == "refactor" and s["tags"] == {"ticket": "T-1"}
    assert s["name"] == "budget test" and s["cwd"] == str(repo)
    assert s["git_branch"] == "work" and len(s["git_head"]) == 40
    assert s["budget_nanousd"] == BUDGET_NANOS

    # Every call is the session's, through the proxy; refused ones never reached the fake.
    rows = [r for r in daemon.rows() if r.get("session") == sid]
    ok = billed()  # answered calls (one may be `disconnected`: cut by the stop while in flight)
    assert ok and all(r["path"] == "session" and r["agent"] == "refactor" for r in rows)
    assert all(r["tags"] == {"ticket": "T-1"} for r in rows)
    assert any(r["outcome"] == "blocked" for r in rows)
    assert len(fake.requests()) == len(ok)
    spent = sum(r["cost_nanousd"] for r in rows)
    assert spent <= BUDGET_NANOS + one_call_cost(daemon, sid)
    assert s["spend"]["cost_nanousd"] == spent and s["spend"]["calls"] == len(ok)
    assert [m["model"] for m in body["by_model"]] == ["gpt-4o"]

    # The git snapshot: changed files and the diff.
    assert set(body["changed_files"]) == {"?? new.txt", " M tracked.txt", "A  staged.txt"}
    diff = artifact(daemon, sid, "git_diff").decode()
    staged, unstaged = diff.split("# unstaged (git diff)")
    assert "+a staged line" in staged and "+a line the agent added" in unstaged
    # The raw terminal output, for replay; the 80% notice went to the title, not the screen.
    recorded = artifact(daemon, sid, "output")
    assert b"call 1: 200" in recorded and b"got SIGINT" in recorded
    assert b"\x1b]0;spendwall: session " + sid.encode() + b" has used" in output
    replay = cli(daemon, "sessions", "replay", sid)
    assert replay.returncode == 0 and replay.stdout == recorded

    listed = cli(daemon, "sessions", "ls")
    assert listed.returncode == 0 and sid in listed.stdout.decode() and "budget_exceeded" in listed.stdout.decode()
    shown = cli(daemon, "sessions", "show", sid)
    out = shown.stdout.decode()
    assert shown.returncode == 0 and "claude --resume 0f3c-resume-id" in out and "tracked.txt" in out, out


def test_keys_reach_the_program_and_ctrl_c_from_the_keyboard_is_its_own(daemon: Daemon, repo: Path) -> None:
    typed: List[bytes] = []

    def type_keys(fd: int, output: bytes) -> None:
        # Output only flows once the user's terminal is in raw mode, so these keys go through whole.
        if not typed and b"ready" in output:
            os.write(fd, b"hello\r")
            typed.append(b"hello")
        elif len(typed) == 1 and b"got:hello" in output:
            os.write(fd, b"\x03")  # Ctrl+C, a key like any other: the program's terminal makes it SIGINT
            typed.append(b"^C")

    # SIGINT's default action from the start, so the key ends it whenever it arrives.
    program = ("import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); print('ready', flush=True); "
               "print('got:' + input(), flush=True); time.sleep(30)")
    code, output = run_in_pty(daemon, ["run", "--", sys.executable, "-c", program], cwd=repo, timeout=30,
                              during=type_keys)
    text = output.decode(errors="replace")
    assert "got:hello" in text and code == 130, text
    sid = text.split("session ")[-1].split()[0]
    s = show(daemon, sid)["session"]
    assert s["stop_reason"] == "exited" and s["exit_signal"] == signal.SIGINT and "exit_code" not in s, s


def test_a_program_that_ignores_ctrl_c_and_sigterm_is_killed(daemon: Daemon, repo: Path) -> None:
    code, output = run_in_pty(daemon, ["run", "--budget-usd", str(BUDGET_USD), "--grace", "0.5", "--",
                                       sys.executable, AGENT, "--stubborn"], cwd=repo, timeout=30)
    text = output.decode(errors="replace")
    sid = session_id(output)
    assert "ignoring SIGINT" in text and "ignoring SIGTERM" in text, text
    assert code == 128 + signal.SIGKILL
    s = show(daemon, sid)["session"]
    assert s["stop_reason"] == "budget_exceeded" and s["exit_signal"] == signal.SIGKILL and "exit_code" not in s
    assert "resume_command" not in s


def test_without_a_terminal_it_falls_back_to_pipes_and_says_so(daemon: Daemon, repo: Path) -> None:
    done = subprocess.run([BINARY, "run", "--budget-usd", str(BUDGET_USD), "--", sys.executable, AGENT],
                          env=daemon.env, cwd=repo, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert "stdin is not a terminal" in err and "pipes" in err, err
    assert "tty=False" in out
    assert done.returncode == 130, (out, err)
    sid = session_id(done.stdout)
    s = show(daemon, sid)["session"]
    assert s["terminal"] == "pipe" and s["stop_reason"] == "budget_exceeded"
    assert s["resume_command"] == "claude --resume 0f3c-resume-id"
    assert f"session {sid} ended (budget_exceeded)" in err


def test_a_session_kill_switch_stops_it(daemon: Daemon, repo: Path) -> None:
    proc = subprocess.Popen([BINARY, "run", "--", sys.executable, AGENT], env=daemon.env, cwd=repo,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    sid = session_id(proc.stdout.readline())
    wait_until(lambda: any(r.get("session") == sid and r["outcome"] == "ok" for r in daemon.rows()), "a call")
    killed = cli(daemon, "kill", "--session", sid)
    assert killed.returncode == 0, killed.stderr
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()
    s = show(daemon, sid)["session"]
    assert s["stop_reason"] == "killed" and s["exit_code"] == 130
    assert "budget_nanousd" not in s


def test_sigterm_to_spendwall_run_is_a_user_stop(daemon: Daemon, repo: Path) -> None:
    proc = subprocess.Popen([BINARY, "run", "--", sys.executable, AGENT], env=daemon.env, cwd=repo,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    sid = session_id(proc.stdout.readline())
    wait_until(lambda: any(r.get("session") == sid for r in daemon.rows()), "a call")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    s = show(daemon, sid)["session"]
    assert s["stop_reason"] == "user_stop" and s["resume_command"] == "claude --resume 0f3c-resume-id"


def test_a_program_that_exits_by_itself_is_recorded_as_exited(daemon: Daemon, tmp_path: Path) -> None:
    done = cli(daemon, "run", "--budget-tokens", "1000", "--", "sh", "-c", "echo hello; exit 3")
    assert done.returncode == 3 and b"hello" in done.stdout
    sid = done.stderr.decode().split("session ")[-1].split()[0]
    body = show(daemon, sid)
    assert body["session"]["stop_reason"] == "exited" and body["session"]["exit_code"] == 3
    assert body["session"]["budget_tokens"] == 1000


def test_a_running_session_keeps_its_budget_across_a_daemon_restart(fake: Fake) -> None:
    d = Daemon(env={"SPENDWALL_OPENAI_UPSTREAM": fake.url, "SPENDWALL_ANTHROPIC_UPSTREAM": fake.url})
    try:
        status, body = d.call("POST", "/v1/sessions", {"command": ["agent"], "budget_nanousd": BUDGET_NANOS})
        assert status == 200, body
        sid = body["session"]["id"]
        assert body["openai_base_url"] == f"http://{d.address}/session/{sid}/v1"
        assert body["cap"]["name"] == f"session:{sid}" and body["cap"]["limit_nanousd"] == BUDGET_NANOS
        request = urllib.request.Request(
            body["openai_base_url"] + "/chat/completions", headers={"content-type": "application/json"},
            data=json.dumps({"model": "gpt-4o", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
            .encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        spent = d.rows(expect=1)[0]["cost_nanousd"]
        d.stop()
        d.start()

        def session_cap() -> Dict[str, Any]:
            caps = d.call("GET", "/v1/policy/snapshot")[1]["caps"]
            return next(c for c in caps if c["name"] == f"session:{sid}")["keys"][0]
        assert session_cap()["spent_nanousd"] == spent and session_cap()["key"] == sid
        assert d.call("POST", f"/v1/sessions/{sid}/finish", {"stop_reason": "exited"})[0] == 200
        assert not [c for c in d.call("GET", "/v1/policy/snapshot")[1]["caps"] if c["name"] == f"session:{sid}"]
    finally:
        d.cleanup()


def test_bad_input_gets_clear_errors(daemon: Daemon) -> None:
    no_command = cli(daemon, "run", "--budget-usd", "1")
    assert no_command.returncode == 2 and b"give the program to run after `--`" in no_command.stderr
    negative = cli(daemon, "run", "--budget-usd=-1", "--", "true")
    assert negative.returncode == 2 and b"--budget-usd must be more than 0" in negative.stderr
    missing = cli(daemon, "run", "--", "no-such-program-xyz")
    assert missing.returncode == 127 and b"cannot find the program" in missing.stderr
    unknown = cli(daemon, "sessions", "show", "s-nope")
    assert unknown.returncode == 1 and b"no session" in unknown.stderr and b"sessions ls" in unknown.stderr

    status, body = daemon.call("POST", "/v1/sessions", {"command": []})
    assert status == 400 and body["error"]["code"] == "bad_request"
    status, body = daemon.call("POST", "/v1/sessions", {"command": ["x"], "budget_nanousd": -5})
    assert status == 400 and "budget_nanousd must be more than 0" in body["error"]["message"]
    status, body = daemon.call("POST", "/v1/sessions", {"budget_nanousd": 5})
    assert status == 400 and "command" in body["error"]["message"]
    status, body = daemon.call("POST", "/v1/sessions/s-nope/finish", {"stop_reason": "exited"})
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = daemon.call("GET", "/v1/sessions/s-nope")
    assert status == 404 and body["error"]["code"] == "not_found"

    status, body = daemon.call("POST", "/v1/sessions", {"command": ["x"]})
    assert status == 200, body
    sid = body["session"]["id"]
    status, body = daemon.call("POST", f"/v1/sessions/{sid}/finish", {"stop_reason": "bored"})
    assert status == 400 and "stop_reason must be one of" in body["error"]["message"]
    status, body = daemon.call("POST", f"/v1/sessions/{sid}/finish", {"stop_reason": "exited", "artifacts": [
        {"kind": "photo", "content_base64": ""}]})
    assert status == 400 and "artifact kind" in body["error"]["message"]
    assert daemon.call("POST", f"/v1/sessions/{sid}/finish", {"stop_reason": "exited"})[0] == 200
    status, body = daemon.call("POST", f"/v1/sessions/{sid}/finish", {"stop_reason": "exited"})
    assert status == 409 and body["error"]["code"] == "conflict"
