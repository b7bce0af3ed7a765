#!/usr/bin/env python3
"""What a loopback proxy adds to an LLM call: Spendwall's proxy against LiteLLM's and CostPlan's.

    SPENDWALL_BIN=/path/to/release/spendwall python3 bench/proxy/bench_proxy.py [options]
    (or bash bench/proxy/run.sh, which also installs wrk and the LiteLLM virtualenv)

One run, one fake provider (tests/fake_provider/server.py, a subprocess), and every target in
front of it on 127.0.0.1:
  direct     the fake itself
  spendwall  `spendwall daemon` (SPENDWALL_BIN, else .build/release/spendwall) on a temporary
             config/data/socket with two generous caps, SPENDWALL_OPENAI_UPSTREAM = the fake
  litellm    `litellm --config ...` from bench/.venv-litellm (if installed), one worker,
             LITELLM_LOCAL_MODEL_COST_MAP=True, the fake as an OpenAI-compatible api_base
  costplan   only with --costplan-cmd 'CMD ... {port} ... {upstream}' (a command that starts
             CostPlan's proxy on 127.0.0.1:{port} forwarding to {upstream}); skipped otherwise

Every call is POST .../v1/chat/completions with the same small body (max_tokens 16), on
persistent HTTP/1.1 connections: each open-loop phase first opens --max-inflight connections to
its target and primes each with one call (a warmed client pool), so per-connection work (for
Spendwall, finding the calling process in /proc) is measured apart, in the new-conn phase.
Phases, each run for every target in rotating order, round after round, so all targets see the
same machine:
  warm-up   every target, 4 connections back to back for --warmup-seconds, unmeasured
  rate      open loop at --rate calls/s (default 1000; stepped down first if direct or Spendwall
            cannot sustain it), non-streaming (latency from the write of the request to the last
            byte) and streaming (time to the first response byte and to the first SSE chunk)
  low-rate  the same at --low-rate calls/s (default 20, a rate LiteLLM sustains here)
  new-conn  --fresh-calls calls per target per round, each on a new connection (connect, call, close)
  closed    --concurrency connections (default 16) back to back for --closed-seconds, with wrk
            (a Lua script sets the POST body) when it is installed, else the asyncio client:
            calls/s, non-streaming and streaming
The open-loop generator is this script's own asyncio client on raw sockets (no HTTP library).
Added latency = a target's percentile minus direct's, in the same phase.

Everything is bounded (phase durations, in-flight caps, start-up deadlines) and every process
started here is stopped at the end. Results: a Markdown summary on stdout, the raw figures as JSON
in bench/results/ (ignored by git).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "fake_provider" / "server.py"
LITELLM_VENV = REPO / "bench" / ".venv-litellm"
RESULTS = REPO / "bench" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")

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

MODEL = "gpt-4o-mini"
BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                   "max_tokens": 16}, separators=(",", ":"))
STREAM_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
                          "max_tokens": 16, "stream": True}, separators=(",", ":"))
# one key for every target: the fake and Spendwall pass it along, LiteLLM takes it as its master key
# (LiteLLM 1.108 refuses to start without a strong one)
BENCH_KEY = "sk-bench-" + secrets.token_hex(32)
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_KEY}",
           "x-spendwall-agent": "bench"}


def now() -> float:
    return time.perf_counter()


def pct(xs: List[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# processes: start, wait, measure, stop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(host: str, port: int, path: str, timeout: float = 2.0) -> Tuple[int, bytes]:
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def unix_get(path: str, url: str) -> Tuple[int, bytes]:
    import http.client

    class C(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(path)

    conn = C("localhost", timeout=5)
    try:
        conn.request("GET", url)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def descendants(pid: int) -> List[int]:
    """pid and every process below it (read from /proc)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in descendants(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        f = stat[stat.rindex(")") + 2:].split()
        total += (int(f[11]) + int(f[12])) / CLK_TCK  # utime + stime
    return total


class OtherWork:
    """CPU the rest of the machine used meanwhile: all busy time (/proc/stat) minus this script's
    and its children's (the targets, wrk). The load average counts the benchmark's own threads too,
    so this is the figure that says whether the machine was shared."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.monotonic(), self.busy(), self.own()

    @staticmethod
    def busy() -> float:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK  # user nice system irq softirq steal

    @staticmethod
    def own() -> float:
        me = os.getpid()
        f = Path(f"/proc/{me}/stat").read_text().rsplit(")", 1)[1].split()
        waited = (int(f[13]) + int(f[14])) / CLK_TCK  # cutime + cstime: children already reaped (wrk)
        return cpu_seconds(me) + waited  # this process and every live process below it

    def cores(self) -> float:
        """Average cores used by other work since this was made."""
        wall = time.monotonic() - self.t0
        return max(0.0, (self.busy() - self.busy0) - (self.own() - self.own0)) / wall if wall > 0 else 0.0


def memory_kb(pid: int) -> Dict[str, int]:
    """VmRSS and VmHWM summed over the process tree (one process for Spendwall)."""
    rss = hwm = n = 0
    for p in descendants(pid):
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        m1 = re.search(r"^VmRSS:\s+(\d+)", text, re.M)
        m2 = re.search(r"^VmHWM:\s+(\d+)", text, re.M)
        if m1 and m2:
            rss += int(m1.group(1))
            hwm += int(m2.group(1))
            n += 1
    return {"VmRSS_kB": rss, "VmHWM_kB": hwm, "processes": n}


@dataclass
class Target:
    name: str
    host: str
    port: int
    path: str  # the chat completions path
    proc: Optional[subprocess.Popen] = None
    note: str = ""
    mem_idle: Dict[str, int] = field(default_factory=dict)


class Stack:
    """Starts the fake, Spendwall, LiteLLM and (optionally) CostPlan; stops them all."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = tempfile.mkdtemp(prefix="swbench-proxy-")
        self.procs: List[subprocess.Popen] = []
        self.logs: List[Any] = []
        self.targets: List[Target] = []
        self.skipped: Dict[str, str] = {}
        self.fake_proc: Optional[subprocess.Popen] = None
        self.fake_port = 0

    def _spawn(self, name: str, cmd: List[str], env: Optional[Dict[str, str]] = None, **kw: Any) -> subprocess.Popen:
        logf = open(os.path.join(self.root, f"{name}.log"), "ab")
        self.logs.append(logf)
        proc = subprocess.Popen(cmd, env=env, stdout=kw.pop("stdout", logf), stderr=logf, start_new_session=True, **kw)
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, n: int = 20) -> str:
        try:
            return "\n".join(Path(self.root, f"{name}.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def start(self) -> None:
        # the fake provider
        self.fake_proc = self._spawn("fake", [sys.executable, str(FAKE), "--port", "0"], stdout=subprocess.PIPE)
        line = self.fake_proc.stdout.readline().decode()  # type: ignore[union-attr]
        assert line.startswith("PORT "), line
        self.fake_port = int(line.split()[1])
        fake_url = f"http://127.0.0.1:{self.fake_port}"
        direct = Target("direct", "127.0.0.1", self.fake_port, "/v1/chat/completions", self.fake_proc)
        self.targets.append(direct)
        log(f"fake provider on {fake_url}")

        # Spendwall
        if self.args.no_spendwall:
            self.skipped["spendwall"] = "--no-spendwall"
        else:
            self._start_spendwall(fake_url)

        # LiteLLM
        litellm = Path(self.args.litellm_venv) / "bin" / "litellm"
        if self.args.no_litellm:
            self.skipped["litellm"] = "--no-litellm"
        elif not litellm.exists():
            self.skipped["litellm"] = f"{litellm} not found (bash bench/proxy/run.sh installs it)"
        else:
            self._start_litellm(litellm, fake_url)

        # CostPlan
        if self.args.costplan_cmd:
            port = free_port()
            cmd = self.args.costplan_cmd.format(port=port, upstream=fake_url, upstream_v1=fake_url + "/v1")
            proc = self._spawn("costplan", ["/bin/sh", "-c", "exec " + cmd], env=dict(os.environ))
            if self._wait_http(proc, port, ["/health", "/v1/models", "/"], 120):
                self.targets.append(Target("costplan", "127.0.0.1", port, "/v1/chat/completions", proc, note=cmd))
            else:
                self.skipped["costplan"] = f"did not start: {self.log_tail('costplan', 5)}"
        else:
            self.skipped["costplan"] = self.args.costplan_skip_reason

        for t in self.targets:
            t.mem_idle = memory_kb(t.proc.pid) if t.proc else {}

    def _start_spendwall(self, fake_url: str) -> None:
        binary = self.args.spendwall_bin
        cfg, data, sock = (os.path.join(self.root, "sw", d) for d in ("config", "data", "run/s.sock"))
        os.makedirs(cfg)
        Path(cfg, "caps.toml").write_text(CAPS)
        env = dict(os.environ, SPENDWALL_CONFIG_DIR=cfg, SPENDWALL_DATA_DIR=data, SPENDWALL_SOCKET=sock,
                   SPENDWALL_PROXY_ADDR="127.0.0.1:0", SPENDWALL_LOG_LEVEL="warning",
                   SPENDWALL_OPENAI_UPSTREAM=fake_url, SPENDWALL_ANTHROPIC_UPSTREAM=fake_url)
        proc = self._spawn("spendwall", [binary, "daemon"], env=env)
        deadline = time.monotonic() + 30
        address = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = unix_get(sock, "/v1/health")
                if status == 200:
                    address = json.loads(body).get("loopback")
                    break
            except OSError:
                pass
            time.sleep(0.05)
        if not address:
            why = "no \"loopback\" address in /v1/health (a daemon without the proxy?)" if proc.poll() is None \
                else f"exit {proc.poll()}"
            raise RuntimeError(f"spendwall did not start: {why}\n{self.log_tail('spendwall')}")
        host, port = address.rsplit(":", 1)
        self.targets.append(Target("spendwall", host, int(port), "/v1/chat/completions", proc, note=binary))
        log(f"spendwall {binary} proxy on {address}")

    def _wait_http(self, proc: subprocess.Popen, port: int, paths: List[str], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            for p in paths:
                try:
                    if http_get("127.0.0.1", port, p)[0] < 500:
                        return True
                except OSError:
                    pass
            time.sleep(0.25)
        return False

    def _start_litellm(self, litellm: Path, fake_url: str) -> None:
        port = free_port()
        config = Path(self.root, "litellm.yaml")
        config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{MODEL}\n"
            f"      api_base: {fake_url}/v1\n"
            "      api_key: sk-fake\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
            "  drop_params: true\n")
        env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR",
                   LITELLM_TELEMETRY="False", NO_DOCS="True", LITELLM_MASTER_KEY=BENCH_KEY)
        for var in ("DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
            env.pop(var, None)
        cmd = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
               "--num_workers", "1"]
        proc = self._spawn("litellm", cmd, env=env, cwd=self.root)
        if not self._wait_http(proc, port, ["/health/liveliness"], 180):
            self.skipped["litellm"] = f"did not start (exit {proc.poll()}): {self.log_tail('litellm', 8)}"
            return
        version = subprocess.run([str(litellm.parent / "python"), "-c",
                                  "import importlib.metadata as m; print(m.version('litellm'))"],
                                 capture_output=True, text=True, timeout=60).stdout.strip()
        self.targets.append(Target("litellm", "127.0.0.1", port, "/v1/chat/completions", proc,
                                   note=f"litellm {version}, 1 worker, master key, no database"))
        log(f"litellm {version} on 127.0.0.1:{port}")

    def reset_fake(self) -> None:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.fake_port, timeout=10)
        try:
            conn.request("POST", "/_fake/reset")
            conn.getresponse().read()
        finally:
            conn.close()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait(timeout=10)
        for f in self.logs:
            f.close()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


# ------------------------------------------------------------------------------------------------
# the asyncio raw-socket HTTP/1.1 client


def request_bytes(t: Target, body: str) -> bytes:
    b = body.encode()
    head = f"POST {t.path} HTTP/1.1\r\nHost: {t.host}:{t.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    head += f"Content-Length: {len(b)}\r\n\r\n"
    return head.encode() + b


class Stale(Exception):
    """A kept-alive connection the server had closed: nothing of the answer arrived."""


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, t: Target) -> "Conn":
        reader, writer = await asyncio.open_connection(t.host, t.port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def close(self) -> None:
        self.w.close()

    async def exchange(self, req: bytes) -> Tuple[int, float, float, float, float]:
        """(status, t_sent, t_headers, t_first_chunk, t_end); t_first_chunk = t_end unless chunked."""
        t0 = now()
        try:
            self.w.write(req)
            head = await self.r.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise Stale() from e
            raise
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Stale() from e
        t_head = now()
        status = int(head[9:12])
        length, chunked = None, False
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        t_first = 0.0
        if chunked:
            while True:
                size = int((await self.r.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await self.r.readline()) not in (b"\r\n", b""):
                        pass
                    break
                await self.r.readexactly(size + 2)
                if not t_first:
                    t_first = now()
        elif length is not None:
            if length:
                await self.r.readexactly(length)
        else:
            await self.r.read()
        t_end = now()
        return status, t0, t_head, t_first or t_end, t_end


@dataclass
class Sample:
    total: float
    head: float
    first: float


@dataclass
class PhaseResult:
    samples: List[Sample] = field(default_factory=list)
    errors: int = 0
    statuses: Dict[int, int] = field(default_factory=dict)
    dropped: int = 0
    offered: int = 0
    sent: int = 0  # every call written after the pool was primed, the warm-up's too (for CPU per call)
    retries: int = 0  # calls sent again on a new connection because the server had closed a kept-alive one
    achieved_rate: float = 0.0
    max_inflight: int = 0
    late_ms_p99: float = 0.0
    cpu_s: float = 0.0


async def open_pool(t: Target, req: bytes, n: int) -> List[Conn]:
    """n connections, each primed with one call (so a proxy's per-connection work is done before
    the measurement), opened 16 at a time."""
    pool: List[Conn] = []

    async def one() -> None:
        c = await Conn.open(t)
        await c.exchange(req)
        pool.append(c)

    for i in range(0, n, 16):
        await asyncio.gather(*(one() for _ in range(min(16, n - i))))
    return pool


async def open_loop(t: Target, body: str, rate: float, seconds: float, warmup: float, max_inflight: int) -> PhaseResult:
    """Sends at a fixed rate regardless of answers (no coordinated omission by waiting), at most
    max_inflight at once, each call on an idle connection of a pool of max_inflight connections
    opened and primed beforehand (like a warmed client pool); beyond max_inflight a call is
    dropped (counted). Samples from the first `warmup` seconds are discarded. The target's CPU time
    is counted from the end of priming."""
    req = request_bytes(t, body)
    idle = await open_pool(t, req, max_inflight)
    res = PhaseResult()
    cpu0 = cpu_seconds(t.proc.pid) if t.proc else 0.0
    inflight = 0
    late: List[float] = []
    done_times: List[float] = []
    tasks = set()

    async def one(t_sched: float, measured: bool) -> None:
        nonlocal inflight
        conn = idle.pop() if idle else None
        try:
            if conn is None:
                conn = await Conn.open(t)
            try:
                status, t0, th, tf, te = await conn.exchange(req)
            except Stale:  # the server closed it while idle (uvicorn does after 5 s): as a client pool would
                conn.close()
                res.retries += 1
                conn = await Conn.open(t)
                status, t0, th, tf, te = await conn.exchange(req)
            if measured:
                res.statuses[status] = res.statuses.get(status, 0) + 1
                if status == 200:
                    res.samples.append(Sample(te - t0, th - t0, tf - t0))
                    done_times.append(te)
                else:
                    res.errors += 1
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError, asyncio.LimitOverrunError, Stale):
            if measured:
                res.errors += 1
            if conn is not None:
                conn.close()
        finally:
            inflight -= 1

    n_total = int(rate * (seconds + warmup))
    start = now() + 0.005
    first_measured = start + warmup
    for i in range(n_total):
        t_sched = start + i / rate
        delay = t_sched - now()
        if delay > 0:
            await asyncio.sleep(delay)
        measured = t_sched >= first_measured
        if measured:
            res.offered += 1
            late.append(now() - t_sched)
        if inflight >= max_inflight:
            if measured:
                res.dropped += 1
            continue
        inflight += 1
        res.sent += 1
        res.max_inflight = max(res.max_inflight, inflight)
        task = asyncio.ensure_future(one(t_sched, measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    end_sched = start + n_total / rate
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    for task in list(tasks):
        task.cancel()
    res.cpu_s = (cpu_seconds(t.proc.pid) if t.proc else 0.0) - cpu0
    for c in idle:
        c.close()
    if done_times:
        span = max(max(done_times), end_sched) - first_measured
        res.achieved_rate = len(res.samples) / span if span > 0 else 0.0
    res.late_ms_p99 = pct(late, 99) * 1e3
    return res


async def fresh_calls(t: Target, body: str, n: int) -> Dict[str, Any]:
    """n calls one after another, each on a new connection (connect, call, close)."""
    req = request_bytes(t, body)
    xs: List[float] = []
    errors = 0
    cpu0 = cpu_seconds(t.proc.pid) if t.proc else 0.0
    for _ in range(n):
        t0 = now()
        try:
            c = await Conn.open(t)
            status, _, _, _, te = await c.exchange(req)
            c.close()
        except (OSError, asyncio.IncompleteReadError, ValueError, Stale):
            errors += 1
            continue
        if status == 200:
            xs.append(te - t0)
        else:
            errors += 1
        await asyncio.sleep(0.002)
    return {"samples": xs, "errors": errors, "cpu_s": (cpu_seconds(t.proc.pid) if t.proc else 0.0) - cpu0, "n": n}


async def closed_loop_py(t: Target, body: str, concurrency: int, seconds: float) -> Dict[str, Any]:
    req = request_bytes(t, body)
    conns = [await Conn.open(t) for _ in range(concurrency)]
    lat: List[float] = []
    errors = 0
    stop_at = now() + seconds

    async def worker(c: Conn) -> None:
        nonlocal errors
        while now() < stop_at:
            try:
                status, t0, _, _, te = await c.exchange(req)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                return
            if status == 200:
                lat.append(te - t0)
            else:
                errors += 1

    t_start = now()
    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in conns)), timeout=seconds + 60)
    span = now() - t_start
    for c in conns:
        c.close()
    return {"tool": "asyncio", "calls_per_s": len(lat) / span, "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3, "errors": errors}


# ------------------------------------------------------------------------------------------------
# wrk


WRK_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["x-spendwall-agent"] = "bench"
"""


def closed_loop_wrk(wrk: str, root: str, t: Target, body: str, concurrency: int, seconds: float) -> Dict[str, Any]:
    script = Path(root, f"wrk-{abs(hash(body))}.lua")
    if not script.exists():
        script.write_text(WRK_LUA.format(body=json.dumps(body), key=BENCH_KEY))
    url = f"http://{t.host}:{t.port}{t.path}"
    out = subprocess.run([wrk, "-t1", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency", "--timeout", "10s",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60).stdout

    def dur(s: str) -> float:  # wrk durations: 1.23ms, 456.00us, 1.02s
        m = re.match(r"([\d.]+)(us|ms|s|m)", s)
        assert m, s
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = dur(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = dur(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockerr = re.search(r"Socket errors: (.*)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sockerr:
        errors += sum(int(x) for x in re.findall(r"\d+", sockerr.group(1)))
    return {"tool": "wrk", "calls_per_s": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors}


# ------------------------------------------------------------------------------------------------
# the run


def rotate(xs: List[Target], r: int) -> List[Target]:
    k = r % len(xs)
    return xs[k:] + xs[:k]


def summarize(results: Dict[str, List[PhaseResult]]) -> Dict[str, Dict[str, Any]]:
    out: Dict[str, Dict[str, Any]] = {}
    for name, phases in results.items():
        s = [x for p in phases for x in p.samples]
        offered = sum(p.offered for p in phases)
        out[name] = {
            "n": len(s), "offered": offered, "errors": sum(p.errors for p in phases),
            "dropped": sum(p.dropped for p in phases), "retries": sum(p.retries for p in phases),
            "achieved_rate": statistics.fmean([p.achieved_rate for p in phases]) if phases else 0.0,
            "max_inflight": max((p.max_inflight for p in phases), default=0),
            "late_ms_p99": max((p.late_ms_p99 for p in phases), default=0.0),
            "cpu_s": sum(p.cpu_s for p in phases), "sent": sum(p.sent for p in phases),
            "total_p50_us": pct([x.total for x in s], 50) * 1e6, "total_p99_us": pct([x.total for x in s], 99) * 1e6,
            "head_p50_us": pct([x.head for x in s], 50) * 1e6, "head_p99_us": pct([x.head for x in s], 99) * 1e6,
            "first_p50_us": pct([x.first for x in s], 50) * 1e6, "first_p99_us": pct([x.first for x in s], 99) * 1e6,
        }
        out[name]["cpu_us_per_call"] = out[name]["cpu_s"] / max(1, out[name]["sent"]) * 1e6
    return out


async def open_loop_phase(stack: Stack, label: str, body: str, rate: float, rounds: int, seconds: float,
                          args: argparse.Namespace, targets: Optional[List[Target]] = None) -> Dict[str, Dict[str, Any]]:
    targets = targets or stack.targets
    results: Dict[str, List[PhaseResult]] = {t.name: [] for t in targets}
    loads = []
    other = OtherWork()
    for r in range(rounds):
        for t in rotate(targets, r):
            stack.reset_fake()
            await asyncio.sleep(args.pause)
            res = await open_loop(t, body, rate, seconds, args.warmup, args.max_inflight)
            results[t.name].append(res)
            log(f"{label} round {r + 1}/{rounds} {t.name:<9} rate {rate:.0f}/s: n={len(res.samples)} "
                f"achieved {res.achieved_rate:.0f}/s dropped {res.dropped} errors {res.errors} "
                f"p50 {pct([x.total for x in res.samples], 50) * 1e6:.0f} µs "
                f"p99 {pct([x.total for x in res.samples], 99) * 1e6:.0f} µs load {loadavg()}")
        loads.append(loadavg())
    out = summarize(results)
    out["_load"] = loads  # type: ignore[assignment]
    out["_other_cores"] = other.cores()  # type: ignore[assignment]
    return out


def sustained(s: Dict[str, Any], rate: float) -> bool:
    return s["dropped"] == 0 and s["errors"] == 0 and s["achieved_rate"] >= 0.97 * rate


async def run(args: argparse.Namespace) -> Dict[str, Any]:
    report: Dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_before": loadavg(),
                              "python": sys.version.split()[0], "nproc": os.cpu_count(), "args": vars(args)}
    stack = Stack(args)
    whole = OtherWork()
    try:
        stack.start()
        report["targets"] = {t.name: {"port": t.port, "note": t.note, "mem_idle": t.mem_idle} for t in stack.targets}
        report["skipped"] = stack.skipped
        for name, why in stack.skipped.items():
            log(f"{name}: skipped: {why}")
        fake_target = stack.targets[0]
        fake_cpu0 = cpu_seconds(fake_target.proc.pid)

        # warm every target up (lazy imports, pools, JIT-less caches): closed loop, unmeasured
        for t in stack.targets:
            for body in (BODY, STREAM_BODY):
                w = await closed_loop_py(t, body, 4, args.warmup_seconds)
                log(f"warm-up {t.name:<9} {'stream' if body is STREAM_BODY else 'plain':<6} {w['calls_per_s']:.0f} calls/s "
                    f"errors {w['errors']}")

        # the offered rate: --rate if direct and Spendwall sustain it, else stepped down by 20% after two
        # failed tries (at most 8 times, not below --min-rate); streaming is probed on its own, from the plain rate
        core = [t for t in stack.targets if t.name in ("direct", "spendwall")]
        probes: List[Dict[str, Any]] = []

        async def find_rate(label: str, body: str, rate: float) -> float:
            for _ in range(8):
                for _attempt in range(2):  # a second try at the same rate, in case of a passing spike
                    probe = await open_loop_phase(stack, label, body, rate, 1, args.probe_seconds, args, core)
                    bad = [n for n in ("direct", "spendwall") if n in probe and not sustained(probe[n], rate)]
                    if not bad:
                        break
                probes.append({"phase": label, "rate": rate, "not_sustained_by": bad,
                               "achieved": {n: probe[n]["achieved_rate"] for n in ("direct", "spendwall") if n in probe},
                               "dropped": {n: probe[n]["dropped"] for n in ("direct", "spendwall") if n in probe}})
                if not bad or rate <= args.min_rate:
                    return rate
                log(f"{label}: {rate:.0f} calls/s not sustained by {bad}; stepping down")
                rate = max(args.min_rate, round(rate * 0.8, -1))
            return rate

        rate = await find_rate("probe", BODY, args.rate)
        stream_rate = await find_rate("probe-stream", STREAM_BODY, rate)
        report["rate"], report["stream_rate"], report["probes"] = rate, stream_rate, probes

        report["rate_phase"] = await open_loop_phase(stack, "rate", BODY, rate, args.rounds, args.seconds, args)
        report["stream_phase"] = await open_loop_phase(stack, "stream", STREAM_BODY, stream_rate, args.rounds,
                                                       args.seconds, args)
        report["low_rate_phase"] = await open_loop_phase(stack, "low", BODY, args.low_rate, args.rounds,
                                                         args.low_seconds, args)
        report["low_stream_phase"] = await open_loop_phase(stack, "low-stream", STREAM_BODY, args.low_rate,
                                                           args.rounds, args.low_seconds, args)

        other = OtherWork()
        fresh: Dict[str, List[Dict[str, Any]]] = {t.name: [] for t in stack.targets}
        for r in range(args.rounds):
            for t in rotate(stack.targets, r):
                fresh[t.name].append(await fresh_calls(t, BODY, args.fresh_calls))
            log(f"new-connection calls round {r + 1}/{args.rounds} load {loadavg()}")
        report["fresh"] = {}
        for name, runs in fresh.items():
            xs = [x for run in runs for x in run["samples"]]
            calls = sum(run["n"] for run in runs)
            report["fresh"][name] = {"n": len(xs), "errors": sum(run["errors"] for run in runs),
                                     "p50_us": pct(xs, 50) * 1e6, "p99_us": pct(xs, 99) * 1e6,
                                     "cpu_us_per_call": sum(run["cpu_s"] for run in runs) / max(1, calls) * 1e6}
        report["fresh_load"] = loadavg()
        report["fresh_other_cores"] = other.cores()

        wrk = shutil.which("wrk") if not args.no_wrk else None
        closed: Dict[str, Dict[str, List[Dict[str, Any]]]] = {"plain": {}, "stream": {}}
        other = OtherWork()
        for r in range(args.closed_rounds):
            for mode, body in (("plain", BODY), ("stream", STREAM_BODY)):
                for t in rotate(stack.targets, r):
                    stack.reset_fake()
                    await asyncio.sleep(args.pause)
                    if wrk:
                        res = closed_loop_wrk(wrk, stack.root, t, body, args.concurrency, args.closed_seconds)
                    else:
                        res = await closed_loop_py(t, body, args.concurrency, args.closed_seconds)
                    res["load"] = loadavg()
                    closed[mode].setdefault(t.name, []).append(res)
                    log(f"closed c={args.concurrency} {mode:<6} round {r + 1} {t.name:<9} {res['calls_per_s']:.0f} "
                        f"calls/s p50 {res['p50_ms']:.2f} ms errors {res['errors']} load {res['load']}")
        report["closed"] = closed
        report["closed_other_cores"] = other.cores()
        report["closed_tool"] = f"wrk -t1 -c{args.concurrency}" if wrk else f"asyncio, {args.concurrency} connections"

        report["memory_after"] = {t.name: memory_kb(t.proc.pid) for t in stack.targets if t.proc}
        report["fake_cpu_s"] = cpu_seconds(fake_target.proc.pid) - fake_cpu0
        report["load_after"] = loadavg()
        report["other_cores"] = whole.cores()
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    finally:
        stack.stop()
    return report


# ------------------------------------------------------------------------------------------------
# the Markdown summary


def markdown(rep: Dict[str, Any]) -> str:
    names = [n for n in rep["targets"]]
    proxies = [n for n in names if n != "direct"]
    a = rep["args"]
    L: List[str] = []
    L.append(f"Run {rep['started']} – {rep['finished']}, load average before {rep['load_before']}, "
             f"after {rep['load_after']}; {rep['nproc']} cores; Python {rep['python']} client. Other work on the "
             f"machine meanwhile used {rep['other_cores']:.2f} cores on average (CPU time outside this benchmark's "
             f"processes; the load average counts the benchmark's own threads too).")
    for n in names:
        if rep["targets"][n]["note"]:
            L.append(f"- {n}: {rep['targets'][n]['note']}")
    for n, why in rep["skipped"].items():
        L.append(f"- {n}: **skipped** — {why}")
    L.append("")

    def lat_table(title: str, ph: Dict[str, Any], rate: float, seconds: float, stream: bool = False) -> None:
        d = ph["direct"]
        L.append(f"{title} (open loop, {rate:.0f} calls/s offered, {a['rounds']} rounds × {seconds:g} s per "
                 f"target; load average after each round {', '.join(ph['_load'])}; other work "
                 f"{ph['_other_cores']:.2f} cores)")
        L.append("")
        if stream:
            L.append("| target | calls | first byte p50 / p99 µs | added p50 / p99 µs | first chunk p50 / p99 µs "
                     "| added p50 / p99 µs | whole stream p50 µs | achieved calls/s | dropped / errors / retries |")
            L.append("|---|---|---|---|---|---|---|---|---|")
        else:
            L.append("| target | calls | p50 / p99 µs | **added p50 / p99 µs** | added p50 ÷ Spendwall's "
                     "| achieved calls/s | dropped / errors / retries | proxy CPU µs/call |")
            L.append("|---|---|---|---|---|---|---|---|")
        sw = ph.get("spendwall")
        for n in names:
            s = ph[n]
            if stream:
                add_h = "—" if n == "direct" else f"{s['head_p50_us'] - d['head_p50_us']:,.0f} / {s['head_p99_us'] - d['head_p99_us']:,.0f}"
                add_f = "—" if n == "direct" else f"{s['first_p50_us'] - d['first_p50_us']:,.0f} / {s['first_p99_us'] - d['first_p99_us']:,.0f}"
                L.append(f"| {n} | {s['n']:,} | {s['head_p50_us']:,.0f} / {s['head_p99_us']:,.0f} | {add_h} "
                         f"| {s['first_p50_us']:,.0f} / {s['first_p99_us']:,.0f} | {add_f} | {s['total_p50_us']:,.0f} "
                         f"| {s['achieved_rate']:,.0f} | {s['dropped']} / {s['errors']} / {s['retries']} |")
            else:
                add = "—" if n == "direct" else f"**{s['total_p50_us'] - d['total_p50_us']:,.0f} / {s['total_p99_us'] - d['total_p99_us']:,.0f}**"
                ratio = "—"
                if n not in ("direct", "spendwall") and sw:
                    sw_add = sw["total_p50_us"] - d["total_p50_us"]
                    ratio = f"{(s['total_p50_us'] - d['total_p50_us']) / sw_add:,.1f}×" if sw_add > 0 else "n/a"
                if n != "direct" and not sustained(s, rate):
                    ratio = "not sustained: queued"
                cpu = "—" if n == "direct" else f"{s['cpu_us_per_call']:,.0f}"
                L.append(f"| {n} | {s['n']:,} | {s['total_p50_us']:,.0f} / {s['total_p99_us']:,.0f} | {add} | {ratio} "
                         f"| {s['achieved_rate']:,.0f} | {s['dropped']} / {s['errors']} / {s['retries']} | {cpu} |")
        L.append("")

    lat_table("Non-streaming chat completion", rep["rate_phase"], rep["rate"], a["seconds"])
    for p in rep["probes"]:
        if p["not_sustained_by"]:
            L.append(f"- {p['phase']}: {p['rate']:.0f} calls/s offered not sustained by {', '.join(p['not_sustained_by'])} "
                     f"(achieved {', '.join(f'{k} {v:.0f}/s' for k, v in p['achieved'].items())}; dropped "
                     f"{', '.join(f'{k} {v}' for k, v in p['dropped'].items())})")
    L.append("")
    lat_table("Streaming chat completion, time to first byte", rep["stream_phase"], rep["stream_rate"], a["seconds"],
              stream=True)
    lat_table("Non-streaming chat completion", rep["low_rate_phase"], a["low_rate"], a["low_seconds"])
    lat_table("Streaming chat completion, time to first byte", rep["low_stream_phase"], a["low_rate"],
              a["low_seconds"], stream=True)

    fr = rep["fresh"]
    L.append(f"First call on a new connection (connect, non-streaming call, close; {a['fresh_calls']} per target "
             f"per round, one after another, {a['rounds']} rounds; load average after {rep['fresh_load']}; other "
             f"work {rep['fresh_other_cores']:.2f} cores)")
    L.append("")
    L.append("| target | calls | p50 / p99 µs | added p50 / p99 µs | proxy CPU µs/call | errors |")
    L.append("|---|---|---|---|---|---|")
    for n in names:
        f, d = fr[n], fr["direct"]
        add = "—" if n == "direct" else f"{f['p50_us'] - d['p50_us']:,.0f} / {f['p99_us'] - d['p99_us']:,.0f}"
        cpu = "—" if n == "direct" else f"{f['cpu_us_per_call']:,.0f}"
        L.append(f"| {n} | {f['n']:,} | {f['p50_us']:,.0f} / {f['p99_us']:,.0f} | {add} | {cpu} | {f['errors']} |")
    L.append("")
    L.append(f"Max sustained calls/s at concurrency {a['concurrency']} ({rep['closed_tool']}, {a['closed_seconds']} s "
             f"per target and mode, {a['closed_rounds']} rounds, median of rounds; other work "
             f"{rep['closed_other_cores']:.2f} cores)")
    L.append("")
    L.append("| target | plain calls/s | ÷ direct | plain p50 / p99 ms | stream calls/s | ÷ direct | stream p50 / p99 ms | errors |")
    L.append("|---|---|---|---|---|---|---|---|")
    med = {m: {n: statistics.median([x["calls_per_s"] for x in rep["closed"][m][n]]) for n in names} for m in ("plain", "stream")}
    for n in names:
        p, s = rep["closed"]["plain"][n], rep["closed"]["stream"][n]
        errs = sum(x["errors"] for x in p + s)
        L.append(f"| {n} | {med['plain'][n]:,.0f} | {med['plain'][n] / med['plain']['direct']:.2f} "
                 f"| {statistics.median([x['p50_ms'] for x in p]):.2f} / {statistics.median([x['p99_ms'] for x in p]):.2f} "
                 f"| {med['stream'][n]:,.0f} | {med['stream'][n] / med['stream']['direct']:.2f} "
                 f"| {statistics.median([x['p50_ms'] for x in s]):.2f} / {statistics.median([x['p99_ms'] for x in s]):.2f} | {errs} |")
    L.append("")
    L.append("Resident memory (/proc/PID/status, summed over the process tree)")
    L.append("")
    L.append("| process | VmRSS idle MB | VmRSS after MB | VmHWM after MB | processes |")
    L.append("|---|---|---|---|---|")
    for n in names:
        idle, after = rep["targets"][n]["mem_idle"], rep["memory_after"][n]
        label = "fake provider (direct)" if n == "direct" else n
        L.append(f"| {label} | {idle.get('VmRSS_kB', 0) / 1024:.1f} | {after['VmRSS_kB'] / 1024:.1f} "
                 f"| {after['VmHWM_kB'] / 1024:.1f} | {after['processes']} |")
    return "\n".join(L)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spendwall-bin", default=os.environ.get("SPENDWALL_BIN") or str(REPO / ".build/release/spendwall"))
    ap.add_argument("--litellm-venv", default=str(LITELLM_VENV))
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-spendwall", action="store_true", help="only to try the script without a daemon")
    ap.add_argument("--costplan-cmd", default=os.environ.get("COSTPLAN_CMD", ""),
                    help="command starting CostPlan's proxy; {port}, {upstream}, {upstream_v1} are filled in")
    ap.add_argument("--costplan-skip-reason", default="no --costplan-cmd given (see bench/README.md, Proxy)")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered calls/s of the main phase")
    ap.add_argument("--min-rate", type=float, default=100.0)
    ap.add_argument("--low-rate", type=float, default=20.0,
                    help="offered calls/s of the low-rate phases (one LiteLLM sustains here)")
    ap.add_argument("--low-seconds", type=float, default=10.0, help="measured seconds per target per low-rate round")
    ap.add_argument("--warmup-seconds", type=float, default=3.0, help="unmeasured closed-loop warm-up per target")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per target per round")
    ap.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds at the start of each phase")
    ap.add_argument("--probe-seconds", type=float, default=2.0)
    ap.add_argument("--pause", type=float, default=0.5, help="idle seconds before each phase")
    ap.add_argument("--max-inflight", type=int, default=64)
    ap.add_argument("--fresh-calls", type=int, default=50, help="calls on new connections per target per round")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--closed-seconds", type=float, default=8.0)
    ap.add_argument("--closed-rounds", type=int, default=3)
    ap.add_argument("--no-wrk", action="store_true", help="closed loop with the asyncio client even if wrk exists")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, configs)")
    ap.add_argument("--json", default="", help="where to write the raw figures (default bench/results/proxy-TIME.json)")
    args = ap.parse_args()
    if not args.no_spendwall and not os.access(args.spendwall_bin, os.X_OK):
        print(f"no spendwall binary at {args.spendwall_bin} (set SPENDWALL_BIN)", file=sys.stderr)
        return 1
    report = asyncio.run(run(args))
    path = Path(args.json) if args.json else RESULTS / f"proxy-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=str))
    print(markdown(report))
    print(f"\nraw figures: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
