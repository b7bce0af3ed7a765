"""The error hierarchy, keyed on the daemon's stable error codes (docs/socket-api.md)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "SpendwallError",
    "BudgetExceeded",
    "Killed",
    "ApprovalDenied",
    "DaemonUnavailable",
    "REASONS",
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


#: Why a `DaemonUnavailable` was raised (its `reason`):
#: - "unreachable": nothing reached the daemon (no socket, connection refused, a connect
#:   timeout, the connection lost before the request was written). With "server_error", the
#:   only case where the default fail-open mode lets a call go through.
#: - "server_error": the daemon answered 5xx without saying the call must fail closed.
#: - "fail_closed": the daemon refused the call (HTTP 503 with `"fail_closed": true`: its ledger
#:   cannot record spend and the call must fail closed). Raised in every mode.
#: - "timeout": the request was sent and no answer came in time (for a check: not even past the
#:   daemon's own approval timeout). Raised in every mode: the daemon may be holding the call
#:   for a person's approval.
#: - "connection_lost": the daemon closed the connection after the request was sent, before
#:   answering. Raised in every mode.
REASONS = ("unreachable", "server_error", "fail_closed", "timeout", "connection_lost")
FAIL_OPEN_REASONS = frozenset({"unreachable", "server_error"})


class DaemonUnavailable(SpendwallError):
    """The daemon could not be reached or could not decide (daemon code `unavailable`).

    Before a call it is raised, before anything is sent upstream: in strict mode (or when the
    daemon's spendwall.toml says `fail_mode = "closed"`) whenever the daemon cannot be reached;
    and in every mode when the daemon refused the call as fail-closed, or took the check and
    never answered it (`reason`: see `REASONS`). Otherwise, in the default fail-open mode, the
    call goes through and its report is spooled."""

    code = "unavailable"

    def __init__(self, message: str, *, reason: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        if reason is None:
            err = self.body.get("error")
            reason = "fail_closed" if isinstance(err, dict) and err.get("fail_closed") is True else "unreachable"
        self.reason: str = reason

    @property
    def fail_open(self) -> bool:
        """Whether a call in the default fail-open mode may go through after this failure."""
        return self.reason in FAIL_OPEN_REASONS


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
