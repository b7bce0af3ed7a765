"""The error hierarchy, keyed on the daemon's stable error codes (docs/socket-api.md)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "SpendwallError",
    "BudgetExceeded",
    "Killed",
    "ApprovalDenied",
    "DaemonUnavailable",
    "error_from_body",
]


class SpendwallError(Exception):
    """Base class of every error the SDK raises. `code` is the daemon's error code."""

    code: str = "spendwall_error"

    def __init__(self, message: str, *, code: Optional[str] = None, status: Optional[int] = None,
                 body: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.body: Dict[str, Any] = dict(body or {})


class BudgetExceeded(SpendwallError):
    """A `block` cap would be exceeded by this call (daemon code `cap_exceeded`)."""

    code = "cap_exceeded"

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        cap = self.body.get("cap") or (self.body.get("error") or {}).get("cap") or {}
        self.cap: Dict[str, Any] = dict(cap)
        self.cap_name: Optional[str] = cap.get("name")
        self.window: Optional[str] = cap.get("window")
        self.limit_nanousd: Optional[int] = cap.get("limit_nanousd")
        self.spent_nanousd: Optional[int] = cap.get("spent_nanousd")
        self.reserved_nanousd: Optional[int] = cap.get("reserved_nanousd")
        self.remaining_nanousd: Optional[int] = self.body.get("remaining_nanousd")

    @property
    def limit_usd(self) -> Optional[float]:
        return None if self.limit_nanousd is None else self.limit_nanousd / 1e9

    @property
    def spent_usd(self) -> Optional[float]:
        return None if self.spent_nanousd is None else self.spent_nanousd / 1e9


class Killed(SpendwallError):
    """A kill switch covers this call (daemon code `killed`): refused at its check, or — for a
    stream — turned on while the stream was in flight (`in_flight` is then True and `scope`
    says which switch: `{"kind": "global"|"agent"|"app"|"session", "value": ...}`)."""

    code = "killed"

    def __init__(self, message: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        scope = self.body.get("scope")
        self.scope: Optional[Dict[str, Any]] = dict(scope) if isinstance(scope, dict) else None
        self.in_flight: bool = self.body.get("in_flight") is True


class ApprovalDenied(SpendwallError):
    """The call needed an approval that was denied or timed out (daemon code `approval_denied`)."""

    code = "approval_denied"


class DaemonUnavailable(SpendwallError):
    """The daemon could not be reached (raised only in strict mode, before anything goes upstream)."""

    code = "unavailable"


_BY_CODE: Dict[str, Type[SpendwallError]] = {
    "cap_exceeded": BudgetExceeded,
    "killed": Killed,
    "approval_denied": ApprovalDenied,
    "unavailable": DaemonUnavailable,
}


def error_from_body(body: Mapping[str, Any], status: Optional[int] = None) -> SpendwallError:
    """Builds the exception for a daemon answer carrying `{"error": {"code", "message"}}`."""
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    code = str(err.get("code") or body.get("decision") or "internal")
    message = str(err.get("message") or body.get("reason") or code)
    cls = _BY_CODE.get(code, SpendwallError)
    return cls(message, code=code, status=status, body=body)
