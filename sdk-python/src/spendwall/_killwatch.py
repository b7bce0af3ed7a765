"""Kill in flight: a subscriber to the daemon's live event stream that stops streams whose
scope is killed while they run.

One daemon thread per daemon socket (so, per process in practice), started lazily when the
first stream begins: it opens `GET /v1/events?kinds=KillSwitch` (chunked `text/event-stream`),
seeds the switches from `GET /v1/kill` once subscribed, then follows `KillSwitch` events. When a
switch turns on, every stream in flight that it covers is marked; the stream notices before it
hands over its next chunk (sync and asyncio streams alike: they only read a flag, so the event
loop never blocks), reports outcome `killed` and raises `spendwall.Killed`.

The subscription reconnects with backoff (a daemon that restarts, a dropped stream) and keeps
the last known switches meanwhile; a daemon without the endpoint is retried slowly and calls
are never affected. With no stream in flight for LINGER seconds the thread disconnects and
ends; the next stream starts it again. Standard library only.
"""
from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import weakref
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ._client import UnixTransport
from ._errors import DaemonUnavailable, Killed

__all__ = ["KillWatch", "watch_for", "scope_covers", "Scope"]

log = logging.getLogger("spendwall")

# (kind, value): ("global", None), ("agent", "a"), ("app", "x"), ("session", "s")
Scope = Tuple[str, Optional[str]]

EVENTS_PATH = "/v1/events?kinds=KillSwitch"
LINGER = 60.0  # seconds without a stream in flight before the subscription is closed
SILENCE = 45.0  # the daemon sends a keep-alive every 15 s: this much silence means a dead stream
POLL = 1.0  # socket timeout: how often a blocked read looks at LINGER and SILENCE
BACKOFF_MIN = 0.2
BACKOFF_MAX = 5.0
NO_EVENTS_BACKOFF = 60.0  # a daemon that answers /v1/events with an error (an older daemon)

_HEAD = (f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
         "User-Agent: spendwall-python/0.1.0\r\n\r\n").encode()


def parse_scope(obj: Any) -> Optional[Scope]:
    if not isinstance(obj, Mapping):
        return None
    kind = obj.get("kind")
    if kind == "global":
        return ("global", None)
    value = obj.get("value")
    if kind in ("agent", "app", "session") and isinstance(value, str):
        return (kind, value)
    return None


def scope_covers(scope: Scope, call: Any) -> bool:
    """Whether a switch on `scope` covers `call` (a `_core.Call`). The `app` of a call is the
    daemon's to decide: it is known only when the check answer said it."""
    kind, value = scope
    if kind == "global":
        return True
    if kind == "agent":
        return call.agent == value
    if kind == "session":
        return call.session == value
    if kind == "app":
        return call.app is not None and call.app == value
    return False


def _scope_json(scope: Scope) -> Dict[str, str]:
    kind, value = scope
    return {"kind": kind} if value is None else {"kind": kind, "value": value}


def _describe(scope: Scope) -> str:
    kind, value = scope
    return "the global kill switch" if kind == "global" else f"the {kind} {value!r} kill switch"


class _NoEvents(Exception):
    """The daemon answered /v1/events with something other than a 200 event stream."""


class _Dechunker:
    """Incremental HTTP/1.1 chunked transfer decoding."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = -1  # bytes left in the current chunk; -1: a size line is next; -2: its CRLF
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out: List[bytes] = []
        while not self.ended:
            if self.left == -1:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    if len(self.buf) > 1024:
                        raise ValueError("chunk size line too long")
                    break
                size = int(self.buf[:i].split(b";")[0].strip() or b"0", 16)
                self.buf = self.buf[i + 2:]
                if size == 0:
                    self.ended = True
                    break
                self.left = size
            elif self.left == -2:
                if len(self.buf) < 2:
                    break
                self.buf = self.buf[2:]
                self.left = -1
            else:
                if not self.buf:
                    break
                take = self.buf[:self.left]
                self.buf = self.buf[len(take):]
                self.left -= len(take)
                out.append(take)
                if self.left == 0:
                    self.left = -2
        return b"".join(out)


class SSEParser:
    """Incremental text/event-stream parsing: yields (event, data) per dispatched event."""

    def __init__(self) -> None:
        self.buf = b""
        self.event = ""
        self.data: List[str] = []

    def feed(self, data: bytes) -> Iterator[Tuple[str, str]]:
        self.buf += data
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) > 16 * 1024 * 1024:
                    raise ValueError("event line too long")
                return
            line = self.buf[:i].rstrip(b"\r").decode("utf-8", "replace")
            self.buf = self.buf[i + 1:]
            if not line:
                if self.data:
                    yield self.event or "message", "\n".join(self.data)
                self.event, self.data = "", []
                continue
            if line.startswith(":"):
                continue  # a comment: the greeting or a keep-alive
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                self.data.append(value)
            elif name == "event":
                self.event = value


class KillWatch:
    """The kill switches of one daemon, and the streams in flight that they may stop."""

    def __init__(self, path: str, connect_timeout: float = 1.0) -> None:
        self.path = path
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._streams: "weakref.WeakSet[Any]" = weakref.WeakSet()  # StreamTrackers
        # scope -> (on, time_ms of the flip that set it; 0 when unknown)
        self._switches: Dict[Scope, Tuple[bool, int]] = {}
        self._thread: Optional[threading.Thread] = None
        self._idle_since = time.monotonic()
        self._seed = UnixTransport(path, timeout=5.0, connect_timeout=connect_timeout, max_idle=1)
        # observability (tests, debugging)
        self.connects = 0  # subscriptions that got a 200 event stream
        self.attempts = 0
        self.connected = False
        self.seeded = threading.Event()
        self.events = 0
        self._warned_no_events = False

    # ------------------------------------------------------------------ streams
    def register(self, tracker: Any) -> None:
        """A stream begins: watch it (starting the subscriber if needed). A switch that is
        already on and turned on after the call's check stops it at its first chunk."""
        with self._lock:
            self._streams.add(tracker)
            for scope, (on, since) in self._switches.items():
                if on:
                    self._mark(tracker, scope, since, None)
            t = self._thread
            if t is None or not t.is_alive():
                t = threading.Thread(target=self._run, name="spendwall-killwatch", daemon=True)
                self._thread = t
                t.start()

    def unregister(self, tracker: Any) -> None:
        with self._lock:
            self._streams.discard(tracker)
            if not self._streams:
                self._idle_since = time.monotonic()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._streams)

    def active(self) -> List[Scope]:
        """The switches known to be on."""
        with self._lock:
            return [s for s, (on, _) in self._switches.items() if on]

    def _mark(self, tracker: Any, scope: Scope, since: int, by: Any) -> None:
        """Kills `tracker` if `scope` covers its call and was turned on after the call's check
        began (a switch already on then would have refused the check: such a state is stale)."""
        call = tracker.call
        if tracker.killed_by is not None or since < call.time_ms or not scope_covers(scope, call):
            return
        msg = f"{_describe(scope)} was turned on while this stream was in flight"
        body: Dict[str, Any] = {"decision": "killed", "error": {"code": "killed", "message": msg},
                                "scope": _scope_json(scope), "in_flight": True, "time_ms": since}
        if by is not None:
            body["by"] = by
        tracker.killed_by = Killed(msg, code="killed", body=body)

    # ------------------------------------------------------------------ switches
    def apply(self, data: Mapping[str, Any]) -> None:
        """One KillSwitch event's data: `{"scope": {...}, "on": bool, "time_ms": T, "by": {...}}`."""
        scope = parse_scope(data.get("scope"))
        if scope is None:
            return
        on = data.get("on") is True
        t = data.get("time_ms")
        since = t if isinstance(t, int) else int(time.time() * 1000)
        with self._lock:
            prev = self._switches.get(scope)
            if prev is not None and since < prev[1]:
                return  # older than what we know (an event that preceded the seed)
            self._switches[scope] = (on, since)
            if on:
                for tracker in list(self._streams):
                    self._mark(tracker, scope, since, data.get("by"))
        log.info("spendwall: %s turned %s", _describe(scope), "on" if on else "off")

    def seed(self, answer: Mapping[str, Any]) -> None:
        """`GET /v1/kill`: `{"on": [scope...], "flips": [{"scope", "on", "time_ms", "by"}...]}`."""
        latest: Dict[Scope, Tuple[int, Any]] = {}
        for flip in answer.get("flips") or []:
            if not isinstance(flip, Mapping):
                continue
            scope = parse_scope(flip.get("scope"))
            t = flip.get("time_ms")
            if scope is None or not isinstance(t, int):
                continue
            if scope not in latest or t >= latest[scope][0]:
                latest[scope] = (t, flip.get("by"))
        on = {s for s in (parse_scope(x) for x in answer.get("on") or []) if s is not None}
        switches = {s: (s in on, latest.get(s, (0, None))[0]) for s in on | set(latest)}
        with self._lock:
            self._switches = switches
            for scope, (is_on, since) in switches.items():
                if is_on:
                    for tracker in list(self._streams):
                        self._mark(tracker, scope, since, latest.get(scope, (0, None))[1])

    # ------------------------------------------------------------------ the subscriber
    def _should_stop(self) -> bool:
        """Called by the subscriber thread: with nothing in flight for LINGER seconds, it ends
        (under the lock, so a stream registering now starts a new one)."""
        with self._lock:
            if self._streams or time.monotonic() - self._idle_since < LINGER:
                return False
            if self._thread is threading.current_thread():
                self._thread = None
            return True

    def _run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            if self._should_stop():
                break
            self.attempts += 1
            started = time.monotonic()
            try:
                if self._session() == "stop":
                    break
                wait = backoff if time.monotonic() - started < 5 else BACKOFF_MIN
            except _NoEvents as exc:
                if not self._warned_no_events:
                    self._warned_no_events = True
                    log.info("spendwall: the daemon at %s serves no event stream (%s): kill in flight is off; "
                             "checks still enforce kill switches", self.path, exc)
                wait = NO_EVENTS_BACKOFF
            except (OSError, ValueError, DaemonUnavailable) as exc:
                log.debug("spendwall: event stream at %s: %s", self.path, exc)
                wait = backoff
            except Exception as exc:  # noqa: BLE001 - never let the watcher die on a bug
                log.warning("spendwall: event stream at %s failed: %r", self.path, exc)
                wait = backoff
            finally:
                self.connected = False
            backoff = min(BACKOFF_MAX, max(BACKOFF_MIN, wait) * 2)
            deadline = time.monotonic() + wait * (0.8 + 0.4 * random.random())
            while time.monotonic() < deadline:  # sleep, but end promptly when idle
                if self._should_stop():
                    self._seed.close()
                    return
                time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        self._seed.close()

    def _session(self) -> str:
        """One subscription: returns "stop" when idle long enough; raises when it breaks."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.connect_timeout)
            sock.connect(self.path)
            sock.settimeout(POLL)
            sock.sendall(_HEAD)
            buf = b""
            last = time.monotonic()
            while b"\r\n\r\n" not in buf:
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    if time.monotonic() - last > 10:
                        raise OSError("no answer to GET /v1/events")
                    continue
                if not data:
                    raise OSError("the daemon closed the event stream before its head")
                buf += data
                if len(buf) > 65536:
                    raise ValueError("event stream head too long")
            head, _, rest = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError(f"bad status line {lines[0]!r}")
            status = int(parts[1])
            chunked = any(ln.lower().startswith("transfer-encoding:") and "chunked" in ln.lower() for ln in lines[1:])
            ctype = next((ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("content-type:")), "")
            if status != 200 or not ctype.startswith("text/event-stream"):
                raise _NoEvents(f"HTTP {status} {ctype or 'no content type'}")
            self.connects += 1
            self.connected = True
            dechunk = _Dechunker() if chunked else None
            sse = SSEParser()
            self.seeded.clear()
            last = time.monotonic()
            while True:
                if rest:
                    payload = dechunk.feed(rest) if dechunk else rest
                    rest = b""
                    if payload and not self.seeded.is_set():
                        # the greeting came: the subscription is registered, so no flip can
                        # fall between it and this snapshot (events that preceded the snapshot
                        # and arrive after it are older than it, and skipped)
                        self._seed_now()
                    for event, data in sse.feed(payload):
                        self._on_event(event, data)
                    if dechunk is not None and dechunk.ended:
                        raise OSError("the daemon ended the event stream")
                try:
                    rest = sock.recv(65536)
                except socket.timeout:
                    if self._should_stop():
                        return "stop"
                    if time.monotonic() - last > SILENCE:
                        raise OSError(f"no event or keep-alive for {SILENCE:.0f} s")
                    continue
                if not rest:
                    raise OSError("the daemon closed the event stream")
                last = time.monotonic()
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _seed_now(self) -> None:
        try:
            status, body = self._seed.request("GET", "/v1/kill")
        except DaemonUnavailable as exc:
            raise OSError(f"GET /v1/kill: {exc}") from exc
        if status == 200:
            self.seed(body)
        else:
            log.debug("spendwall: GET /v1/kill answered %s: %s", status, body)
        self.seeded.set()

    def _on_event(self, event: str, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        kind = msg.get("kind") or event
        if kind != "KillSwitch":
            return
        payload = msg.get("data")
        if isinstance(payload, dict):
            self.events += 1
            self.apply(payload)


_watches_lock = threading.Lock()
_watches: Dict[str, KillWatch] = {}


def watch_for(transport: Any) -> Optional[KillWatch]:
    """The watch of the daemon behind `transport`, when it is the SDK's own Unix socket
    transport (an injected transport has no event stream to follow)."""
    if not isinstance(transport, UnixTransport):
        return None
    with _watches_lock:
        w = _watches.get(transport.path)
        if w is None:
            w = KillWatch(transport.path, transport.connect_timeout)
            _watches[transport.path] = w
        return w
