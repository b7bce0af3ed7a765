"""Reading usage off streamed events, and hooking a provider SDK's own stream object so the
caller keeps exactly that object (same type, same items) while each call is reported once.

Kill in flight: each hooked stream is registered with the daemon's kill watch
(`_killwatch`); before an item is handed to the caller, the stream looks at the flag the watch
sets, and a killed stream reports outcome `killed` (usage so far plus an estimate of the text
received), closes the upstream response and raises `spendwall.Killed`."""
from __future__ import annotations

import weakref
from typing import Any, AsyncIterator, Iterator, Optional

from . import _killwatch
from ._core import Call
from ._errors import Killed
from ._usage import Usage, estimate_tokens, get, normalize_anthropic, normalize_openai

__all__ = ["StreamTracker", "hook_sync_stream", "hook_async_stream"]


class StreamTracker:
    """Accumulates what a stream has shown so far: usage, text, and whether it completed."""

    def __init__(self, call: Call, endpoint: str, hide_usage_chunk: bool) -> None:
        self.call = call
        self.provider = call.provider
        self.endpoint = endpoint
        self.hide_usage_chunk = hide_usage_chunk
        self.usage: Optional[Usage] = None
        self.text_parts: list = []
        self.terminal = False  # saw the provider's own end-of-message event
        self.status = 200
        self.killed_by: Optional[Killed] = None  # set by the kill watch's thread
        self.watch: Optional[_killwatch.KillWatch] = None

    def start_watching(self) -> None:
        """Registers the stream with the kill watch of its daemon (starting it lazily)."""
        watch = _killwatch.watch_for(self.call.rt.transport)
        if watch is not None:
            self.watch = watch
            watch.register(self)

    def _release(self) -> None:
        watch, self.watch = self.watch, None
        if watch is not None:
            watch.unregister(self)

    def _add_text(self, s: Any) -> None:
        if isinstance(s, str) and s:
            self.text_parts.append(s)

    def observe(self, item: Any) -> bool:
        """Records one item; returns True when the item must be hidden from the caller."""
        if self.provider == "anthropic":
            return self._observe_anthropic(item)
        if self.endpoint == "/responses":
            typ = get(item, "type") or ""
            if typ.endswith(".delta"):
                self._add_text(get(item, "delta"))
            if typ in ("response.completed", "response.incomplete", "response.failed"):
                self.usage = normalize_openai(get(get(item, "response"), "usage")) or self.usage
                self.terminal = True
            return False
        # chat completions and legacy completions chunks
        usage = get(item, "usage")
        choices = get(item, "choices") or []
        for c in choices:
            delta = get(c, "delta")
            if delta is not None:
                self._add_text(get(delta, "content"))
                self._add_text(get(delta, "refusal"))
                for tc in get(delta, "tool_calls") or []:
                    fn = get(tc, "function")
                    self._add_text(get(fn, "arguments"))
                    self._add_text(get(fn, "name"))
            else:
                self._add_text(get(c, "text"))
        if usage is not None:
            self.usage = normalize_openai(usage) or self.usage
            if not choices:
                self.terminal = True
                return self.hide_usage_chunk
        return False

    def _observe_anthropic(self, item: Any) -> bool:
        typ = get(item, "type")
        if typ == "message_start":
            self.usage = normalize_anthropic(get(get(item, "message"), "usage"))
        elif typ == "message_delta":
            u = get(item, "usage")
            if u is not None:
                cur = dict(self.usage or normalize_anthropic({}) or {})
                # message_delta usage is cumulative; newer API versions repeat the input counts
                for src, dst in (("output_tokens", "output_tokens"), ("input_tokens", "input_tokens"),
                                 ("cache_read_input_tokens", "cache_read_tokens"),
                                 ("cache_creation_input_tokens", "cache_write_tokens")):
                    v = get(u, src)
                    if v is not None:
                        cur[dst] = int(v)
                self.usage = cur
        elif typ == "content_block_delta":
            d = get(item, "delta")
            for key in ("text", "partial_json", "thinking"):
                self._add_text(get(d, key))
        elif typ == "message_stop":
            self.terminal = True
        return False

    # ------------------------------------------------------------------ outcomes
    def partial_usage(self) -> Usage:
        """Usage known so far plus an estimate for the text already received."""
        est_out = estimate_tokens("".join(self.text_parts))
        if self.usage is None:
            return {"input_tokens": estimate_tokens(self.call.request), "output_tokens": est_out,
                    "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0}
        u = dict(self.usage)
        u["output_tokens"] = max(u.get("output_tokens", 0), est_out)
        return u

    def final(self) -> tuple:
        if self.terminal and self.usage is not None:
            return self.usage, "ok"
        return self.partial_usage(), "partial"

    def finish(self) -> None:
        self._release()
        usage, outcome = self.final()
        self.call.report(usage, self.status, outcome)

    async def afinish(self) -> None:
        self._release()
        usage, outcome = self.final()
        await self.call.areport(usage, self.status, outcome)

    def abandon(self) -> None:
        self._release()
        if not self.call.reported:
            self.call.report(self.partial_usage(), self.status, "partial")

    def abandon_soon(self) -> None:
        self._release()
        if not self.call.reported:
            self.call.report_soon(self.partial_usage(), self.status, "partial")

    def kill(self) -> Killed:
        """The stream was killed: reports it (once) and returns the error to raise."""
        self._release()
        self.call.report(self.partial_usage(), self.status, "killed")
        assert self.killed_by is not None
        return self.killed_by

    async def akill(self) -> Killed:
        self._release()
        await self.call.areport(self.partial_usage(), self.status, "killed")
        assert self.killed_by is not None
        return self.killed_by


def _close_quietly(close: Any) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001 - the stream is being given up anyway
        pass


async def _aclose_quietly(close: Any) -> None:
    try:
        await close()
    except Exception:  # noqa: BLE001
        pass


def hook_sync_stream(stream: Any, tracker: StreamTracker) -> None:
    original: Iterator[Any] = stream._iterator
    original_close = stream.close

    def iterate() -> Iterator[Any]:
        try:
            for item in original:
                hidden = tracker.observe(item)
                if tracker.killed_by is not None:
                    err = tracker.kill()
                    _close_quietly(original_close)  # stop paying for tokens nobody will read
                    raise err
                if hidden:
                    continue
                yield item
        except GeneratorExit:
            tracker.abandon()
            raise
        except BaseException:
            tracker.abandon()
            raise
        tracker.finish()

    stream._iterator = iterate()

    def close() -> None:
        try:
            original_close()
        finally:
            tracker.abandon()

    stream.close = close
    try:
        weakref.finalize(stream, tracker.abandon)
    except TypeError:
        pass
    tracker.start_watching()


def hook_async_stream(stream: Any, tracker: StreamTracker) -> None:
    original: AsyncIterator[Any] = stream._iterator
    upstream_close = getattr(stream, "close", None)

    async def iterate() -> AsyncIterator[Any]:
        try:
            async for item in original:
                hidden = tracker.observe(item)
                if tracker.killed_by is not None:
                    err = await tracker.akill()
                    if upstream_close is not None:
                        await _aclose_quietly(upstream_close)
                    raise err
                if hidden:
                    continue
                yield item
        except Exception:
            tracker._release()
            if not tracker.call.reported:
                await tracker.call.areport(tracker.partial_usage(), tracker.status, "partial")
            raise
        except BaseException:  # GeneratorExit (closed or collected), CancelledError: cannot await here
            tracker.abandon_soon()
            raise
        await tracker.afinish()

    stream._iterator = iterate()
    for name in ("close", "aclose"):
        original_close = getattr(stream, name, None)
        if original_close is None:
            continue

        def make(orig: Any) -> Any:
            async def close() -> None:
                try:
                    await orig()
                finally:
                    tracker.abandon_soon()
            return close

        setattr(stream, name, make(original_close))
    try:
        weakref.finalize(stream, tracker.abandon_soon)
    except TypeError:
        pass
    tracker.start_watching()
