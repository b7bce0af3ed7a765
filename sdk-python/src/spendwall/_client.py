"""HTTP/1.1 + JSON over the daemon's Unix socket: persistent connections, thread-safe, and a
native asyncio path that never blocks the event loop. Standard library only."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import weakref
from typing import Any, Dict, List, Optional, Protocol, Tuple

from ._errors import DaemonUnavailable

__all__ = ["Transport", "AsyncTransport", "UnixTransport", "AsyncUnixTransport", "Response"]

Response = Tuple[int, Dict[str, Any]]
_HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "spendwall-python/0.1.0"}
_HEADER_LINES = "".join(f"{k}: {v}\r\n" for k, v in _HEADERS.items())


class Transport(Protocol):
    """What the SDK needs from a sync transport; inject your own for tests."""

    def request(self, method: str, path: str, body: Optional[Any] = None) -> Response: ...

    def close(self) -> None: ...


class AsyncTransport(Protocol):
    async def request(self, method: str, path: str, body: Optional[Any] = None) -> Response: ...


def _decode(status: int, raw: bytes) -> Response:
    if not raw:
        return status, {}
    try:
        data = json.loads(raw)
    except ValueError:
        return status, {"error": {"code": "internal", "message": raw[:200].decode("utf-8", "replace")}}
    return status, data if isinstance(data, dict) else {"value": data}


class _Conn:
    """One keep-alive connection: a whole request goes out in one send, the answer is parsed
    from a buffer (a lean HTTP/1.1 client: http.client's header parsing costs ~100 µs a call)."""

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
        self.buf = b""
        self.used = False

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("the daemon closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def roundtrip(self, request: bytes) -> Tuple[int, bytes, bool]:
        self.sock.sendall(request)
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            self._fill()
        head, self.buf = self.buf[:i].decode("latin-1"), self.buf[i + 4:]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionResetError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length: Optional[int] = None
        chunked = False
        close = parts[0] == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.strip().lower() == "close"
        if chunked:
            body = b""
            while True:
                size = int(self._line().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exactly(size)
                self._line()
        elif length is not None:
            body = self._exactly(length)
        else:
            while True:
                try:
                    self._fill()
                except ConnectionResetError:
                    break
            body, self.buf, close = self.buf, b"", True
        return status, body, close

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _request_bytes(method: str, path: str, payload: Optional[bytes]) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{_HEADER_LINES}"
            f"Content-Length: {len(payload or b'')}\r\n\r\n").encode() + (payload or b"")


class UnixTransport:
    """A small pool of keep-alive connections; each request borrows one, so threads never share."""

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

    def request(self, method: str, path: str, body: Optional[Any] = None) -> Response:
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        request = _request_bytes(method, path, payload)
        for attempt in (0, 1):
            try:
                conn = self._borrow()
            except OSError as exc:
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: {exc}") from exc
            reused = conn.used
            try:
                status, raw, close = conn.roundtrip(request)
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue  # an idle keep-alive connection the daemon had closed: one retry
                raise DaemonUnavailable(f"spendwall daemon at {self.path} closed the connection: {exc}") from exc
            except (OSError, ValueError) as exc:
                conn.close()
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: {exc}") from exc
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


class _AsyncConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


class AsyncUnixTransport:
    """Native asyncio HTTP/1.1 client over the Unix socket; connections are kept per event loop."""

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

    async def _roundtrip(self, conn: _AsyncConn, method: str, path: str, payload: Optional[bytes]) -> Tuple[int, bytes, bool]:
        head = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        head += [f"{k}: {v}" for k, v in _HEADERS.items()]
        head.append(f"Content-Length: {len(payload or b'')}")
        conn.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + (payload or b""))
        await conn.writer.drain()
        status_line = await conn.reader.readline()
        if not status_line:
            raise ConnectionResetError("connection closed before the answer")
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ConnectionResetError(f"bad status line {status_line!r}")
        status = int(parts[1])
        length: Optional[int] = None
        chunked = False
        close = parts[0] == "HTTP/1.0"
        while True:
            line = await conn.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection":
                close = value.lower() == "close"
        if chunked:
            body = b""
            while True:
                size = int((await conn.reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await conn.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += await conn.reader.readexactly(size)
                await conn.reader.readline()
        elif length is not None:
            body = await conn.reader.readexactly(length)
        else:
            body = await conn.reader.read()
            close = True
        return status, body, close

    async def request(self, method: str, path: str, body: Optional[Any] = None) -> Response:
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        for attempt in (0, 1):
            try:
                conn = await self._borrow()
            except (OSError, asyncio.TimeoutError) as exc:
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: {exc}") from exc
            reused = conn.used
            try:
                status, raw, close = await asyncio.wait_for(self._roundtrip(conn, method, path, payload), self.timeout)
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise DaemonUnavailable(f"spendwall daemon at {self.path} closed the connection: {exc}") from exc
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                conn.close()
                raise DaemonUnavailable(f"spendwall daemon unreachable at {self.path}: {exc}") from exc
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
