"""`remaining()`, `estimate()`, `snapshot()`, `health()`, `replay_spool()`: the socket API's
read side, for agents that want to plan their spend; and `flush()` (the background reports)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

from ._core import flush, runtime
from ._errors import error_from_body

__all__ = ["remaining", "estimate", "snapshot", "health", "replay_spool", "flush"]


def _get(path: str) -> Dict[str, Any]:
    status, body = runtime().transport.request("GET", path)
    if status != 200:
        raise error_from_body(body, status)
    return body


def snapshot() -> Dict[str, Any]:
    """`GET /v1/policy/snapshot`: every cap with spent, reserved and remaining per key. Reports
    of this process's finished calls are sent first (they go in the background), so their
    reservations are settled to their real cost in what it shows."""
    rt = runtime()
    flush(rt.settings.timeout)
    return _get("/v1/policy/snapshot")


def health() -> Dict[str, Any]:
    """`GET /v1/health`."""
    return _get("/v1/health")


def _scope_matches(cap_scope: Mapping[str, Any], scope: Mapping[str, Any]) -> bool:
    return all(cap_scope.get(k) == v for k, v in scope.items())


def remaining(scope: Union[None, str, Mapping[str, Any]] = None, *, key: Optional[str] = None) -> Optional[int]:
    """Nano-USD left before the tightest matching cap blocks; None when no cap with a dollar
    limit matches. `scope` is a cap name (`"reviewer-daily"`), a scope mapping as in
    caps.toml (`{"agent": "code-reviewer"}`, `{"global": True}`), or None for every cap;
    `key` picks one tracked value of a `"*"` cap (e.g. one agent's name)."""
    best: Optional[int] = None
    for cap in snapshot().get("caps") or []:
        if isinstance(scope, str) and cap.get("name") != scope:
            continue
        if isinstance(scope, Mapping) and not _scope_matches(cap.get("scope") or {}, scope):
            continue
        for k in cap.get("keys") or []:
            if key is not None and k.get("key") != key:
                continue
            left = k.get("remaining_nanousd")
            if isinstance(left, int) and (best is None or left < best):
                best = left
    return best


def _provider_of(request: Mapping[str, Any]) -> str:
    model = str(request.get("model") or "")
    return "anthropic" if model.startswith("claude") else "openai"


def estimate(request: Mapping[str, Any], *, provider: Optional[str] = None, model: Optional[str] = None) -> Dict[str, Any]:
    """`POST /v1/estimate`: the pre-flight cost range of a request body (nano-USD)."""
    body = {"provider": provider or _provider_of(request), "model": model or request.get("model"),
            "request": dict(request)}
    status, answer = runtime().transport.request("POST", "/v1/estimate", body)
    if status != 200:
        raise error_from_body(answer, status)
    return answer


def replay_spool() -> Dict[str, int]:
    """Replays spooled reports now (normally automatic once the daemon answers again).
    Returns counts: recorded, duplicate, rejected, pending."""
    return runtime().replay_now()
