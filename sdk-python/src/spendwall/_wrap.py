"""Puts a provider client's resources behind Spendwall without changing what they return.

Each wrapped resource's `_post` (the one function every `create`/`stream` of the official
openai and anthropic SDKs goes through) is replaced on that instance: billable paths run
check -> forward -> report; everything else passes through untouched. Returned objects are
the SDK's own (models, `Stream`/`AsyncStream`, stream managers)."""
from __future__ import annotations

import asyncio
import functools
from collections import abc
import inspect
import os
import re
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from . import _config, _context
from ._client import _ENCODE
from ._core import Call
from ._streams import StreamTracker, hook_async_stream, hook_sync_stream
from ._usage import Usage, estimate_tokens, get, normalize_anthropic, normalize_openai

__all__ = ["wrap_client"]

_STATE_ATTR = "_spendwall_state"
_SENTINELS = {"NotGiven", "Omit"}


def _is_sentinel(v: Any) -> bool:
    t = type(v)
    return t not in _SCALARS and t.__name__ in _SENTINELS


_SCALARS = (str, int, float, bool, type(None))


def _plain(v: Any) -> Any:
    """JSON-able copy of a request body value (pydantic models, tuples, iterables)."""
    t = type(v)
    if t in _SCALARS:
        return v
    if t is dict:
        return {k if type(k) is str else str(k): _plain(x) for k, x in v.items() if not _is_sentinel(x)}
    if t is list:
        return [_plain(x) for x in v]
    if isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, abc.Mapping):
        return {str(k): _plain(x) for k, x in v.items() if not _is_sentinel(x)}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    dump = getattr(v, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json", exclude_unset=True)
        except Exception:  # noqa: BLE001
            pass
    if isinstance(v, (bytes, bytearray)):
        return "<%d bytes>" % len(v)
    return str(v)


def _materialize(body: Any) -> Tuple[Any, Dict[str, Any]]:
    """Returns (body to send, JSON-able copy). One-shot iterables in the body are turned into
    lists first, so reading them for the check does not consume what goes upstream."""
    if not isinstance(body, abc.Mapping):
        return body, {}
    out = dict(body)
    for k, v in out.items():
        if type(v) in _SCALARS or type(v) is dict or type(v) is list:
            continue
        if not isinstance(v, (str, bytes, bytearray, abc.Mapping, list, tuple)) and isinstance(v, abc.Iterable) \
                and not _is_sentinel(v) and not hasattr(v, "model_dump"):
            out[k] = list(v)
    return out, {k: _plain(v) for k, v in out.items() if not _is_sentinel(v)}


class _State:
    def __init__(self, provider: str, defaults: Dict[str, Any]) -> None:
        self.provider = provider
        self.defaults = defaults
        self._base: Optional[Tuple[int, Dict[str, Any], Dict[str, Any]]] = None

    def attribution(self, captured: Dict[str, Any]) -> Dict[str, Any]:
        """configure()'s defaults, then wrap()'s, then the call's own (never mutated: a Call
        copies what it keeps)."""
        gen = _config.generation()
        cached = self._base
        if cached is None or cached[0] != gen or cached[1] is not self.defaults:
            s = _config.settings()
            base = _context.merge({}, {"agent": s.agent, "tags": s.tags, "session": s.session})
            cached = self._base = (gen, self.defaults, _context.merge(base, self.defaults))
        return _context.merge(cached[2], captured) if captured else cached[2]


_STREAM_TYPES: Dict[type, bool] = {}


def _is_stream(result: Any) -> bool:
    """Whether `_post` returned the provider SDK's stream object (`Stream`, `AsyncStream`). The
    type is looked at once (reading a missing attribute of a pydantic model is slow)."""
    t = type(result)
    streamy = _STREAM_TYPES.get(t)
    if streamy is None:
        streamy = hasattr(t, "close") and (hasattr(t, "__next__") or hasattr(t, "__anext__"))
        if len(_STREAM_TYPES) < 256:
            _STREAM_TYPES[t] = streamy
    return streamy and hasattr(result, "_iterator")


def _normalize(provider: str, usage: Any) -> Optional[Usage]:
    return normalize_anthropic(usage) if provider == "anthropic" else normalize_openai(usage)


def _result_usage(provider: str, result: Any, request: Dict[str, Any]) -> Tuple[Usage, str]:
    usage = _normalize(provider, get(result, "usage"))
    if usage is not None:
        return usage, "ok"
    # e.g. with_raw_response: the SDK's response wrapper; read the parsed body if it offers one
    parse = getattr(result, "parse", None)
    if callable(parse) and not inspect.iscoroutinefunction(parse):
        try:
            usage = _normalize(provider, get(parse(), "usage"))
        except Exception:  # noqa: BLE001
            usage = None
    if usage is not None:
        return usage, "ok"
    return {"input_tokens": estimate_tokens(request), "output_tokens": 0, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "reasoning_tokens": 0}, "ok"


def _error_status(exc: BaseException) -> Optional[int]:
    code = getattr(exc, "status_code", None)
    return code if isinstance(code, int) else None


_LOOPBACK = re.compile(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(/|$)", re.I)


def _mark_checked(kwargs: Dict[str, Any], call: Call, base_url: Any) -> None:
    """Sends the call's reservation along (`x-spendwall-reservation`) to a loopback base URL: when
    that is Spendwall's own proxy (as under `spendwall run`), the proxy passes the call through
    instead of checking and recording it a second time. A provider's own URL gets nothing."""
    if not call.reservation_id or not _LOOPBACK.match(str(base_url or "")):
        return
    options = dict(kwargs.get("options") or {})
    headers = dict(options.get("headers") or {})
    headers["x-spendwall-reservation"] = call.reservation_id
    options["headers"] = headers
    kwargs["options"] = options


def _prepare(state: _State, endpoint: str, kwargs: Dict[str, Any], captured: Dict[str, Any]) -> Tuple[Call, bool]:
    body = kwargs.get("body")
    request_json: Optional[str] = None
    if type(body) is dict:
        # the common case: the provider SDK already turned the body into JSON types; it is
        # encoded once, here, and that text goes into the check as is
        try:
            request_json = _ENCODE(body)
            plain: Dict[str, Any] = body
        except (TypeError, ValueError):
            request_json = None
    if request_json is None:
        body, plain = _materialize(body)
    stream = bool(kwargs.get("stream")) or bool(plain.get("stream"))
    hide = False
    if state.provider == "openai" and stream and endpoint in ("/chat/completions", "/completions"):
        so = plain.get("stream_options") if isinstance(plain.get("stream_options"), dict) else None
        if not (so and so.get("include_usage")):
            hide = True
            new_so = dict(so or {})
            new_so["include_usage"] = True
            body = dict(body)
            body["stream_options"] = new_so
    if isinstance(body, Mapping):
        kwargs["body"] = body
    call = Call(state.provider, str(plain.get("model") or ""), plain, state.attribution(captured), request_json)
    return call, hide


def _wrap_post(resource: Any, state: _State, endpoints: Iterable[str], is_async: bool) -> None:
    original = resource._post
    if getattr(original, "_spendwall_original", None) is not None:
        original = original._spendwall_original
    billable = frozenset(endpoints)
    client = getattr(resource, "_client", resource)

    def base_url() -> Any:
        return getattr(client, "base_url", None)

    if not is_async:
        def post(path: str, *args: Any, **kwargs: Any) -> Any:
            endpoint = path.split("?", 1)[0]
            if endpoint not in billable:
                return original(path, *args, **kwargs)
            call, hide = _prepare(state, endpoint, kwargs, _context.current())
            call.check()
            _mark_checked(kwargs, call, base_url())
            try:
                result = original(path, *args, **kwargs)
            except BaseException as exc:
                call.report(None, _error_status(exc), "error" if isinstance(exc, Exception) else "disconnected")
                raise
            if _is_stream(result):
                hook_sync_stream(result, StreamTracker(call, endpoint, hide))
            else:
                usage, outcome = _result_usage(state.provider, result, call.request or {})
                call.report(usage, 200, outcome)
            return result
    else:
        async def apost(captured: Dict[str, Any], path: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
            endpoint = path.split("?", 1)[0]
            call, hide = _prepare(state, endpoint, kwargs, captured)
            await call.acheck()
            _mark_checked(kwargs, call, base_url())
            try:
                result = await original(path, *args, **kwargs)
            except asyncio.CancelledError:
                call.report_soon(None, None, "disconnected")
                raise
            except BaseException as exc:
                await call.areport(None, _error_status(exc), "error")
                raise
            if _is_stream(result):
                hook_async_stream(result, StreamTracker(call, endpoint, hide))
            else:
                usage, outcome = _result_usage(state.provider, result, call.request or {})
                await call.areport(usage, 200, outcome)
            return result

        def post(path: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            if path.split("?", 1)[0] not in billable:
                return original(path, *args, **kwargs)
            # attribution is captured now: an async stream manager builds this coroutine at
            # .stream() time and awaits it later, in __aenter__
            return apost(dict(_context.current()), path, args, kwargs)

    post._spendwall_original = original  # type: ignore[attr-defined]
    resource._post = post


def _has_param(fn: Any, name: str) -> bool:
    """Whether the provider SDK's method takes a parameter of this name itself (or might: one
    whose signature cannot be read, or that takes **kwargs)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _per_call(spendwall: Optional[Mapping[str, Any]], kwargs: Dict[str, Any],
              take_extra: bool) -> Optional[Mapping[str, Any]]:
    """The call's own attribution: `extra={...}` (when the SDK has no `extra` of its own),
    then `spendwall={...}` over it. Both are removed before the SDK sees the call."""
    extra = kwargs.pop("extra", None) if take_extra else None
    for kw, value in (("extra", extra), ("spendwall", spendwall)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{kw}= must be a mapping of agent, tags, session, mode; got {type(value).__name__}")
    if extra is None:
        return spendwall
    if spendwall is None:
        return extra
    return _context.merge(_context.merge({}, extra), spendwall)


def _wrap_method(resource: Any, name: str) -> None:
    """Adds the per-call `spendwall={...}` keyword (agent, tags, session, mode), and `extra={...}`
    as its alias unless the provider's method has an `extra` parameter of its own."""
    original = getattr(resource, name, None)
    if original is None:
        return
    if getattr(original, "_spendwall_original", None) is not None:
        original = original._spendwall_original
    take_extra = not _has_param(original, "extra")

    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def amethod(*args: Any, spendwall: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
            with _context.use(_per_call(spendwall, kwargs, take_extra)):
                return await original(*args, **kwargs)
        wrapped: Callable[..., Any] = amethod
    else:
        @functools.wraps(original)
        def method(*args: Any, spendwall: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> Any:
            over = _per_call(spendwall, kwargs, take_extra) if spendwall is not None or "extra" in kwargs else None
            if over is None:
                return original(*args, **kwargs)
            with _context.use(over) as attribution:
                result = original(*args, **kwargs)
            if inspect.isawaitable(result):  # an async create behind a sync decorator
                return _awaiting_with(attribution, result)
            _bind_manager(result, attribution)
            return result
        wrapped = method
    wrapped._spendwall_original = original  # type: ignore[attr-defined]
    setattr(resource, name, wrapped)


async def _awaiting_with(attribution: Dict[str, Any], awaitable: Any) -> Any:
    token = _context._current.set(attribution)
    try:
        return await awaitable
    finally:
        _context._current.reset(token)


def _bind_manager(result: Any, attribution: Dict[str, Any]) -> None:
    """A sync stream manager calls `_post` in __enter__, after the call's options went out of
    scope: run its deferred request under them."""
    for attr, value in list(getattr(result, "__dict__", {}).items()):
        if attr.endswith("__api_request") and callable(value) and not inspect.iscoroutine(value):
            def deferred(_orig: Callable[[], Any] = value) -> Any:
                token = _context._current.set(attribution)
                try:
                    return _orig()
                finally:
                    _context._current.reset(token)
            setattr(result, attr, deferred)


def _resolve(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def wrap_client(client: Any, provider: str, resources: Mapping[str, Iterable[str]], *, agent: Optional[str],
                tags: Optional[Mapping[str, Any]], session: Optional[str], mode: Optional[str]) -> Any:
    # A program launched by `spendwall run` is in that session (SPENDWALL_SESSION) unless told otherwise.
    session = session or os.environ.get("SPENDWALL_SESSION") or None
    defaults = _context.merge({}, {"agent": agent, "tags": tags, "session": session, "mode": mode})
    state: Optional[_State] = getattr(client, _STATE_ATTR, None)
    if state is not None:  # wrapping twice only updates the defaults
        state.defaults = defaults
        return client
    state = _State(provider, defaults)
    is_async = inspect.iscoroutinefunction(getattr(client, "post", None))
    for dotted, endpoints in resources.items():
        resource = _resolve(client, dotted)
        if resource is None or not hasattr(resource, "_post"):
            continue
        _wrap_post(resource, state, endpoints, is_async)
        for name in ("create", "stream"):
            _wrap_method(resource, name)
    setattr(client, _STATE_ATTR, state)
    return client
