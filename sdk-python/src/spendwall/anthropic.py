"""`spendwall.anthropic.wrap(client)` for `Anthropic` and `AsyncAnthropic`.

The `anthropic` package is never imported here: the wrapper works on the client you pass."""
from __future__ import annotations

from typing import Any, Mapping, Optional, TypeVar

from ._wrap import wrap_client

__all__ = ["wrap"]

C = TypeVar("C")

RESOURCES = {
    "messages": ("/v1/messages",),
}


def wrap(client: C, *, agent: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
         session: Optional[str] = None, mode: Optional[str] = None) -> C:
    """Puts `client` behind Spendwall and returns it (the same object, so types are unchanged).

    Covered: `messages.create` (plain and `stream=True`) and the `messages.stream(...)` context
    manager. `messages.count_tokens` passes through unbilled. Each call accepts
    `extra={"agent": ..., "tags": {...}, "session": ..., "mode": "strict"}` (or the same as
    `spendwall={...}`). A stream stops with `spendwall.Killed` when a kill switch covering it
    turns on while it runs."""
    return wrap_client(client, "anthropic", RESOURCES, agent=agent, tags=tags, session=session, mode=mode)
