"""Attribution carried through threads and asyncio tasks (contextvars)."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Mapping, Optional

__all__ = ["Attribution", "current", "tags", "attribution", "merge", "use"]

# keys: agent, tags, session, mode
Attribution = Dict[str, Any]
_current: "contextvars.ContextVar[Attribution]" = contextvars.ContextVar("spendwall_attribution", default={})

_KEYS = {"agent", "tags", "session", "mode"}


def current() -> Attribution:
    return _current.get()


def merge(base: Mapping[str, Any], over: Optional[Mapping[str, Any]]) -> Attribution:
    """`over` wins field by field; tags merge key by key."""
    out = dict(base)
    if not over:
        return out
    unknown = set(over) - _KEYS
    if unknown:
        raise TypeError(f"unknown spendwall option(s): {', '.join(sorted(unknown))} (use agent, tags, session, mode)")
    for k, v in over.items():
        if v is None:
            continue
        if k == "tags":
            merged = dict(out.get("tags") or {})
            merged.update({str(tk): str(tv) for tk, tv in dict(v).items()})
            out["tags"] = merged
        elif k == "mode":
            if v not in ("default", "strict"):
                raise ValueError("mode must be 'default' or 'strict'")
            out["mode"] = v
        else:
            out[k] = str(v)
    return out


@contextmanager
def use(over: Optional[Mapping[str, Any]]) -> Iterator[Attribution]:
    token = _current.set(merge(_current.get(), over))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


@contextmanager
def tags(**kv: Any) -> Iterator[Attribution]:
    """`with spendwall.tags(customer="acme"):` — every call inside carries these tags."""
    with use({"tags": kv}) as a:
        yield a


@contextmanager
def attribution(*, agent: Optional[str] = None, session: Optional[str] = None,
                tags: Optional[Mapping[str, Any]] = None, mode: Optional[str] = None) -> Iterator[Attribution]:
    """`with spendwall.attribution(agent="reviewer", session="s-1", mode="strict"):`"""
    with use({"agent": agent, "session": session, "tags": tags, "mode": mode}) as a:
        yield a
