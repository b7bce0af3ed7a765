"""The check -> forward -> report cycle of one call, fail-open spooling and replay."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from typing import Any, Dict, List, Optional, Set

from . import _config
from ._client import AsyncUnixTransport, UnixTransport
from ._errors import DaemonUnavailable, error_from_body
from ._spool import Spool
from ._usage import Usage, zero

__all__ = ["Runtime", "Call", "runtime"]

log = logging.getLogger("spendwall")


class Runtime:
    """Per-process state: the transports, the spool, the replay worker."""

    def __init__(self, settings: _config.Settings, transport: Any = None, async_transport: Any = None) -> None:
        self.settings = settings
        path = settings.resolved_socket()
        self.transport = transport or UnixTransport(path, timeout=settings.timeout,
                                                    connect_timeout=settings.connect_timeout)
        self.async_transport = async_transport or AsyncUnixTransport(path, timeout=settings.timeout,
                                                                     connect_timeout=settings.connect_timeout)
        self.spool = Spool(settings.spool_dir(), settings.spool_max_bytes)
        self._replaying = threading.Lock()
        self._replay_thread: Optional[threading.Thread] = None
        self._background: Set["asyncio.Task[Any]"] = set()

    # ------------------------------------------------------------------ spool
    def spool_report(self, item: Dict[str, Any]) -> None:
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
        """The daemon answered: if the spool holds reports, replay them in the background."""
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

    def keep(self, task: "asyncio.Task[Any]") -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)


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


def _strict(mode: Optional[str], rt: Runtime) -> bool:
    if mode == "strict":
        return True
    return rt.settings.resolved_strict()


class Call:
    """One upstream call: its attribution, its reservation and, once, its report."""

    def __init__(self, provider: str, model: str, request: Optional[Dict[str, Any]], attribution: Dict[str, Any]) -> None:
        self.rt = runtime()
        self.provider = provider
        self.model = model or "unknown"
        self.request = request
        self.agent: Optional[str] = attribution.get("agent")
        self.tags: Dict[str, str] = dict(attribution.get("tags") or {})
        self.session: Optional[str] = attribution.get("session")
        self.mode: str = attribution.get("mode") or ("strict" if _strict(None, self.rt) else "default")
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
    def _check_payload(self) -> Dict[str, Any]:
        p: Dict[str, Any] = {"provider": self.provider, "model": self.model, "mode": self.mode, "path": "sdk"}
        if self.agent is not None:
            p["agent"] = self.agent
        if self.tags:
            p["tags"] = self.tags
        if self.session is not None:
            p["session"] = self.session
        if self.request is not None:
            p["request"] = self.request
        return p

    def _on_check_answer(self, status: int, body: Dict[str, Any]) -> None:
        if status >= 500:
            raise DaemonUnavailable(str((body.get("error") or {}).get("message") or f"daemon answered {status}"),
                                    status=status, body=body)
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
        if _strict(self.mode, self.rt):
            raise exc
        log.debug("spendwall: fail-open, daemon unavailable: %s", exc)

    def check(self) -> None:
        try:
            status, body = self.rt.transport.request("POST", "/v1/check", self._check_payload())
            self._on_check_answer(status, body)
        except DaemonUnavailable as exc:
            self._on_unavailable(exc)
            return
        self.rt.maybe_replay()

    async def acheck(self) -> None:
        try:
            status, body = await self.rt.async_transport.request("POST", "/v1/check", self._check_payload())
            self._on_check_answer(status, body)
        except DaemonUnavailable as exc:
            self._on_unavailable(exc)
            return
        self.rt.maybe_replay()

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

    def _report_payload(self, usage: Usage, status: Optional[int], outcome: str, duration_ms: int) -> Dict[str, Any]:
        p: Dict[str, Any] = {"reservation_id": self.reservation_id, "usage": usage, "duration_ms": duration_ms,
                             "outcome": outcome}
        if status is not None:
            p["status"] = status
        return p

    def _on_report_answer(self, status: int, body: Dict[str, Any], item: Dict[str, Any]) -> None:
        if status == 200:
            return
        code = (body.get("error") or {}).get("code")
        if status >= 500 or code == "unknown_reservation":
            # the daemon lost the reservation (restart) or cannot write now: the batch endpoint,
            # with the call's attribution, takes it later
            self.rt.spool_report(item)
        else:
            log.warning("spendwall: daemon refused a report (%s %s): %s", status, code, body)

    def report(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        if not self._claim():
            return
        usage = usage or zero()
        duration_ms = int((time.monotonic() - self.started) * 1000)
        item = self._spool_item(usage, status, outcome, duration_ms)
        if self.reservation_id is None:
            self.rt.spool_report(item)
            return
        try:
            st, body = self.rt.transport.request("POST", "/v1/report", self._report_payload(usage, status, outcome,
                                                                                             duration_ms))
        except DaemonUnavailable:
            self.rt.spool_report(item)
            return
        self._on_report_answer(st, body, item)

    async def areport(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        if not self._claim():
            return
        usage = usage or zero()
        duration_ms = int((time.monotonic() - self.started) * 1000)
        item = self._spool_item(usage, status, outcome, duration_ms)
        if self.reservation_id is None:
            self.rt.spool_report(item)
            return
        try:
            st, body = await self.rt.async_transport.request(
                "POST", "/v1/report", self._report_payload(usage, status, outcome, duration_ms))
        except DaemonUnavailable:
            self.rt.spool_report(item)
            return
        self._on_report_answer(st, body, item)

    def report_soon(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        """For paths that cannot await (async generator finalisation, cancellation): report
        from a short-lived thread over the sync transport."""
        if self.reported:
            return
        threading.Thread(target=self._report_quietly, args=(usage, status, outcome), daemon=True,
                         name="spendwall-report").start()

    def _report_quietly(self, usage: Optional[Usage], status: Optional[int], outcome: str) -> None:
        try:
            self.report(usage, status, outcome)
        except Exception as exc:  # noqa: BLE001
            log.warning("spendwall: report failed: %s", exc)
