"""Usage normalisation into the daemon's Usage object (docs/socket-api.md, "Usage object")."""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

__all__ = ["Usage", "normalize_openai", "normalize_anthropic", "estimate_tokens", "get"]

Usage = Dict[str, int]
KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def zero() -> Usage:
    return {k: 0 for k in KINDS}


def get(obj: Any, name: str) -> Any:
    """Reads a field from a dict or a pydantic/attribute object; None when missing."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name) if isinstance(extra, dict) else None
    return value


def _int(v: Any) -> int:
    try:
        return max(0, int(v or 0))
    except (TypeError, ValueError):
        return 0


def normalize_openai(usage: Any) -> Optional[Usage]:
    """Chat/Completions (`prompt_tokens`…), Responses (`input_tokens`…) and Embeddings usage.
    `input_tokens` is the uncached input: prompt minus cached."""
    if usage is None:
        return None
    if get(usage, "prompt_tokens") is not None:
        prompt = _int(get(usage, "prompt_tokens"))
        cached = _int(get(get(usage, "prompt_tokens_details"), "cached_tokens"))
        output = _int(get(usage, "completion_tokens"))
        reasoning = _int(get(get(usage, "completion_tokens_details"), "reasoning_tokens"))
    elif get(usage, "input_tokens") is not None or get(usage, "output_tokens") is not None:
        prompt = _int(get(usage, "input_tokens"))
        cached = _int(get(get(usage, "input_tokens_details"), "cached_tokens"))
        output = _int(get(usage, "output_tokens"))
        reasoning = _int(get(get(usage, "output_tokens_details"), "reasoning_tokens"))
    else:
        return None
    cached = min(cached, prompt)
    return {"input_tokens": prompt - cached, "output_tokens": output, "cache_read_tokens": cached,
            "cache_write_tokens": 0, "reasoning_tokens": min(reasoning, output)}


def normalize_anthropic(usage: Any) -> Optional[Usage]:
    """Anthropic's `input_tokens` already excludes cache reads and writes."""
    if usage is None:
        return None
    writes = _int(get(usage, "cache_creation_input_tokens"))
    result: Usage = {"input_tokens": _int(get(usage, "input_tokens")), "output_tokens": _int(get(usage, "output_tokens")),
                     "cache_read_tokens": _int(get(usage, "cache_read_input_tokens")),
                     "cache_write_tokens": writes, "reasoning_tokens": 0}
    # 1-hour cache writes cost more than 5-minute ones; `cache_creation` tells them apart.
    one_hour = min(_int(get(get(usage, "cache_creation"), "ephemeral_1h_input_tokens")), writes)
    if one_hour:
        result["cache_write_1h_tokens"] = one_hour
    return result


def estimate_tokens(text_or_obj: Any) -> int:
    """A rough, conservative token count (4 bytes a token, rounded up) for partial streams."""
    if text_or_obj is None:
        return 0
    if isinstance(text_or_obj, str):
        n = len(text_or_obj.encode("utf-8"))
    else:
        try:
            n = len(json.dumps(text_or_obj, default=str).encode("utf-8"))
        except (TypeError, ValueError):
            n = 0
    return (n + 3) // 4
