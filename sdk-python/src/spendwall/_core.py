"""The check -> forward -> report cycle of one call, fail-open spooling and replay."""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional

from . import _config, _daemonconfig
from ._client import _ENCODE, AsyncUnixTransport, UnixTransport
from ._errors import DaemonUnavailable, error_from_body
from ._spool import Spool
from ._usage import Usage, zero

__all__ = ["Runtime", "Call", "runtime", "flush", "reporter"]

log = logging.getLogger("spendwall")


class Runtime:
    """Per-configuration state: the transports, the spool, the replay worker."""

    def __init__(self, settings: _config.Settings, transport: Any = None, async_transport: Any = None) -> None:
        self.settings = settings
        path = settings.resolved_socket()
        self.transport = transport or UnixTransport(path, timeout=settings.timeout,
                                                    connect_timeout=settings.connect_timeout)
        self.async_transport = async_transport or AsyncUnixTransport(path, timeout=settings.timeout,
                                                                     connect_timeout=settings.connect_timeout)
        # our own transports take `extend=`: a check outlasts the daemon's approval wait
        self.sync_extends = isinstance(self.transport, UnixTransport)
        self.async_extends = isinstance(self.async_transport, AsyncUnixTransport)
        self.config_dir = settings.resolved_config_dir()
        self.spool = Spool(settings.spool_dir(), settings.spool_max_bytes)
        self._replaying = threading.Lock()
        self._replay_thread: Optional[threading.Thread] = None
        self._spooled = False  # this process spooled a report since the spool was last looked at
        self._next_spool_look = 0.0  # monotonic time of the next look at the spool file

    def check_wait(self) -> float:
        """Seconds a check may wait for its answer: the daemon may hold it for an approval up to
        its `approval_timeout` (spendwall.toml, default 5 min), then answers; a margin on top."""
        return _daemonconfig.approval_timeout(self.config_dir) + _daemonconfig.APPROVAL_MARGIN

    def fails_closed(self) -> Optional[str]:
        """Why a call must fail closed per the daemon's own config, or None."""
        if _daemonconfig.daemon_policy(self.config_dir).fail_mode == "closed":
            return f'policy.fail_mode is "closed" in {os.path.join(self.config_dir, _daemonconfig.FILE)}'
        return None

    # ------------------------------------------------------------------ spool
    def spool_report(self, item: Dict[str, Any]) -> None:
        self._spooled = True
        if self.spool.append(item):
            log.info("spendwall: daemon unreachable; report %s spooled to %s", item.get("id"), self.spool.path)

    def replay_now(self) -> Dict[str, int]:
        """Replays the spool through POST /v1/reports; raises DaemonUnavailable if it cannot."""

        def send(batch: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
            status, body = self.transport.request("POST", "/v1/reports", {"reports": batch})
            if status != 200:
                raise error_from_body(body, status)
            return list(body.get("results") or [])

        with self._replaying:
            recorded, duplicate, rejected = self.spool.replay(send)
        return {"recorded": recorded, "duplicate": duplicate, "rejected": rejected, "pending": len(self.spool.pending())}

    def maybe_replay(self) -> None:
        """The daemon answered: if the spool holds reports, replay them in the background. The
        spool file is looked at once a second at most (other processes may spool into it too),
        and at once after this process spooled a report."""
        now = time.monotonic()
        if not self._spooled and now < self._next_spool_look:
            return
        self._next_spool_look = now + SPOOL_LOOK_INTERVAL
        self._spooled = False
        if self.spool.size() == 0:
            return
        t = self._replay_thread
        if t is not None and t.is_alive():
            return

        def run() -> None:
            try:
                self.replay_now()
            except Exception as exc:  # noqa: BLE001 - a failed replay is retried on the next contact
                log.info("spendwall: spool replay deferred: %s", exc)

        self._replay_thread = threading.Thread(target=run, name="spendwall-replay", daemon=True)
        self._replay_thread.start()


# ---------------------------------------------------------------------- background reports

SPOOL_LOOK_INTERVAL = 1.0  # seconds between looks at the spool file after checks the daemon answered
BATCH = 1000  # the daemon takes at most 1,000 reports per POST /v1/reports
EXIT_TIMEOUT = 10.0  # seconds the interpreter's exit waits for queued reports before spooling them
LINGER = 0.05  # seconds: while reports keep coming, how often the worker looks at the queue
IDLE = 1.0  # seconds without a report after which the worker sleeps until the next one wakes it


class _Entry:
    __slots__ = ("rt", "item", "settled")

    def __init__(self, rt: Runtime, item: Dict[str, Any]) -> None:
        self.rt = rt
        self.item = item
        self.settled = False  # delivered, refused or spooled: nothing more to do


def _single_payload(item: Dict[str, Any]) -> Dict[str, Any]:
    p: Dict[str, Any] = {"reservation_id": item["reservation_id"], "usage": item["usage"],
                         "duration_ms": item["duration_ms"], "outcome": item["outcome"]}
    if item.get("status") is not None:
        p["status"] = item["status"]
    return p


class Reporter:
    """Sends reports in the background, so that a call returns as soon as its answer is in
    hand: one daemon thread per process takes what is queued, one report through
    `POST /v1/report`, several at once through `POST /v1/reports` (idempotent by id: the
    reservation id). What cannot be delivered is spooled, exactly as a report sent inline would
    be. `flush()` waits until everything queued so far is delivered or spooled; the
    interpreter's exit does the same (up to EXIT_TIMEOUT, then spools what is left).

    The worker is not woken for each report (waking a thread costs the calling thread tens of
    µs of GIL contention): while reports keep coming it looks at the queue every LINGER
    seconds, and only after IDLE seconds without one does it sleep until a report wakes it.
    A report therefore reaches the daemon within LINGER (flush() sends at once)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queue: List[_Entry] = []
        self._inflight: List[_Entry] = []
        self._thread: Optional[threading.Thread] = None
        self._paused = 0
        self._exiting = False
        self._sleeping = False  # the worker waits without a timeout: submit() must wake it

    # -------------------------------------------------------------- the caller's side
    def submit(self, rt: Runtime, item: Dict[str, Any]) -> None:
        entry = _Entry(rt, item)
        with self._cond:
            if not self._exiting:
                self._queue.append(entry)
                t = self._thread
                if t is not None and t.is_alive():
                    # a worker that looks at the queue every LINGER seconds takes it without a
                    # wake-up: waking a thread costs the caller tens of µs of GIL contention
                    if self._sleeping:
                        self._cond.notify()
                    return
                try:
                    t = threading.Thread(target=self._run, name="spendwall-reporter", daemon=True)
                    t.start()
                    self._thread = t
                    return
                except RuntimeError:  # interpreter shutdown: no new threads
                    self._queue.pop()
                    self._thread = None
        self._deliver_guarded([entry])  # at exit, or without a thread: inline

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._inflight)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every report queued so far is delivered or spooled; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()  # now, not at the worker's next look
            while self._queue or self._inflight:
                if self._queue and not self._inflight and (self._thread is None or not self._thread.is_alive()) \
                        and not self._paused:
                    batch, self._queue = self._queue, []
                    self._inflight = batch
                    self._cond.release()
                    try:
                        self._deliver_guarded(batch)
                    finally:
                        self._cond.acquire()
                        self._inflight = []
                        self._cond.notify_all()
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Holds the queue (for tests: reports queued meanwhile go out together)."""
        with self._cond:
            self._paused += 1
        try:
            yield
        finally:
            with self._cond:
                self._paused -= 1
                self._cond.notify_all()

    def at_exit(self) -> None:
        done = self.flush(EXIT_TIMEOUT)
        with self._cond:
            self._exiting = True
            left = self._queue + self._inflight
            self._queue = []
        if not done:
            for entry in left:
                self._spool(entry)

    def after_fork_in_child(self) -> None:
        # what the parent had queued is the parent's to send; its thread and lock are not ours
        self._cond = threading.Condition(threading.Lock())
        self._queue, self._inflight, self._thread, self._paused, self._sleeping = [], [], None, 0, False

    # -------------------------------------------------------------- the worker
    def _run(self) -> None:
        last = time.monotonic()
        while True:
            with self._cond:
                while not self._queue or self._paused:
                    if not self._paused and time.monotonic() - last >= IDLE:
                        self._sleeping = True  # nothing for a while: until submit() wakes it
                        try:
                            self._cond.wait()
                        finally:
                            self._sleeping = False
                    else:
                        self._cond.wait(LINGER)
                batch, self._queue = self._queue, []
                self._inflight = batch
            try:
                self._deliver_guarded(batch)
            finally:
                last = time.monotonic()
                with self._cond:
                    self._inflight = []
                    self._cond.notify_all()

    def _deliver_guarded(self, batch: List[_Entry]) -> None:
        try:
            self._deliver(batch)
        except BaseException as exc:  # noqa: BLE001 - never lose a report to a bug
            log.warning("spendwall: sending reports failed: %r", exc)
            for entry in batch:
                self._spool(entry)

    def _claim(self, entry: _Entry) -> bool:
        with self._cond:
            if entry.settled:
                return False
            entry.settled = True
            return True

    def _spool(self, entry: _Entry) -> None:
        if self._claim(entry):
            entry.rt.spool_report(entry.item)

    def _deliver(self, batch: List[_Entry]) -> None:
        groups: Dict[int, List[_Entry]] = {}
        for entry in batch:
            if entry.item.get("reservation_id") is None:
                self._spool(entry)  # the check never reached the daemon: the spool, replayed later
            else:
                groups.setdefault(id(entry.rt), []).append(entry)
        for entries in groups.values():
            for i in range(0, len(entries), BATCH):
                chunk = entries[i:i + BATCH]
                if len(chunk) == 1:
                    self._send_one(chunk[0])
                else:
                    self._send_many(chunk)

    def _send_one(self, entry: _Entry) -> None:
        item = entry.item
        try:
            status, body = entry.rt.transport.request("POST", "/v1/report", _single_payload(item))
        except DaemonUnavailable:
            self._spool(entry)
            return
        if status == 200:
            self._claim(entry)
            return
        code = (body.get("error") or {}).get("code")
        if status >= 500 or code == "unknown_reservation":
            # the daemon lost the reservation (restart) or cannot write now: the batch endpoint,
            # with the call's attribution, takes it later
            self._spool(entry)
        elif self._claim(entry):
            log.warning("spendwall: daemon refused a report (%s %s): %s", status, code, body)

    def _send_many(self, entries: List[_Entry]) -> None:
        rt = entries[0].rt
        try:
            status, body = rt.transport.request("POST", "/v1/reports", {"reports": [e.item for e in entries]})
        except DaemonUnavailable:
            for entry in entries:
                self._spool(entry)
            return
        if status >= 500:
            for entry in entries:
                self._spool(entry)
            return
        if status != 200:  # not taken as a batch: one by one
            for entry in entries:
                self._send_one(entry)
            return
        results = {r.get("id"): r for r in body.get("results") or [] if isinstance(r, dict)}
        for entry in entries:
            r = results.get(entry.item.get("id"))
            result = (r or {}).get("result")
            if result in ("recorded", "duplicate"):
                self._claim(entry)
            elif result == "rejected":
                if self._claim(entry):
                    log.warning("spendwall: daemon rejected report %s: %s", entry.item.get("id"), (r or {}).get("error"))
            else:
                self._spool(entry)


_reporter = Reporter()


def reporter() -> Reporter:
    return _reporter


def flush(timeout: Optional[float] = None) -> bool:
    """Waits until every report started so far has reached the daemon (or the spool).

    Reports are sent in the background so that a call returns as soon as its answer does; the
    interpreter's exit flushes by itself. Returns False if `timeout` (seconds) passed first."""
    return _reporter.flush(timeout)


def _after_fork_in_child() -> None:
    _reporter.after_fork_in_child()
    rt = _rt
    if rt is not None and isinstance(rt.transport, UnixTransport):
        rt.transport._after_fork()


atexit.register(lambda: _reporter.at_exit())
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _after_fork_in_child())


_rt_lock = threading.Lock()
_rt: Optional[Runtime] = None
_rt_generation = -1


def runtime() -> Runtime:
    global _rt, _rt_generation
    gen = _config.generation()
    rt = _rt
    if rt is not None and _rt_generation == gen:
        return rt
    with _rt_lock:
        if _rt is None or _rt_generation != gen:
            old = _rt
            s = _config.settings()
            _rt = Runtime(s, s.transport, s.async_transport)
            _rt_generation = gen
            if old is not None:
                old.transport.close()
        return _rt


class Call:
    """One upstream call: its attribution, its reservation and, once, its report."""

    def __init__(self, provider: str, model: str, request: Optional[Dict[str, Any]], attribution: Dict[str, Any],
                 request_json: Optional[str] = None) -> None:
        self.rt = runtime()
        self.provider = provider
        self.model = model or "unknown"
        self.request = request
        self.request_json = request_json  # `request` already encoded (compact JSON), when known
        self.agent: Optional[str] = attribution.get("agent")
        self.tags: Dict[str, str] = dict(attribution.get("tags") or {})
        self.session: Optional[str] = attribution.get("session")
        # fail closed wins: per call or per client mode="strict", configure(strict=True), SPENDWALL_STRICT=1
        strict = attribution.get("mode") == "strict" or self.rt.settings.resolved_strict()
        self.mode: str = "strict" if strict else "default"
        self.reservation_id: Optional[str] = None
        # the app the daemon attributed this call to, when its check answer says it (the SDK
        # cannot know it otherwise: the daemon decides it from the calling process)
        self.app: Optional[str] = None
        self.daemon_up = False
        self.time_ms = int(time.time() * 1000)
        self.started = time.monotonic()
        self.reported = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ check
    def _check_payload(self, with_request: bool = True) -> Dict[str, Any]:
        p: Dict[str, Any] = {"provider": self.provider, "model": self.model, "mode": self.mode, "path": "sdk"}
        if self.agent is not None:
            p["agent"] = self.agent
        if self.tags:
            p["tags"] = self.tags
        if self.session is not None:
            p["session"] = self.session
        if with_request and self.request is not None:
            p["request"] = self.request
        return p

    def _check_bytes(self) -> bytes:
        """The check's JSON body; an already encoded request is spliced in, not encoded again."""
        if self.request_json is None:
            return _ENCODE(self._check_payload()).encode()
        head = _ENCODE(self._check_payload(with_request=False))
        return f'{head[:-1]},"request":{self.request_json}}}'.encode()

    def _on_check_answer(self, status: int, body: Dict[str, Any]) -> None:
        if status >= 500:
            err = body.get("error") if isinstance(body.get("error"), dict) else {}
            raise DaemonUnavailable(str(err.get("message") or f"daemon answered {status}"), status=status, body=body,
                                    reason="fail_closed" if err.get("fail_closed") is True else "server_error")
        if status != 200:
            raise error_from_body(body, status)
        if body.get("decision") != "allow":
            raise error_from_body(body, status)
        self.reservation_id = body.get("reservation_id")
        app = body.get("app")
        if isinstance(app, str):
            self.app = app
        self.daemon_up = True

    def _on_unavailable(self, exc: DaemonUnavailable) -> None:
        """Fail-open, or not: only when nothing reached the daemon (or it answered a plain 5xx)
        may the call go through, and then only if nothing asks to fail closed. A fail-closed
        refusal, or a check the daemon took and never answered (it may be holding it for an
        approval), is raised in every mode."""
        if not exc.fail_open:
            raise exc
        why = "strict mode" if self.mode == "strict" else self.rt.fails_closed()
        if why is not None:
            raise DaemonUnavailable(f"{exc.message} (failing closed: {why})", reason=exc.reason, status=exc.status,
                                    body=exc.body) from exc
        log.debug("spendwall: fail-open, daemon unavailable: %s", exc)

    def check(self) -> None:
        rt = self.rt
        try:
            if rt.sync_extends:
                status, body = rt.transport.request_bytes("POST", "/v1/check", self._check_bytes(),
                                                          extend=rt.check_wait)
            else:
                status, body = rt.transport.request("POST", "/v1/check", self._check_payload())
            self._on_check_answer(status, body)
        except DaemonUnavailable as exc:
            self._on_unavailable(exc)
            return
        rt.maybe_replay()

    async def acheck(self) -> None:
        rt = self.rt
        try:
            if rt.async_extends:
                status, body = await rt.async_transport.request_bytes("POST", "/v1/check", self._check_bytes(),
                                                                      extend=rt.check_wait)
            else:
                status, body = await rt.async_transport.request("POST", "/v1/check", self._check_payload())
            self._on_check_answer(status, body)
        except DaemonUnavailable as exc:
            self._on_unavailable(exc)
            return
        rt.maybe_replay()

    # ------------------------------------------------------------------ report
    def _claim(self) -> bool:
        with self._lock:
            if self.reported:
                return False
            self.reported = True
            return True

    def _spool_item(self, usage: Usage, status: Optional[int], outcome: str, duration_ms: int) -> Dict[str, Any]:
        return {"id": self.reservation_id or "c_" + uuid.uuid4().hex, "reservation_id": self.reservation_id,
                "time_ms": self.time_ms, "provider": self.provider, "model": self.model, "agent": self.agent,
                "tags": self.tags, "session": self.session, "usage": usage, "status": status,
                "duration_ms": duration_ms, "outcome": outcome, "mode": self.mode, "path": "sdk"}

    def report(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        """Reports once (later calls do nothing), in the background: see `Reporter`."""
        if not self._claim():
            return
        duration_ms = int((time.monotonic() - self.started) * 1000)
        _reporter.submit(self.rt, self._spool_item(usage or zero(), status, outcome, duration_ms))

    async def areport(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        self.report(usage, status, outcome)  # queued: never blocks the event loop

    def report_soon(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        """For paths that cannot await (async generator finalisation, cancellation)."""
        self.report(usage, status, outcome)
