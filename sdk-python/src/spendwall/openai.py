"""`spendwall.openai.wrap(client)` for `OpenAI`, `AsyncOpenAI`, `AzureOpenAI`, `AsyncAzureOpenAI`.

The `openai` package is never imported here: the wrapper works on the client you pass."""
from __future__ import annotations

from typing import Any, Mapping, Optional, TypeVar

from ._wrap import wrap_client

__all__ = ["wrap"]

C = TypeVar("C")

RESOURCES = {
    "chat.completions": ("/chat/completions",),
    "responses": ("/responses",),
    "completions": ("/completions",),
    "embeddings": ("/embeddings",),
}


def wrap(client: C, *, agent: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
         session: Optional[str] = None, mode: Optional[str] = None) -> C:
    """Puts `client` behind Spendwall and returns it (the same object, so types are unchanged).

    Covered: `chat.completions.create` (plain and `stream=True`) and `.stream()`,
    `responses.create` (plain and streaming) and `.stream()`, `completions.create`,
    `embeddings.create`. Each call accepts `extra={"agent": ..., "tags": {...},
    "session": ..., "mode": "strict"}` (or the same as `spendwall={...}`) to override the
    defaults given here."""
    return wrap_client(client, "openai", RESOURCES, agent=agent, tags=tags, session=session, mode=mode)
