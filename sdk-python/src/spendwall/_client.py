"""HTTP/1.1 + JSON over the daemon's Unix socket: persistent connections, thread-safe, and a
native asyncio path that never blocks the event loop. Standard library only."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ._errors import DaemonUnavailable

__all__ = ["Transport", "AsyncTransport", "UnixTransport", "AsyncUnixTransport", "Response"]

Response = Tuple[int, Dict[str, Any]]
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "spendwall-python/0.1.0"}
_HEADER_LINES = "".join(f"{k}: {v}\r\n" for k, v in _HEADERS.items())


class Transport(Protocol):
    """What the SDK needs from a sync transport; inject your own for tests. `request` returns
    the daemon's status and JSON body, or raises `DaemonUnavailable` with a `reason`
    (`unreachable` when nothing reached the daemon: the only failure a call fails open on)."""

    def request(self, method: str, path: str, body: Optional[Any] = None) -> Response: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def request(self, method: str, path: str, body: Optional[Any] = None) -> Response: ...


_ENCODE = json.JSONEncoder(separators=(",", ":")).encode

# Called when a request's timeout has passed without an answer: the total number of seconds
# (from the request's start) to keep waiting. A check passes one so that it outlasts the
# daemon's approval wait (`approval_timeout` + a margin), reading the daemon's config only then.
Extend = Callable[[], float]


def _decode(status: int, raw: bytes) -> Response:
    if not raw:
        return status, {}
    try:
        data = json.loads(raw)
    except ValueError:
        return status, {"error": {"code": "internal", "message": raw[:200].decode("utf-8", "replace")}}
    return status, data if isinstance(data, dict) else {"value": data}


class _Lost(Exception):
    """The connection failed mid-request. `written`: the whole request had been handed to the
    kernel (the daemon may have read it); `answered`: some of the answer had arrived."""

    def __init__(self, message: str, written: bool, answered: bool) -> None:
        super().__init__(message)
        self.written = written
        self.answered = answered


class _Conn:
    """One keep-alive connection: a whole request goes out in one send, the answer is parsed
    from a buffer (a lean HTTP/1.1 client: http.client's header parsing costs ~100 µs a call).
    The daemon answers with Content-Length; chunked answers and close-delimited ones are read
    too."""

    __slots__ = ("sock", "buf", "used", "sock_timeout", "timeout", "started", "extend", "got")

    def __init__(self, path: str, timeout: float, connect_timeout: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(path)
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.sock_timeout = timeout
        self.buf = b""
        self.used = False
        self.timeout = timeout
        self.started = 0.0
        self.extend: Optional[Extend] = None
        self.got = False

    def _fill(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                extend, self.extend = self.extend, None
                if extend is not None:  # once: how much longer this request may wait
                    left = max(self.timeout, extend()) - (time.monotonic() - self.started)
                    if left > 0:
                        self.sock.settimeout(left)
                        self.sock_timeout = left
                        continue
                raise
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
                raise _Lost(str(exc), True, self.got) from exc
            if not chunk:
                raise _Lost("the daemon closed the connection", True, self.got)
            self.got = True
            self.buf += chunk
            return

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > 65536:
                raise ValueError("answer line too long")
            self._fill()

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def roundtrip(self, request: bytes, extend: Optional[Extend]) -> Tuple[int, bytes, bool]:
        if self.sock_timeout != self.timeout:  # a previous request extended it
            self.sock.settimeout(self.timeout)
            self.sock_timeout = self.timeout
        self.extend = extend
        self.got = False
        self.buf = b""
        self.started = time.monotonic()
        try:
            self.sock.sendall(request)
        except socket.timeout:
            raise
        except OSError as exc:  # EPIPE / ECONNRESET: the daemon had closed this connection
            raise _Lost(str(exc), False, False) from exc
        self._fill()
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > 65536:
                raise ValueError("answer head too long")
            self._fill()
        head, self.buf = self.buf[:i], self.buf[i + 4:]
        lines = head.split(b"\r\n")
        status_line = lines[0]
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError(f"bad status line {status_line[:100]!r}")
        status = int(parts[1])
        length: Optional[int] = None
        chunked = False
        close = parts[0] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if chunked:
            pieces = []
            while True:
                size = int(self._line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self._line():  # trailers, up to the blank line
                        pass
                    break
                pieces.append(self._exactly(size))
                if self._line():
                    raise ValueError("chunk not followed by CRLF")
            body = b"".join(pieces)
        elif length is not None:
            if len(self.buf) == length:  # the common case: the whole answer came in one read
                body, self.buf = self.buf, b""
            else:
                body = self._exactly(length)
        else:
            while True:
                try:
                    self._fill()
                except _Lost:
                    break
            body, self.buf, close = self.buf, b"", True
        if self.buf:  # bytes after the answer: nothing was asked for them
            close = True
        return status, body, close

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


_HEAD_START: Dict[Tuple[str, str], bytes] = {}


def _request_bytes(method: str, path: str, payload: Optional[bytes]) -> bytes:
    start = _HEAD_START.get((method, path))
    if start is None:
        start = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{_HEADER_LINES}Content-Length: ".encode()
        if len(_HEAD_START) < 256:
            _HEAD_START[(method, path)] = start
    if not payload:
        return start + b"0\r\n\r\n"
    return b"%s%d\r\n\r\n%s" % (start, len(payload), payload)


class UnixTransport:
    """A small pool of keep-alive connections; each request borrows one, so threads never share.

    `request` raises `DaemonUnavailable` when no answer comes, with a `reason`: `unreachable`
    when nothing reached the daemon (the only failure a call may fail open on), `timeout` or
    `connection_lost` once the request was sent. An idle connection the daemon had closed is
    retried once on a fresh one."""

    def __init__(self, path: str, *, timeout: float = 30.0, connect_timeout: float = 1.0, max_idle: int = 64) -> None:
        self.path = path
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._idle: List[_Conn] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle

    def _borrow(self) -> _Conn:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Conn(self.path, self.timeout, self.connect_timeout)

    def _give_back(self, conn: _Conn) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def request(self, method: str, path: str, body: Optional[Any] = None, *, extend: Optional[Extend] = None) -> Response:
        return self.request_bytes(method, path, None if body is None else _ENCODE(body).encode(), extend=extend)

    def request_bytes(self, method: str, path: str, payload: Optional[bytes], *,
                      extend: Optional[Extend] = None) -> Response:
        request = _request_bytes(method, path, payload)
        for attempt in (0, 1):
            try:
                conn = self._borrow()
            except OSError as exc:
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: {exc}",
                                        reason="unreachable") from exc
            reused = conn.used
            try:
                status, raw, close = conn.roundtrip(request, extend)
            except _Lost as exc:
                conn.close()
                if reused and not exc.answered and attempt == 0:
                    continue  # an idle keep-alive connection the daemon had closed: one retry
                if exc.written:
                    raise DaemonUnavailable(f"spendwall daemon at {self.path} closed the connection before answering "
                                            f"{method} {path}: {exc}", reason="connection_lost") from exc
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: the connection failed before "
                                        f"the request was sent: {exc}", reason="unreachable") from exc
            except socket.timeout as exc:
                conn.close()
                raise DaemonUnavailable(f"spendwall daemon at {self.path} did not answer {method} {path} in time "
                                        f"({exc})", reason="timeout") from exc
            except (OSError, ValueError) as exc:
                conn.close()
                raise DaemonUnavailable(f"spendwall daemon at {self.path} failed answering {method} {path}: {exc}",
                                        reason="connection_lost") from exc
            except BaseException:
                conn.close()
                raise
            conn.used = True
            if close:
                conn.close()
            else:
                self._give_back(conn)
            return _decode(status, raw)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _after_fork(self) -> None:
        """In a forked child: the parent's connections are the parent's; start afresh."""
        self._lock = threading.Lock()
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _AsyncConn:
    __slots__ = ("reader", "writer", "used", "written", "got")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False
        self.written = False
        self.got = False

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


class AsyncUnixTransport:
    """Native asyncio HTTP/1.1 client over the Unix socket; connections are kept per event loop.
    Failures raise `DaemonUnavailable` with the same `reason`s as `UnixTransport`."""

    def __init__(self, path: str, *, timeout: float = 30.0, connect_timeout: float = 1.0, max_idle: int = 64) -> None:
        self.path = path
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, List[_AsyncConn]]" = weakref.WeakKeyDictionary()

    async def _borrow(self) -> _AsyncConn:
        loop = asyncio.get_running_loop()
        idle = self._idle.get(loop)
        if idle:
            return idle.pop()
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.path, limit=16 * 1024 * 1024),
                                                self.connect_timeout)
        return _AsyncConn(reader, writer)

    def _give_back(self, conn: _AsyncConn) -> None:
        idle = self._idle.setdefault(asyncio.get_running_loop(), [])
        if len(idle) < self._max_idle:
            idle.append(conn)
        else:
            conn.close()

    @staticmethod
    async def _roundtrip(conn: _AsyncConn, request: bytes) -> Tuple[int, bytes, bool]:
        conn.writer.write(request)
        await conn.writer.drain()
        conn.written = True
        status_line = await conn.reader.readline()
        if not status_line:
            raise ConnectionResetError("the daemon closed the connection")
        conn.got = True
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError(f"bad status line {status_line[:100]!r}")
        status = int(parts[1])
        length: Optional[int] = None
        chunked = False
        close = parts[0] == b"HTTP/1.0"
        while True:
            line = await conn.reader.readline()
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionResetError("the daemon closed the connection mid-answer")
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection":
                close = value.lower() == b"close"
        if chunked:
            pieces = []
            while True:
                size = int((await conn.reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await conn.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                pieces.append(await conn.reader.readexactly(size))
                await conn.reader.readline()
            body = b"".join(pieces)
        elif length is not None:
            body = await conn.reader.readexactly(length)
        else:
            body = await conn.reader.read()
            close = True
        return status, body, close

    async def _timed(self, conn: _AsyncConn, request: bytes, extend: Optional[Extend]) -> Tuple[int, bytes, bool]:
        if extend is None:
            return await asyncio.wait_for(self._roundtrip(conn, request), self.timeout)
        # a request that may wait longer (a check held for an approval): at the timeout, it is
        # given what is left of its longer limit
        loop = asyncio.get_running_loop()
        started = loop.time()
        task = asyncio.ensure_future(self._roundtrip(conn, request))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except asyncio.TimeoutError:
            left = max(self.timeout, extend()) - (loop.time() - started)
            if left <= 0:
                task.cancel()
                raise
            return await asyncio.wait_for(task, left)  # cancels the task at its own timeout
        except BaseException:
            task.cancel()
            raise

    async def request(self, method: str, path: str, body: Optional[Any] = None, *,
                      extend: Optional[Extend] = None) -> Response:
        return await self.request_bytes(method, path, None if body is None else _ENCODE(body).encode(), extend=extend)

    async def request_bytes(self, method: str, path: str, payload: Optional[bytes], *,
                            extend: Optional[Extend] = None) -> Response:
        request = _request_bytes(method, path, payload)
        for attempt in (0, 1):
            try:
                conn = await self._borrow()
            except (OSError, asyncio.TimeoutError) as exc:
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: {exc!r}",
                                        reason="unreachable") from exc
            reused = conn.used
            conn.written = conn.got = False
            try:
                status, raw, close = await self._timed(conn, request, extend)
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if reused and not conn.got and attempt == 0:
                    continue  # an idle keep-alive connection the daemon had closed: one retry
                if conn.written:
                    raise DaemonUnavailable(f"spendwall daemon at {self.path} closed the connection before answering "
                                            f"{method} {path}: {exc!r}", reason="connection_lost") from exc
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: the connection failed before "
                                        f"the request was sent: {exc!r}", reason="unreachable") from exc
            except asyncio.TimeoutError as exc:
                conn.close()
                raise DaemonUnavailable(f"spendwall daemon at {self.path} did not answer {method} {path} in time",
                                        reason="timeout") from exc
            except (OSError, ValueError) as exc:
                conn.close()
                raise DaemonUnavailable(f"spendwall daemon at {self.path} failed answering {method} {path}: {exc!r}",
                                        reason="connection_lost" if conn.written else "unreachable") from exc
            except BaseException:
                conn.close()  # cancelled mid-answer: the connection's state is unknown
                raise
            conn.used = True
            if close:
                conn.close()
            else:
                self._give_back(conn)
            return _decode(status, raw)
        raise AssertionError("unreachable")
